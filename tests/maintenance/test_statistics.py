"""Rollups kept current from the stored events (real SQLite store), rebuilt after late
events, and statistics answered from them alone."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from homeiq.maintenance.rollups import RollupStore, align
from homeiq.maintenance.statistics import RollupMaintainer, statistics
from homeiq.model import EventRecord, Source
from homeiq.pipeline.normalize import numeric_value
from homeiq.sinks.sqlite import SQLiteSink

H = 3600 * 1_000_000
T0 = align(1_795_640_400_000_000, 86400)
NOW = T0 + 3 * H


def ev(offset_s: float, state: str, entity_id: str = "sensor.power", **kw: object) -> EventRecord:
    return EventRecord(
        entity_id=entity_id,
        time=T0 + int(offset_s * 1_000_000),
        state=state,
        value=numeric_value(state),
        attributes_json=orjson.dumps({}),
        **kw,  # type: ignore[arg-type]
    )


class Setup:
    def __init__(self, sink: SQLiteSink, store: RollupStore) -> None:
        self.sink = sink
        self.store = store
        self.maintainer = RollupMaintainer(sink, store)

    async def write(self, records: list[EventRecord]) -> None:
        await self.sink.write(records)
        self.maintainer.stored(records)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    sink = SQLiteSink(tmp_path, writer="thread")
    await sink.open()
    store = RollupStore.in_dir(tmp_path)
    try:
        yield Setup(sink, store)
    finally:
        await sink.close()
        store.close()


async def test_buckets_follow_the_written_events(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("homeiq.maintenance.statistics.now_us", lambda: NOW)
    await setup.write([ev(0, "10"), ev(1800, "30"), ev(3600 + 600, "20")])
    await setup.maintainer.refresh()
    hourly = statistics(setup.store, "sensor.power", "1h", T0, NOW, now=NOW).buckets
    assert [b.count for b in hourly] == [2, 1, 0]
    assert hourly[0].time_weighted_mean == pytest.approx(20.0)  # 10 then 30, half each
    assert hourly[1].time_weighted_mean == pytest.approx((30 * 600 + 20 * 3000) / 3600)
    assert hourly[2].time_weighted_mean == 20.0  # quiet hour: still 20
    five = statistics(setup.store, "sensor.power", "5m", T0, T0 + H, now=NOW).buckets
    assert len(five) == 12 and sum(b.count for b in five) == 2


async def test_a_late_backfilled_event_recomputes_closed_buckets(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("homeiq.maintenance.statistics.now_us", lambda: NOW)
    await setup.write([ev(0, "on", "light.desk"), ev(2 * 3600, "off", "light.desk")])
    await setup.maintainer.refresh()
    before = statistics(setup.store, "light.desk", "1h", T0, NOW, now=NOW).buckets
    assert before[0].state_seconds == {"on": 3600}
    # Backfill brings an event HomeIQ missed: the light was off for the second half hour.
    await setup.write([ev(1800, "off", "light.desk", source=Source.BACKFILL)])
    await setup.maintainer.refresh()
    after = statistics(setup.store, "light.desk", "1h", T0, NOW, now=NOW).buckets
    assert after[0].state_seconds == {"on": 1800, "off": 1800}
    assert after[1].state_seconds == {"off": 3600}
    day = statistics(setup.store, "light.desk", "1d", T0, NOW, now=NOW).buckets
    assert day[0].state_seconds == {"on": 1800, "off": 3 * 3600 - 1800}


async def test_statistics_never_read_events(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("homeiq.maintenance.statistics.now_us", lambda: NOW)
    await setup.write([ev(0, "5")])
    await setup.maintainer.refresh()
    await setup.sink.close()  # the event store is gone; the rollups still answer
    (hour, *_) = statistics(setup.store, "sensor.power", "1h", T0, NOW, now=NOW).buckets
    assert hour.mean == 5.0
    await setup.sink.open()


def test_unknown_period_is_refused(tmp_path: Path) -> None:
    store = RollupStore.in_dir(tmp_path)
    try:
        with pytest.raises(ValueError, match="period must be one of 5m, 1h, 1d"):
            statistics(store, "sensor.power", "1w", T0, NOW, now=NOW)
    finally:
        store.close()


async def test_live_folding_matches_a_recompute_from_the_events(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("homeiq.maintenance.statistics.now_us", lambda: NOW)
    await setup.write([ev(0, "1")])
    await setup.maintainer.refresh()
    states = ["2", "unavailable", "4", "5", "3"]
    for i, state in enumerate(states):  # live, in order: folded without reading back
        await setup.write([ev(400 + i * 900, state)])
    await setup.maintainer.refresh()
    folded = {p: setup.store.buckets(p, "sensor.power", T0, NOW) for p in ("5m", "1h")}
    await setup.maintainer.rebuild(["sensor.power"], T0, NOW)
    for period, buckets in folded.items():
        assert setup.store.buckets(period, "sensor.power", T0, NOW) == buckets
    assert sum(b.count for b in folded["1h"]) == 6


async def test_an_out_of_order_event_is_recomputed_not_folded(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("homeiq.maintenance.statistics.now_us", lambda: NOW)
    await setup.write([ev(0, "10"), ev(3000, "30")])
    await setup.maintainer.refresh()
    await setup.write([ev(1500, "20", source=Source.BACKFILL)])  # older than the last
    await setup.maintainer.refresh()
    (hour,) = setup.store.buckets("1h", "sensor.power", T0, T0 + H)
    assert (hour.count, hour.min, hour.max) == (3, 10.0, 30.0)
    assert hour.time_weighted_mean == pytest.approx((10 * 1500 + 20 * 1500 + 30 * 600) / 3600)


async def test_a_restart_goes_on_folding_where_the_saved_buckets_stopped(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = iter([T0 + 2000 * 1_000_000, NOW, NOW, NOW])
    monkeypatch.setattr("homeiq.maintenance.statistics.now_us", lambda: next(clock))
    await setup.write([ev(0, "10"), ev(1000, "20")])
    await setup.maintainer.refresh()  # saved with the open bucket credited to T0+2000 s
    restarted = RollupMaintainer(setup.sink, setup.store)  # a new process, same files
    await setup.sink.write([ev(2500, "40"), ev(4000, "50")])
    restarted.stored([ev(2500, "40"), ev(4000, "50")])
    await restarted.refresh()
    folded = {p: setup.store.buckets(p, "sensor.power", T0, NOW) for p in ("5m", "1h")}
    await restarted.rebuild(["sensor.power"], T0, NOW)
    for period, buckets in folded.items():
        recomputed = setup.store.buckets(period, "sensor.power", T0, NOW)
        assert [(b.start, b.count, b.tw_sum, b.state_seconds) for b in buckets] == [
            (b.start, b.count, b.tw_sum, b.state_seconds) for b in recomputed
        ]


async def test_a_failed_last_refresh_at_stop_is_logged_not_hidden(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    await setup.write([ev(0, "10"), ev(60, "20")])
    setup.store.close()  # rollups.db cannot take the buckets any more
    with caplog.at_level(logging.WARNING, logger="homeiq.maintenance.statistics"):
        await setup.maintainer.stop()  # does not raise
    (logged,) = caplog.records
    assert "last rollup refresh failed at stop (" in logged.getMessage()
    assert "sqlite cannot write" in logged.getMessage()
    assert "rollups.db" in logged.getMessage()  # the error, named
    assert not logged.exc_info  # HomeIQ's own error: its message, no traceback


async def test_an_unreadable_rollups_db_makes_new_entities_wait_for_a_recompute(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    setup.store.close()
    with caplog.at_level(logging.WARNING, logger="homeiq.maintenance.statistics"):
        await setup.write([ev(0, "10")])  # the first event of an entity reads rollups.db
    assert setup.maintainer._dirty == {"sensor.power": T0}  # recomputed by the next refresh
    assert "cannot resume the rollups of sensor.power" in caplog.records[0].getMessage()
