"""The rollups' side of the retention: the daily tier, tier purges that never lose a
statistic, the watermark the raw purge relies on (honest across a kill -9), and raw
purge marks that keep rebuilds off exact buckets (real SQLite store)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import orjson
import pytest

from homeiq.errors import RangePurged
from homeiq.maintenance.rollups import (
    _COLUMNS,
    STEPS,
    Bucket,
    RollupStore,
    _row,
    align,
    complete,
    days_from_hours,
    fill,
    merge,
    roll_up,
)
from homeiq.maintenance.statistics import (
    LATE_BEYOND_RETENTION,
    RollupMaintainer,
    rebuild_range,
    statistics,
)
from homeiq.model import EventRecord, Source
from homeiq.pipeline.normalize import numeric_value
from homeiq.sinks.sqlite import EVENTS_DB, SQLiteSink
from homeiq.sqlitedb import connect, migrate

US = 1_000_000
H = 3600 * US
D = 86400 * US
T0 = align(1_795_640_400_000_000, 86400)  # a UTC midnight
NOW = T0 + 3 * D + 5 * H


def ev(offset_s: float, state: str, entity_id: str = "sensor.power", **kw: object) -> EventRecord:
    return EventRecord(
        entity_id=entity_id,
        time=T0 + int(offset_s * US),
        state=state,
        value=numeric_value(state),
        attributes_json=orjson.dumps({}),
        **kw,  # type: ignore[arg-type]
    )


def history(entity_id: str = "sensor.power") -> list[EventRecord]:
    """Three days and a bit: a changing number, an unavailable spell, quiet hours."""
    states = ["10", "12", "unavailable", "15", "9", "30", "31", "7"]
    return [
        ev(at, states[i % len(states)], entity_id)
        for i, at in enumerate(range(600, 3 * 86400 + 4 * 3600, 7 * 3600 + 1234))
    ]


def shape(buckets: Sequence[Bucket]) -> list[tuple[object, ...]]:
    """What a statistic shows of a bucket (sums rounded: folding order moves the last bits)."""
    return [
        (
            b.start,
            b.count,
            b.num_count,
            round(b.sum, 6),
            b.min,
            b.max,
            b.last_state,
            round(b.tw_sum, 3),
            round(b.tw_seconds, 3),
            tuple(sorted((k, round(v, 3)) for k, v in b.state_seconds.items())),
        )
        for b in buckets
    ]


class Home:
    def __init__(self, root: Path, sink: SQLiteSink, store: RollupStore) -> None:
        self.root = root
        self.sink = sink
        self.store = store
        self.maintainer = RollupMaintainer(sink, store)

    async def write(self, records: list[EventRecord], *, tell: bool = True) -> None:
        await self.sink.write(records)
        if tell:
            self.maintainer.stored(records)

    def restart(self) -> None:
        """A new process on the same files: what the old one held in memory is gone."""
        self.maintainer = RollupMaintainer(self.sink, self.store)

    def stats(self, period: str, entity_id: str = "sensor.power") -> list[tuple[object, ...]]:
        return shape(statistics(self.store, entity_id, period, T0, NOW, now=NOW).buckets)

    def delete_raw_before(self, before: int) -> None:
        conn = connect(str(self.root / EVENTS_DB))
        try:
            conn.execute("DELETE FROM events WHERE time < ?", (before,))
        finally:
            conn.close()


@pytest.fixture
async def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Home]:
    monkeypatch.setattr("homeiq.maintenance.statistics.now_us", lambda: NOW)
    sink = SQLiteSink(tmp_path, writer="thread")
    await sink.open()
    store = RollupStore.in_dir(tmp_path)
    try:
        yield Home(tmp_path, sink, store)
    finally:
        await sink.close()
        store.close()


def recomputed(records: list[EventRecord], period_s: int) -> list[Bucket]:
    """The buckets straight from the events, as a reference."""
    return roll_up(records[0].entity_id, None, records, period_s, NOW)


# -- the daily tier --------------------------------------------------------------------


async def test_the_daily_tier_is_folded_live_and_matches_the_hours(home: Home) -> None:
    records = history()
    for record in records:  # live, one at a time
        await home.write([record])
    await home.maintainer.refresh()
    stored = home.store.buckets("1d", "sensor.power", T0, NOW)
    assert shape(stored) == shape(recomputed(records, 86400))
    hours = home.store.buckets("1h", "sensor.power", T0, NOW)
    merged = merge(fill(hours, None, "sensor.power", 3600, T0, NOW), 86400)
    assert home.stats("1d") == shape(merged)  # the stored day says what the hours say
    assert [b.count for b in stored] == [4, 3, 3, 1]


async def test_a_late_event_recomputes_its_day_from_the_hours_before_it(home: Home) -> None:
    records = history()
    await home.write(records)
    await home.maintainer.refresh()
    late = ev(86400 + 20 * 3600 + 5, "99", source=Source.BACKFILL)
    await home.write([late])
    await home.maintainer.refresh()  # recomputes from 20:00 of day 2, days from hours
    everything = sorted([*records, late], key=lambda r: r.time)
    for period, seconds in (("5m", 300), ("1h", 3600), ("1d", 86400)):
        stored = home.store.buckets(period, "sensor.power", T0, NOW)
        assert shape(stored) == shape(recomputed(everything, seconds)), period


async def test_the_open_day_is_credited_up_to_now(home: Home) -> None:
    await home.write([ev(3 * 86400 + 600, "on", "light.desk")])
    await home.maintainer.refresh()
    (day,) = statistics(home.store, "light.desk", "1d", T0 + 3 * D, NOW, now=NOW).buckets
    assert day.state_seconds == {"on": 5 * 3600 - 600}  # to now, not to the last save
    later = NOW + 2 * H
    (day,) = statistics(home.store, "light.desk", "1d", T0 + 3 * D, later, now=later).buckets
    assert day.state_seconds == {"on": 7 * 3600 - 600}


def test_the_daily_tier_is_filled_from_existing_hours_when_added(tmp_path: Path) -> None:
    """A rollups.db of the version before the daily tier gets its days from its hours."""
    records = history()
    hours = recomputed(records, 3600)
    conn = connect(str(tmp_path / "rollups.db"))
    migrate(conn, STEPS[:2])
    conn.executemany(  # the store's own row layout, as the version before wrote it
        f"INSERT INTO rollup_1h ({_COLUMNS}) VALUES ({', '.join('?' * 14)})",
        [_row(b) for b in hours],
    )
    conn.close()
    store = RollupStore.in_dir(tmp_path)
    try:
        days = store.buckets("1d", "sensor.power", T0, NOW)
    finally:
        store.close()
    # The last day is saved as far as its last hour was; statistics credit it to now.
    assert shape([complete(d, NOW) for d in days]) == shape(recomputed(records, 86400))
    assert shape(days) == shape(days_from_hours(hours, None))


# -- purging tiers ---------------------------------------------------------------------


async def test_count_before_is_what_purge_deletes_chunk_by_chunk(home: Home) -> None:
    await home.write(history())
    await home.write(history("sensor.kept"))
    await home.maintainer.refresh()
    cutoff = T0 + 2 * D + 600 * US  # inside a 5m bucket: that one stays

    def cutoff_for(entity_id: str) -> int | None:
        return None if entity_id == "sensor.kept" else cutoff

    before = home.store.buckets("5m", "sensor.power", T0, NOW)
    gone = [b for b in before if b.start + 300 * US <= cutoff]
    assert len(gone) == 7
    assert home.store.count_before("5m", cutoff_for) == 7
    assert home.store.purge("5m", cutoff_for, chunk_rows=3) == 7  # three transactions
    assert home.store.buckets("5m", "sensor.power", T0, NOW) == before[7:]
    assert home.store.count_before("5m", cutoff_for) == 0
    assert len(home.store.buckets("5m", "sensor.kept", T0, NOW)) == len(before)  # kept
    assert home.store.tier_purged_before("5m", "sensor.power") == align(cutoff, 300)
    assert home.store.tier_purged_before("5m", "sensor.kept") is None


async def test_a_bucket_the_coarser_tier_does_not_hold_is_not_purged(
    home: Home, caplog: pytest.LogCaptureFixture
) -> None:
    await home.write(history())
    await home.maintainer.refresh()
    first_hour = T0 + 600 * US - (600 * US) % H
    conn = connect(str(home.root / "rollups.db"))
    conn.execute("DELETE FROM rollup_1h WHERE start = ?", (first_hour,))  # not folded
    conn.close()
    assert home.store.count_before("5m", lambda _: NOW) == 10  # the first hour's stays
    with caplog.at_level(logging.WARNING, logger="homeiq.maintenance.tiers"):
        assert home.store.purge("5m", lambda _: NOW, chunk_rows=100) == 10
    (said,) = caplog.records
    assert said.getMessage().startswith("kept 1 5m buckets past their keep period: the 1h")
    (left,) = home.store.buckets("5m", "sensor.power", T0, NOW)
    assert left.start == T0 + 600 * US


async def test_statistics_of_a_purged_tier_name_the_setting_and_the_coarser_period(
    home: Home,
) -> None:
    await home.write(history())
    await home.maintainer.refresh()
    hourly = home.stats("1h")
    home.store.purge("5m", lambda _: T0 + 2 * D, chunk_rows=100)
    with pytest.raises(RangePurged) as refused:
        statistics(home.store, "sensor.power", "5m", T0, NOW, now=NOW)
    message = str(refused.value)
    assert "5m buckets of sensor.power are kept from 2026-11-27" in message
    assert "(HOMEIQ_RETENTION_FIVE_MINUTE_DAYS, or a retention override" in message
    assert message.endswith("start there, or ask for period=1h")
    after = statistics(home.store, "sensor.power", "5m", T0 + 2 * D, NOW, now=NOW)
    assert sum(b.count for b in after.buckets) == 4  # from where it is kept: answered
    assert home.stats("1h") == hourly  # the coarser tier still answers all of it


# -- the watermark and the raw purge ----------------------------------------------------


class CountingReader:
    """The real store's reader, counting the events it hands out."""

    def __init__(self, sink: SQLiteSink) -> None:
        self.sink = sink
        self.events_read = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.sink, name)

    async def history_many(self, *args: object, **kw: object) -> dict[str, list[EventRecord]]:
        found = await self.sink.history_many(*args, **kw)  # type: ignore[arg-type]
        self.events_read += sum(len(v) for v in found.values())
        return found


async def test_fold_before_folds_what_was_never_told_and_then_reads_nothing(
    home: Home,
) -> None:
    records = history()
    await home.write(records, tell=False)  # stored, never folded (a crash before)
    reader = CountingReader(home.sink)
    home.maintainer = RollupMaintainer(reader, home.store)  # type: ignore[arg-type]
    await home.maintainer.fold_before(["sensor.power"], T0 + 2 * D)
    for period, seconds in (("5m", 300), ("1h", 3600), ("1d", 86400)):
        stored = home.store.buckets(period, "sensor.power", T0, NOW)
        assert shape(stored) == shape(recomputed(records, seconds)), period
    assert home.store.folded_through(["sensor.power"]) == {"sensor.power": NOW}
    assert reader.events_read == len(records)
    await home.maintainer.fold_before(["sensor.power"], T0 + 3 * D)
    assert reader.events_read == len(records)  # folded since: nothing read again


async def test_a_kill_leaves_the_watermark_below_what_was_not_saved(home: Home) -> None:
    records = history()
    await home.write(records[:4], tell=False)
    await home.maintainer.fold_before(["sensor.power"], T0)  # continuous from here
    await home.write(records[4:6])
    await home.maintainer.refresh()  # saved: the watermark follows the last saved event
    assert home.store.folded_through(["sensor.power"]) == {"sensor.power": records[5].time + 1}
    await home.write(records[6:])  # folded in memory, never saved: kill -9
    home.restart()
    await home.write([ev(3 * 86400 + 5 * 3600 - 60, "5")])  # resumed: not continuous
    await home.maintainer.refresh()
    assert home.store.folded_through(["sensor.power"]) == {"sensor.power": records[5].time + 1}
    assert home.maintainer.pending_oldest() is None
    await home.maintainer.fold_before(["sensor.power"], T0 + 3 * D)
    everything = [*records, ev(3 * 86400 + 5 * 3600 - 60, "5")]
    for period, seconds in (("5m", 300), ("1h", 3600), ("1d", 86400)):
        stored = home.store.buckets(period, "sensor.power", T0, NOW)
        assert shape(stored) == shape(recomputed(everything, seconds)), period


async def test_a_late_event_lowers_the_watermark_at_once(home: Home) -> None:
    records = history()
    await home.write(records, tell=False)
    await home.maintainer.fold_before(["sensor.power"], T0)
    late = ev(86400 + 100, "77", source=Source.BACKFILL)
    await home.write([late])  # told, not yet recomputed
    assert home.store.folded_through(["sensor.power"]) == {"sensor.power": late.time}
    assert home.maintainer.pending_oldest() == late.time
    home.restart()  # kill -9 before the recompute: the watermark says so
    await home.maintainer.fold_before(["sensor.power"], T0 + 2 * D)
    everything = sorted([*records, late], key=lambda r: r.time)
    stored = home.store.buckets("1h", "sensor.power", T0, NOW)
    assert shape(stored) == shape(recomputed(everything, 3600))
    assert home.store.folded_through(["sensor.power"]) == {"sensor.power": NOW}


async def test_after_the_raw_purge_rebuilds_and_late_events_leave_old_buckets_alone(
    home: Home,
) -> None:
    records = history()
    await home.write(records)
    await home.maintainer.refresh()
    before = {p: home.stats(p) for p in ("5m", "1h", "1d")}
    purge_at = T0 + 2 * D + 3 * H
    await home.maintainer.fold_before(["sensor.power"], purge_at)
    home.delete_raw_before(purge_at)
    home.store.mark_raw_purged("sensor.power", purge_at)
    home.store.mark_raw_purged("sensor.power", T0)  # never moves back
    assert home.store.raw_purged_before("sensor.power") == purge_at
    assert home.store.raw_purged_before("sensor.other") is None
    await rebuild_range(home.maintainer, T0, NOW, ["sensor.power"])  # homeiq rollups rebuild
    assert {p: home.stats(p) for p in before} == before  # the same numbers, from rollups
    home.restart()
    await home.write([ev(3600, "500", source=Source.BACKFILL)])  # older than the purge
    await home.maintainer.refresh()
    assert {p: home.stats(p) for p in before} == before
    assert home.maintainer.late_beyond_retention == 1
    assert home.store.counter(LATE_BEYOND_RETENTION) == 1


async def test_a_late_event_after_the_purge_day_recomputes_from_the_buckets_state(
    home: Home,
) -> None:
    records = history()
    await home.write(records)
    await home.maintainer.refresh()
    purge_at = T0 + 2 * D
    home.delete_raw_before(purge_at)  # the event before day 3 is gone with it
    home.store.mark_raw_purged("sensor.power", purge_at)
    late = ev(2 * 86400 + 7200, "3", source=Source.BACKFILL)
    await home.write([late])
    await home.maintainer.refresh()
    everything = sorted([*records, late], key=lambda r: r.time)
    for period, seconds in (("5m", 300), ("1h", 3600), ("1d", 86400)):
        stored = home.store.buckets(period, "sensor.power", T0, NOW)
        assert shape(stored) == shape(recomputed(everything, seconds)), period


def test_purge_refuses_a_chunk_under_one_row(tmp_path: Path) -> None:
    store = RollupStore.in_dir(tmp_path)
    try:
        with pytest.raises(ValueError, match="chunk_rows must be at least 1"):
            store.purge("5m", lambda _: NOW, chunk_rows=0)
        with pytest.raises(ValueError, match="period must be one of 5m, 1h, 1d"):
            store.count_before("1w", lambda _: NOW)
    finally:
        store.close()


def test_the_schema_steps_are_frozen(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    try:
        assert migrate(conn, STEPS) == 3
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    assert {"rollup_5m", "rollup_1h", "rollup_1d", "rollup_folded", "rollup_raw_purged"} <= tables


async def test_a_late_event_during_a_rebuild_keeps_the_watermark_under_it(home: Home) -> None:
    """An admin rebuild (not taking the entity's live events) while a backfilled event
    lands: the rebuild's own watermark must not pass over it."""
    records = history()
    await home.write(records, tell=False)
    await home.maintainer.fold_before(["sensor.power"], T0)
    late = ev(2 * 86400 + 60, "42", source=Source.BACKFILL)
    reader = home.maintainer.reader
    landed = False

    class LateDuringRead:
        def __getattr__(self, name: str) -> object:
            return getattr(reader, name)

        async def history_many(self, *args: object, **kw: object) -> object:
            nonlocal landed
            found = await reader.history_many(*args, **kw)  # type: ignore[arg-type]
            if not landed:  # after the read: the rebuild does not see it
                landed = True
                await home.write([late])
            return found

    home.maintainer.reader = LateDuringRead()  # type: ignore[assignment]
    await home.maintainer.rebuild(["sensor.power"], T0 + 2 * D)
    assert home.store.folded_through(["sensor.power"]) == {"sensor.power": late.time}
    home.maintainer.reader = reader
    await home.maintainer.refresh()  # the late event's recompute moves it on
    assert home.store.folded_through(["sensor.power"]) == {"sensor.power": NOW}
    everything = sorted([*records, late], key=lambda r: r.time)
    stored = home.store.buckets("1d", "sensor.power", T0, NOW)
    assert shape(stored) == shape(recomputed(everything, 86400))
