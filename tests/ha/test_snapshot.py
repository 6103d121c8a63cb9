"""The baseline snapshot at every connect, against the simulated Home Assistant, and its
pure parts (which states are missing, the state at a range start)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from homeiq.ha.simulator import Simulator
from homeiq.ha.snapshot import missing_states, snapshot_message, with_start_states
from homeiq.model import EventRecord, Source
from homeiq.pipeline.normalize import Normalizer, format_time_us, parse_time_us
from homeiq.runtime import Runtime
from homeiq.settings import Settings
from homeiq.sinks.sqlite import SQLiteEventStore
from tests.support.wait import async_wait_until

T0 = 1_700_000_000_000_000
S = 1_000_000


@pytest.fixture
async def quiet_sim() -> AsyncIterator[Simulator]:
    """A home where nothing changes by itself: every state predates HomeIQ."""
    simulator = Simulator(seed=3, rate=10, count=0, entities=90)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


def _runtime(tmp_path: Path, sim: Simulator, **overrides: Any) -> Runtime:
    options: dict[str, Any] = {
        "batch_max_age_s": 0.05,
        "ha_reconnect_min_s": 0.05,
        "ha_reconnect_max_s": 0.2,
        "backfill": False,
    }
    runtime = Runtime(Settings(data_dir=tmp_path, **{**options, **overrides}))
    runtime.connect_to(sim.url, sim.token)
    return runtime


def _stored(tmp_path: Path) -> list[EventRecord]:
    store = SQLiteEventStore.in_dir(tmp_path, readonly=True)
    try:
        return store.all_records()
    finally:
        store.close()


async def test_an_entity_that_never_changes_gets_one_snapshot_row(
    quiet_sim: Simulator, tmp_path: Path
) -> None:
    runtime = _runtime(tmp_path, quiet_sim)
    await runtime.start()
    try:
        await async_wait_until(lambda: runtime.snapshot.taken == 1)
    finally:
        await runtime.stop()  # drains the queue into the store
    records = _stored(tmp_path)
    current = {e: quiet_sim.get_state(e) for e in quiet_sim.entity_ids}
    assert sorted(r.entity_id for r in records) == sorted(e for e, s in current.items() if s)
    for r in records:
        state = current[r.entity_id]
        assert state is not None
        assert r.source is Source.SNAPSHOT
        assert (r.state, r.time) == (state["state"], parse_time_us(state["last_updated"], "t"))
        assert r.previous_state is None and r.duration_in_state_s is None
        assert r.context_id == state["context"]["id"]
        assert r.attributes == state["attributes"]


async def test_a_reconnect_with_unchanged_states_writes_nothing_new(
    quiet_sim: Simulator, tmp_path: Path
) -> None:
    runtime = _runtime(tmp_path, quiet_sim)
    await runtime.start()
    try:
        await async_wait_until(lambda: runtime.snapshot.taken == 1)
        await async_wait_until(lambda: runtime.stats().stored == runtime.snapshot.recorded)
        assert runtime.snapshot.recorded > 0
        assert quiet_sim.drop_connections() == 1
        await async_wait_until(lambda: runtime.snapshot.taken == 2)
        assert runtime.snapshot.recorded == runtime.stats().stored  # the second added none
    finally:
        await runtime.stop()
    assert len(_stored(tmp_path)) == runtime.snapshot.recorded


async def test_a_state_changed_while_disconnected_gets_a_snapshot_row(
    quiet_sim: Simulator, tmp_path: Path
) -> None:
    first = _runtime(tmp_path, quiet_sim)
    await first.start()
    try:
        await async_wait_until(lambda: first.snapshot.taken == 1)
    finally:
        await first.stop()
    before = {(r.entity_id, r.time) for r in _stored(tmp_path)}
    changed = next(e for e in quiet_sim.entity_ids if e.startswith(("light.", "switch.")))
    old = quiet_sim.get_state(changed)
    assert old is not None
    quiet_sim.set_state(changed, "off" if old["state"] == "on" else "on")
    second = _runtime(tmp_path, quiet_sim)  # backfill off: only the snapshot can see it
    await second.start()
    try:
        await async_wait_until(lambda: second.snapshot.taken == 1)
    finally:
        await second.stop()
    after = _stored(tmp_path)
    new = [r for r in after if (r.entity_id, r.time) not in before]
    state = quiet_sim.get_state(changed)
    assert state is not None
    assert state["state"] != old["state"]
    assert [(r.entity_id, r.state, r.source, r.time) for r in new] == [
        (changed, state["state"], Source.SNAPSHOT, parse_time_us(state["last_updated"], "t"))
    ]


def _record(entity_id: str, second: int, state: str | None) -> EventRecord:
    return EventRecord(entity_id=entity_id, time=T0 + second * S, state=state)


def _state(entity_id: str, second: int, state: str) -> dict[str, Any]:
    stamp = format_time_us(T0 + second * S)
    return {
        "entity_id": entity_id,
        "state": state,
        "attributes": {"friendly_name": "X"},
        "last_changed": stamp,
        "last_updated": stamp,
        "context": {"id": "01HQ3GZ4C7Q3V2N8W1XKJ5T9RA", "parent_id": None, "user_id": None},
    }


def test_missing_states_are_those_the_store_lacks_or_holds_an_older_other_state_of() -> None:
    states = [
        _state("light.never_stored", 5, "on"),
        _state("light.same_row", 5, "on"),
        _state("light.changed", 9, "off"),
        _state("light.attributes_only", 9, "on"),
        _state("light.store_newer", 5, "on"),
        _state("light.removed_then_back", 9, "on"),
        {"entity_id": "light.no_time", "state": "on"},
        "not a state",
    ]
    stored = {
        "light.same_row": _record("light.same_row", 5, "on"),
        "light.changed": _record("light.changed", 5, "on"),
        "light.attributes_only": _record("light.attributes_only", 5, "on"),
        "light.store_newer": _record("light.store_newer", 7, "off"),
        "light.removed_then_back": _record("light.removed_then_back", 5, None),
    }
    missing = [s["entity_id"] for s in missing_states(states, stored)]
    assert missing == ["light.never_stored", "light.changed", "light.removed_then_back"]
    assert missing_states({"not": "a list"}, stored) == []


def test_a_snapshot_message_normalizes_to_a_baseline_record() -> None:
    state = _state("sensor.t", 3, "21.5")
    record = Normalizer(clock=lambda: T0 / S + 60).message(snapshot_message(state), Source.SNAPSHOT)
    assert (record.entity_id, record.time, record.state, record.value) == (
        "sensor.t",
        T0 + 3 * S,
        "21.5",
        21.5,
    )
    assert record.source is Source.SNAPSHOT
    assert record.previous_state is None and record.duration_in_state_s is None
    assert record.context_id == "01HQ3GZ4C7Q3V2N8W1XKJ5T9RA"
    assert record.attributes == {"friendly_name": "X"}


def test_with_start_states_puts_the_state_at_the_start_first() -> None:
    rows = {
        "light.a": [_record("light.a", 10, "on"), _record("light.a", 12, "off")],
        "light.b": [],
        "light.c": [_record("light.c", 11, "on")],
    }
    starts = {"light.a": _record("light.a", 2, "off"), "light.b": _record("light.b", 1, "on")}
    assert with_start_states(rows, starts) == {
        "light.a": [starts["light.a"], *rows["light.a"]],
        "light.b": [starts["light.b"]],
        "light.c": rows["light.c"],
    }
