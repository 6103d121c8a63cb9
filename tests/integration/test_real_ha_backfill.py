"""Backfill against a real Home Assistant 2024.3.3: state changes made while HomeIQ was
stopped are fetched from HA's history API on the next start, stored once, marked
``source=backfill``, and none of the events stored live before is duplicated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from homeiq.model import EventRecord, Source
from homeiq.pipeline.normalize import parse_time_us
from homeiq.sinks.sqlite import SQLiteEventStore
from tests.support.homeassistant import HomeAssistantInstance
from tests.support.process import HomeIQProcess
from tests.support.wait import async_wait_until

pytestmark = [pytest.mark.homeassistant, pytest.mark.timeout(240)]

GAP_CHANGES = 60
SENSORS = [f"sensor.homeiq_gap_{i}" for i in range(3)]


@pytest.fixture
def homeiq(real_ha: HomeAssistantInstance, tmp_path: Path) -> Iterator[HomeIQProcess]:
    process = HomeIQProcess(real_ha.url, real_ha.token, tmp_path / "data")
    try:
        yield process
    finally:
        process.stop()


def _stored(data_dir: Path) -> dict[tuple[str, int], EventRecord]:
    store = SQLiteEventStore.in_dir(data_dir, readonly=True)
    try:
        return {(r.entity_id, r.time): r for r in store.all_records() if r.entity_id in SENSORS}
    finally:
        store.close()


async def _wait_stored(data_dir: Path, expected: set[tuple[str, int]]) -> None:
    await async_wait_until(
        lambda: expected <= set(_stored(data_dir)),
        timeout=60,
        interval=0.3,
        message=lambda: f"missing: {sorted(expected - set(_stored(data_dir)))}",
    )


async def test_changes_made_while_homeiq_was_stopped_are_backfilled(
    real_ha: HomeAssistantInstance, homeiq: HomeIQProcess
) -> None:
    ha = real_ha
    await homeiq.wait_for_log("connected to Home Assistant")
    live: set[tuple[str, int]] = set()
    for i, entity_id in enumerate(SENSORS):  # seen live: must not come back as backfill
        state = await ha.set_state(entity_id, f"live-{i}", {"unit_of_measurement": "W"})
        live.add((entity_id, parse_time_us(state["last_updated"], "t")))
    await _wait_stored(homeiq.data_dir, live)
    assert homeiq.stop() == 0, homeiq.log()

    gap: set[tuple[str, int]] = set()
    for i in range(GAP_CHANGES):
        state = await ha.set_state(SENSORS[i % 3], str(i * 0.5), {"unit_of_measurement": "W"})
        gap.add((SENSORS[i % 3], parse_time_us(state["last_updated"], "t")))
    assert len(gap) == GAP_CHANGES

    homeiq.start()
    await _wait_stored(homeiq.data_dir, gap)
    assert homeiq.stop() == 0, homeiq.log()

    stored = _stored(homeiq.data_dir)
    assert set(stored) == live | gap  # every change once, nothing else for our sensors
    assert all(stored[key].source is Source.BACKFILL for key in gap)
    assert all(stored[key].source is Source.LIVE for key in live)
    assert all(stored[key].context_id is not None for key in live)
    # The first gap change ends the live state: backfill recovers the chain.
    first = min(gap, key=lambda k: k[1])
    assert stored[first].previous_state is not None
    assert ha.token not in homeiq.log()
