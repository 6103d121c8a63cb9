"""The baseline against a real Home Assistant 2024.3.3: after one connect, every entity
HA has has a stored row, the ones HomeIQ saw no change of as ``source=snapshot`` rows
equal to HA's state."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from homeiq.model import Source
from homeiq.pipeline.normalize import parse_time_us
from homeiq.runtime import Runtime
from homeiq.settings import Settings
from homeiq.sinks.sqlite import SQLiteEventStore
from tests.support.homeassistant import HomeAssistantInstance

pytestmark = pytest.mark.homeassistant


async def test_every_entity_of_home_assistant_gets_a_baseline_row(
    real_ha: HomeAssistantInstance, tmp_path: Path
) -> None:
    states = await real_ha.ws_command({"type": "get_states"})
    assert len(states) > 20  # the demo home
    settings = Settings(data_dir=tmp_path, backfill=False, batch_max_age_s=0.05)
    runtime = Runtime(settings)
    runtime.connect_to(real_ha.url, real_ha.token)
    await runtime.start()
    try:
        deadline = time.monotonic() + 30
        while runtime.snapshot.taken < 1:
            assert time.monotonic() < deadline, "no snapshot within 30 s"
            await asyncio.sleep(0.05)
    finally:
        await runtime.stop()
    store = SQLiteEventStore.in_dir(tmp_path, readonly=True)
    try:
        records = store.all_records()
    finally:
        store.close()
    stored = {r.entity_id for r in records}
    assert {s["entity_id"] for s in states} <= stored
    by_key = {(s["entity_id"], parse_time_us(s["last_updated"], "t")): s for s in states}
    snapshots = [r for r in records if r.source is Source.SNAPSHOT]
    assert len(snapshots) >= len(states) // 2  # most of the demo home never changes
    matched = [
        (r, by_key[r.entity_id, r.time]) for r in snapshots if (r.entity_id, r.time) in by_key
    ]
    assert len(matched) >= len(snapshots) * 9 // 10  # the rest changed between the two reads
    for r, state in matched:
        assert r.state == state["state"]
        assert r.context_id == state["context"]["id"]
        assert r.previous_state is None
