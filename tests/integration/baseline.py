"""What a run against the simulator stores besides the changes it emitted: the baseline
snapshot (ha/snapshot.py) of the states the home had before it streamed."""

from __future__ import annotations

from homeiq.ha.simulator import Simulator
from homeiq.pipeline.normalize import parse_time_us

Keys = set[tuple[str, int]]


def state_keys(sim: Simulator) -> Keys:
    """(entity_id, last_updated) of every state the simulator has now: the keys a
    snapshot of it may store. Taken while it is paused, before HomeIQ subscribes."""
    states = (sim.get_state(e) for e in sim.entity_ids)
    return {(s["entity_id"], parse_time_us(s["last_updated"], "t")) for s in states if s}


def assert_stored_once(keys: Keys, total: int, expected: Keys, initial: Keys) -> None:
    """Every emitted change is stored, each row once; the only other rows are baselines
    of the states the home had before it streamed."""
    assert expected <= keys, f"{len(expected - keys)} events never stored"
    assert keys - expected <= initial, sorted(keys - expected - initial)[:5]
    assert total == len(keys)
