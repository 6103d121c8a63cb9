"""The ingest rules and the simulator's provenance, end to end: HomeIQ connected to the
simulated Home Assistant stores neither the snapshot nor the live events of what the
rules exclude (counted instead), and remembers the entities it stored as the
simulator's."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from homeiq.ha.simulator import Simulator
from homeiq.maintenance.cleanup import Provenance
from homeiq.metadata.store import MetadataStore
from homeiq.runtime import Runtime
from homeiq.settings import Settings
from homeiq.sinks.sqlite import SQLiteEventStore
from tests.support.wait import async_wait_until


@pytest.fixture
async def quiet_sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(seed=3, rate=10, count=0, entities=90)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


async def test_excluded_entities_are_counted_never_stored_and_kept_as_simulated(
    quiet_sim: Simulator, tmp_path: Path
) -> None:
    states = {e: quiet_sim.get_state(e) for e in quiet_sim.entity_ids}
    classes = {e: (s or {}).get("attributes", {}).get("device_class") for e, s in states.items()}
    assert "light" in {e.partition(".")[0] for e in states}
    assert "temperature" in classes.values()
    settings = Settings(
        data_dir=tmp_path,
        batch_max_age_s=0.05,
        backfill=False,
        ingest={"exclude_domains": ["light"], "exclude_device_classes": ["temperature"]},
    )
    runtime = Runtime(settings)
    runtime.connect_to(quiet_sim.url, quiet_sim.token)
    excluded = {
        e
        for e, s in states.items()
        if s and (e.startswith("light.") or classes[e] == "temperature")
    }
    kept = {e for e, s in states.items() if s} - excluded
    light = sorted(e for e in excluded if e.startswith("light."))[0]
    await runtime.start()
    try:
        await async_wait_until(lambda: runtime.snapshot.taken == 1)
        await async_wait_until(lambda: runtime.stats().stored == len(kept))
        quiet_sim.set_state(light, "on" if states[light]["state"] == "off" else "off")  # type: ignore[index]
        ingest = runtime.writer.ingest_filter
        assert ingest is not None
        await async_wait_until(lambda: sum(ingest.counts().values()) == len(excluded) + 1)
    finally:
        await runtime.stop()
    expected = Counter(e.partition(".")[0] for e in excluded)
    expected["light"] += 1  # the live change too
    assert ingest.counts() == dict(expected)
    store = SQLiteEventStore.in_dir(tmp_path, readonly=True)
    try:
        assert {r.entity_id for r in store.all_records()} == kept
    finally:
        store.close()
    metadata = MetadataStore.in_dir(tmp_path)
    try:
        assert Provenance(metadata).simulator_only() == kept
    finally:
        metadata.close()
