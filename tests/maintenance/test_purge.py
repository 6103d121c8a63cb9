"""The retention purge on SQLite and the real InfluxDB 1.6.7: every tier cut at its own
keep, overrides per entity, the dry run, statistics still answering from the rollups
over a purged range, clocks that jump, and spooled events never purged."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from homeiq.errors import RangePurged
from homeiq.maintenance.purge import Purger, PurgeReport
from homeiq.maintenance.queries import statistics
from homeiq.maintenance.rollups import RollupStore
from homeiq.maintenance.statistics import RollupMaintainer
from homeiq.model import EventRecord
from homeiq.pipeline.spool import Spool
from homeiq.settings import Settings
from homeiq.sinks import registry
from homeiq.sinks.base import EventReader, Sink
from tests.support.influxdb import T0, event, influx_settings

DAY = 86_400_000_000
HOUR = DAY // 24
ENTITIES = ("sensor.kitchen_power", "sensor.temp", "light.hall")
SPAN_DAYS = 100
# The rollups fold up to the wall clock: the home's history ends before it (a day
# boundary, two days ago), so every event is foldable.
BASE = (time.time_ns() // 1000 // DAY - SPAN_DAYS - 2) * DAY
NEWEST = BASE + SPAN_DAYS * DAY - 6 * HOUR  # the last event written
KEEP = {"raw": 10, "five_minute": 20, "hourly": 40}  # days; daily: forever
RETENTION = {
    "retention_raw_days": KEEP["raw"],
    "retention_five_minute_days": KEEP["five_minute"],
    "retention_hourly_days": KEEP["hourly"],
    "retention_overrides": [{"entities": ["sensor.*_power"], "raw_days": 2}],
}


def at(entity_id: str, time_us: int, state: str, **kw: Any) -> EventRecord:
    """``event`` moved from T0 to ``time_us``."""
    return event(entity_id, (time_us - T0) / 1e6, state, **kw)


def home() -> list[EventRecord]:
    """Every entity changes every 6 hours for SPAN_DAYS (400 events each)."""
    records = []
    for n in range(SPAN_DAYS * 4):
        t = BASE + n * 6 * HOUR
        records.append(at("sensor.kitchen_power", t, str(n % 50), value=float(n % 50)))
        records.append(at("sensor.temp", t, str(20 + n % 5), value=float(20 + n % 5)))
        records.append(at("light.hall", t, "on" if n % 2 else "off"))
    return records


@dataclass
class Store:
    settings: Settings
    sink: Sink
    reader: EventReader
    rollups: RollupStore
    maintainer: RollupMaintainer
    spool: Spool

    def purger(self, now_us: int = NEWEST + HOUR, **changes: Any) -> Purger:
        settings = self.settings
        if changes:
            settings = Settings(**{**settings.model_dump(), **changes})
        return Purger.for_store(
            settings,
            self.sink,
            self.reader,
            folder=self.maintainer,
            rollups=self.rollups,
            spool=self.spool,
            now_us=lambda: now_us,
        )

    async def keys(self) -> set[tuple[str, int]]:
        return await self.reader.keys()


@pytest.fixture(params=["sqlite", pytest.param("influxdb", marks=pytest.mark.influxdb)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        settings = Settings(data_dir=tmp_path, sqlite_writer="thread", **RETENTION)
    else:
        server = request.getfixturevalue("influxdb")
        database = request.getfixturevalue("influxdb_database")
        settings = influx_settings(server.url, database, data_dir=tmp_path, **RETENTION)
    backend = registry.backend(settings)
    sink, reader = backend.open_sink(), backend.open_reader()
    await sink.open()
    rollups = RollupStore.in_dir(tmp_path)
    spool = Spool.in_dir(tmp_path, max_bytes=10_000_000)
    await sink.write(home())
    yield Store(settings, sink, reader, rollups, RollupMaintainer(reader, rollups), spool)
    spool.close()
    rollups.close()
    await reader.close()
    await sink.close()


def kept_after(cutoff: int) -> Callable[[tuple[str, int]], bool]:
    return lambda key: key[1] >= cutoff


def tier(report: PurgeReport, name: str) -> int:
    return next(t.rows for t in report.tiers if t.tier == name)


async def test_every_tier_is_cut_at_its_keep_and_statistics_still_answer(store: Store) -> None:
    before = await store.keys()
    # Rolled up as a running server keeps them (a dry run folds nothing: it only counts).
    await store.maintainer.fold_before(ENTITIES, NEWEST + 1)
    dry = await store.purger().run(dry_run=True)
    assert await store.keys() == before  # a dry run deletes nothing
    report = await store.purger().run()
    reference = NEWEST  # the newest stored event, earlier than the clock
    cutoffs = {e: reference - (2 if e.endswith("_power") else KEEP["raw"]) * DAY for e in ENTITIES}
    expected = {k for k in before if k[1] >= cutoffs[k[0]]}
    assert await store.keys() == expected
    assert tier(report, "raw") == len(before - expected) == tier(dry, "raw")

    for period, days in (("5m", KEEP["five_minute"]), ("1h", KEEP["hourly"])):
        cutoff = reference - days * DAY
        for entity_id in ENTITIES:
            buckets = store.rollups.buckets(period, entity_id, BASE, NEWEST + DAY)
            assert buckets, (period, entity_id)
            assert min(b.start for b in buckets) >= cutoff - 86400 * 1_000_000  # a day's slack
    assert tier(report, "5m") > 0 and tier(report, "1h") > 0
    assert tier(dry, "5m") == tier(report, "5m")

    # The daily tier is kept forever and holds every event, purged ones included:
    # statistics over the purged range answer from it, and a purged tier says so.
    for entity_id in ENTITIES:
        days = statistics(store.rollups, entity_id, "1d", BASE, NEWEST + HOUR, now=NEWEST + HOUR)
        assert sum(b.count for b in days.buckets) == SPAN_DAYS * 4
        assert len(days.buckets) == SPAN_DAYS
    temp = statistics(store.rollups, "sensor.temp", "1d", BASE, BASE + DAY, now=NEWEST)
    assert temp.buckets[0].count == 4 and temp.buckets[0].min == 20.0
    with pytest.raises(RangePurged):
        statistics(store.rollups, "sensor.temp", "1h", BASE, BASE + DAY, now=NEWEST)

    # Idempotent: a second run finds nothing more.
    again = await store.purger().run()
    assert again.rows == 0


async def test_a_clock_that_jumps_forward_purges_by_the_newest_event(store: Store) -> None:
    before = await store.keys()
    await store.purger(now_us=NEWEST + 3650 * DAY).run()  # ten years ahead
    remaining = await store.keys()
    assert {k for k in remaining if k[0] == "sensor.temp"} == {
        k for k in before if k[0] == "sensor.temp" and k[1] >= NEWEST - KEEP["raw"] * DAY
    }


async def test_a_clock_that_jumps_back_purges_less_never_the_future(store: Store) -> None:
    before = await store.keys()
    back = BASE + 50 * DAY  # the clock says day 50 of 100
    await store.purger(now_us=back).run()
    remaining = await store.keys()
    cutoff = back - KEEP["raw"] * DAY
    assert {k for k in remaining if k[0] == "sensor.temp"} == {
        k for k in before if k[0] == "sensor.temp" and k[1] >= cutoff
    }


async def test_spooled_events_hold_the_purge_back(store: Store) -> None:
    before = await store.keys()
    held = BASE + 20 * DAY + 1_000_000  # the spooled event's time
    store.spool.append([at("sensor.temp", held, "19")])  # waiting to be stored
    report = await store.purger().run()
    assert "events waiting in the spool" in report.held_back
    assert {k for k in await store.keys()} == {k for k in before if k[1] >= held}


async def test_forever_keeps_every_event(store: Store) -> None:
    before = await store.keys()
    report = await store.purger(
        retention_raw_days="forever",
        retention_five_minute_days="forever",
        retention_hourly_days="forever",
        retention_overrides=[],
    ).run()
    assert report.rows == 0
    assert await store.keys() == before


async def test_an_empty_store_has_nothing_to_purge(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, sqlite_writer="thread")
    backend = registry.backend(settings)
    sink, reader = backend.open_sink(), backend.open_reader()
    await sink.open()
    rollups = RollupStore.in_dir(tmp_path)
    try:
        purger = Purger.for_store(
            settings, sink, reader, folder=RollupMaintainer(reader, rollups), rollups=rollups
        )
        report = await purger.run(dry_run=True)
        assert report.reference is None and report.rows == 0
        assert [t.tier for t in report.tiers] == ["raw", "5m", "1h", "1d"]
    finally:
        rollups.close()
        await reader.close()
        await sink.close()


@pytest.mark.influxdb
async def test_influxdb_expires_raw_events_itself_when_managed(
    influxdb: Any, influxdb_database: str, tmp_path: Path
) -> None:
    settings = influx_settings(
        influxdb.url,
        influxdb_database,
        data_dir=tmp_path,
        retention_influxdb_manage=True,
        **RETENTION,
    )
    backend = registry.backend(settings)
    sink, reader = backend.open_sink(), backend.open_reader()
    await sink.open()
    rollups = RollupStore.in_dir(tmp_path)
    try:
        await sink.write(home())
        before = await reader.keys()
        maintainer = RollupMaintainer(reader, rollups)
        purger = Purger.for_store(
            settings, sink, reader, folder=maintainer, rollups=rollups, now_us=lambda: NEWEST
        )
        dry = await purger.run(dry_run=True)
        assert "would be set to 12d" in dry.tiers[0].note  # the longest raw keep + 2 days
        report = await purger.run()
        assert report.tiers[0].note == "retention policy 'autogen': 288h0m0s"
        # The override's entity is deleted by time; the others are left to the policy.
        cutoff = NEWEST - 2 * DAY
        assert await reader.keys() == {
            k for k in before if k[0] != "sensor.kitchen_power" or k[1] >= cutoff
        }
        assert report.tiers[0].rows == sum(
            1 for k in before if k[0] == "sensor.kitchen_power" and k[1] < cutoff
        )
        # Folded first all the same: the daily buckets hold every event.
        days = rollups.buckets("1d", "sensor.temp", BASE - DAY, NEWEST + DAY)
        assert sum(b.count for b in days) == SPAN_DAYS * 4
        # And marked as purged: the expiry empties the range in its own time, so no
        # rebuild may recompute those buckets from what is left of it.
        assert rollups.raw_purged_before("sensor.temp") == NEWEST - 10 * DAY
    finally:
        rollups.close()
        await reader.close()
        await sink.close()
