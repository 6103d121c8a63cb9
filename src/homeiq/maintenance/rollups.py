"""Rollups: 5-minute, hourly and daily aggregates per entity, so statistics never scan
events, and what is left of a tier once the retention purged part of it.

For each entity and bucket that holds at least one event HomeIQ keeps: the event count;
for numeric states the count, sum, min, max and last value, and the time-weighted
integral (value times seconds) with the seconds it covers; for every state that is not
a number the seconds spent in it (what Home Assistant's long-term statistics do not
give: time a light was on, a climate mode, a binary sensor, a sensor unavailable). A
bucket's time-weighted parts start from the state the entity was in when the bucket
began, so they are exact, not sampled.

Buckets without events are not stored: the entity stayed in the state the previous
bucket ended with, and :func:`fill` reconstructs them at query time. That keeps the
tables no larger than the events (most entities change less often than every 5 minutes).

The computation is pure (:mod:`homeiq.maintenance.buckets`); :class:`RollupStore`
keeps the buckets in ``rollups.db`` in the data directory, whatever the event store is,
so statistics work the same on SQLite and InfluxDB. Beside the buckets it keeps, per
entity: how far the raw events are known to be folded (the watermark the retention
purge relies on), before when the raw events were purged (no rebuild goes there again)
and before when each tier was purged (statistics refuse those ranges by name).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from homeiq.maintenance.buckets import (
    PERIODS,
    US,
    Accumulator,
    Bucket,
    align,
    align_up,
    complete,
    day_from_hours,
    days_from_hours,
    fill,
    merge,
    roll_up,
)
from homeiq.sqlitedb import SQLiteFile, run_script

__all__ = [
    "PERIODS",
    "ROLLUPS_DB",
    "US",
    "Accumulator",
    "Bucket",
    "RollupStore",
    "align",
    "align_up",
    "complete",
    "day_from_hours",
    "fill",
    "merge",
    "roll_up",
]

ROLLUPS_DB = "rollups.db"
# Which tier must hold a bucket's time before the bucket may be purged.
COARSER = {"5m": "1h", "1h": "1d"}
# "Folded from the entity's first event": a rebuild that read everything there is.
FROM_FIRST = -(2**62)


def _bucket_table(name: str) -> str:
    return f"""CREATE TABLE rollup_{name} (
        entity_id TEXT NOT NULL, start INTEGER NOT NULL, count INTEGER NOT NULL,
        num_count INTEGER NOT NULL, sum REAL NOT NULL, min REAL, max REAL,
        last_value REAL, last_state TEXT, tw_sum REAL NOT NULL,
        tw_seconds REAL NOT NULL, state_seconds BLOB NOT NULL,
        PRIMARY KEY (entity_id, start)) WITHOUT ROWID"""


def _v1(conn: sqlite3.Connection) -> None:
    run_script(conn, ";".join(_bucket_table(name) for name in ("5m", "1h")))


def _v2(conn: sqlite3.Connection) -> None:
    run_script(
        conn,
        ";".join(
            f"ALTER TABLE rollup_{name} ADD COLUMN {column} INTEGER"
            for name in ("5m", "1h")
            for column in ("credited_to", "last_time")
        ),
    )


def _v3(conn: sqlite3.Connection) -> None:
    """The daily tier, filled from the hourly buckets already kept, and the retention's
    bookkeeping (watermarks, purge marks, counters)."""
    run_script(
        conn,
        ";".join(
            [
                _bucket_table("1d"),
                "ALTER TABLE rollup_1d ADD COLUMN credited_to INTEGER",
                "ALTER TABLE rollup_1d ADD COLUMN last_time INTEGER",
                "CREATE TABLE rollup_folded (entity_id TEXT PRIMARY KEY,"
                " through INTEGER NOT NULL) WITHOUT ROWID",
                "CREATE TABLE rollup_raw_purged (entity_id TEXT PRIMARY KEY,"
                " before INTEGER NOT NULL) WITHOUT ROWID",
                "CREATE TABLE rollup_tier_purged (period TEXT NOT NULL, entity_id TEXT NOT NULL,"
                " before INTEGER NOT NULL, PRIMARY KEY (period, entity_id)) WITHOUT ROWID",
                "CREATE TABLE rollup_counters (name TEXT PRIMARY KEY,"
                " value INTEGER NOT NULL) WITHOUT ROWID",
            ]
        ),
    )
    entity: str | None = None
    hours: list[Bucket] = []
    insert = f"INSERT INTO rollup_1d ({_COLUMNS}) VALUES ({', '.join('?' * 14)})"
    # One entity's hours at a time: memory stays that of the busiest entity.
    for row in conn.execute(f"SELECT {_COLUMNS} FROM rollup_1h ORDER BY entity_id, start"):
        if row[0] != entity and hours:
            conn.executemany(insert, [_row(d) for d in days_from_hours(hours, None)])
            hours = []
        entity = row[0]
        hours.append(_bucket(3600, row))
    if hours:
        conn.executemany(insert, [_row(d) for d in days_from_hours(hours, None)])


STEPS = (_v1, _v2, _v3)
_COLUMNS = (
    "entity_id, start, count, num_count, sum, min, max, last_value, last_state,"
    " tw_sum, tw_seconds, state_seconds, credited_to, last_time"
)


def _row(b: Bucket) -> tuple[object, ...]:
    return (
        b.entity_id,
        b.start,
        b.count,
        b.num_count,
        b.sum,
        b.min,
        b.max,
        b.last_value,
        b.last_state,
        b.tw_sum,
        b.tw_seconds,
        orjson.dumps(b.state_seconds),
        b.credited_to,
        b.last_time,
    )


def _bucket(period_s: int, row: tuple[Any, ...]) -> Bucket:
    (entity_id, start, count, num, total, low, high) = row[:7]
    (last_value, last_state, tws, twsec, st, credited_to, last_time) = row[7:]
    return Bucket(
        entity_id,
        period_s,
        start,
        count,
        num,
        total,
        low,
        high,
        last_value,
        last_state,
        tws,
        twsec,
        orjson.loads(st),
        credited_to,
        last_time,
    )


def _checked(period: str) -> str:
    if period not in PERIODS:  # table names are formatted in: only known ones
        raise ValueError(f"period must be one of {', '.join(PERIODS)}")
    return period


# Buckets of a tier that may go: ended by the entity's cutoff, and (below the coarsest
# tier) whose time the next coarser tier holds, so no statistic loses what they knew.
def _purgeable(period: str) -> str:
    where = "entity_id = ? AND start <= ?"  # the start: the primary key's order
    coarser = COARSER.get(period)
    if coarser is None:
        return where
    step = PERIODS[coarser] * US
    return (
        f"{where} AND EXISTS (SELECT 1 FROM rollup_{coarser} c WHERE"
        f" c.entity_id = rollup_{period}.entity_id"
        f" AND c.start = rollup_{period}.start - rollup_{period}.start % {step})"
    )


Change = tuple[str, str, int, int | None, Sequence[Bucket]]


class RollupStore(SQLiteFile):
    """``rollups.db``: stored buckets per period; synchronous, behind a lock. Raises only
    HomeIQ's errors (a full disk is :class:`~homeiq.errors.SinkUnavailable`)."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        super().__init__(path, STEPS, readonly=readonly)
        self.raw_purges = 0  # raw purges recorded by this process (caches read it)

    @classmethod
    def in_dir(cls, data_dir: Path, *, readonly: bool = False) -> RollupStore:
        """The store at its standard place in the data directory."""
        return cls(data_dir / ROLLUPS_DB, readonly=readonly)

    def replace(self, period: str, entity_id: str, start: int, buckets: Sequence[Bucket]) -> None:
        """Make the entity's stored buckets from ``start`` on exactly ``buckets``."""
        self.replace_many([(period, entity_id, start, None, buckets)])

    def replace_many(
        self,
        changes: Sequence[Change],
        *,
        folded: Sequence[tuple[str, int, int]] = (),
        lower: Mapping[str, int] | None = None,
        counters: Mapping[str, int] | None = None,
    ) -> None:
        """Make the stored buckets of each (period, entity, start, end, buckets) with
        ``start <= bucket start < end`` (None: no end) exactly ``buckets``, in one
        transaction with the bookkeeping that must commit with them: ``folded`` (entity,
        start, through) says the entity's buckets are now exact from its raw events of
        ``[start, through)``, which moves its watermark to ``through`` when nothing before
        ``start`` is left unfolded (start at or below the watermark, the purge floor or
        :data:`FROM_FIRST`); then ``lower`` moves watermarks back to the time of an event
        not folded yet; ``counters`` are added to."""
        with self._writing() as conn:
            for period, entity_id, start, end, buckets in changes:
                conn.execute(
                    f"DELETE FROM rollup_{_checked(period)}"
                    " WHERE entity_id = ? AND start >= ? AND start < ?",
                    (entity_id, start, 2**62 if end is None else end),
                )
                conn.executemany(
                    f"INSERT INTO rollup_{period} ({_COLUMNS}) VALUES ({', '.join('?' * 14)})",
                    [_row(b) for b in buckets],
                )
            for entity_id, start, through in folded:
                mark, floor = self._marks(conn, entity_id)
                if (
                    start <= FROM_FIRST
                    or (mark is not None and mark >= start)
                    or (floor is not None and align_up(floor, 86400) >= start)
                ):
                    conn.execute(
                        "INSERT INTO rollup_folded (entity_id, through) VALUES (?, ?)"
                        " ON CONFLICT (entity_id) DO UPDATE"
                        " SET through = MAX(through, excluded.through)",
                        (entity_id, through),
                    )
            for entity_id, through in (lower or {}).items():
                conn.execute(
                    "UPDATE rollup_folded SET through = MIN(through, ?) WHERE entity_id = ?",
                    (through, entity_id),
                )
            for name, add in (counters or {}).items():
                conn.execute(
                    "INSERT INTO rollup_counters (name, value) VALUES (?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                    (name, add),
                )

    @staticmethod
    def _marks(conn: sqlite3.Connection, entity_id: str) -> tuple[int | None, int | None]:
        found = conn.execute(
            "SELECT (SELECT through FROM rollup_folded WHERE entity_id = ?),"
            " (SELECT before FROM rollup_raw_purged WHERE entity_id = ?)",
            (entity_id, entity_id),
        ).fetchone()
        return found[0], found[1]

    def marks(self, entity_id: str) -> tuple[int | None, int | None]:
        """The entity's (watermark, raw purged before): see :meth:`folded_through` and
        :meth:`raw_purged_before`; None where there is none."""
        with self._reading() as conn:
            return self._marks(conn, entity_id)

    def buckets(self, period: str, entity_id: str, start: int, end: int) -> list[Bucket]:
        """Stored buckets with ``start <= bucket start < end``, oldest first."""
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM rollup_{_checked(period)}"
                " WHERE entity_id = ? AND start >= ? AND start < ? ORDER BY start",
                (entity_id, start, end),
            ).fetchall()
        return [_bucket(PERIODS[period], r) for r in rows]

    def before(self, period: str, entity_id: str, start: int) -> Bucket | None:
        """The last stored bucket that starts before ``start``."""
        with self._reading() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM rollup_{_checked(period)}"
                " WHERE entity_id = ? AND start < ? ORDER BY start DESC LIMIT 1",
                (entity_id, start),
            ).fetchone()
        return None if row is None else _bucket(PERIODS[period], row)

    def state_before(self, entity_id: str, start: int) -> Bucket | None:
        """The stored bucket, of any tier, whose last event is the entity's last before
        ``start``: the state it was in at ``start``,
        when the raw events that said so were purged."""
        # Buckets that end by `start` (the day holding it knows later events too).
        found = [self.before(p, entity_id, align(start, s)) for p, s in PERIODS.items()]
        known = [b for b in found if b is not None and b.count]
        return max(known, key=lambda b: b.last_time or b.start, default=None)

    def day_prefix(self, entity_id: str, upto: int) -> Bucket | None:
        """The entity's day bucket of ``[day start, upto)`` merged from stored hours (see
        :func:`~homeiq.maintenance.buckets.day_from_hours`)."""
        day_start = align(upto, 86400)
        hours = self.buckets("1h", entity_id, day_start, upto)
        carried = self.before("1h", entity_id, day_start)
        return day_from_hours(hours, carried, entity_id, day_start, upto)

    # -- retention ---------------------------------------------------------------------

    def folded_through(self, entity_ids: Sequence[str]) -> dict[str, int]:
        """Each entity's watermark: every raw event of it with ``time < through`` is in
        the stored buckets of every tier (from the purge floor on: see
        :meth:`mark_raw_purged`). Entities not yet folded from their first event (or
        from their watermark) are not keys."""
        with self._reading() as conn:
            found = {e: self._marks(conn, e)[0] for e in entity_ids}
        return {e: mark for e, mark in found.items() if mark is not None}

    def _entities(self, conn: sqlite3.Connection, period: str) -> Iterator[str]:
        """The tier's entities: one index seek each, not a scan of its rows."""
        row = conn.execute(f"SELECT MIN(entity_id) FROM rollup_{period}").fetchone()
        while row is not None and row[0] is not None:
            yield row[0]
            row = conn.execute(
                f"SELECT MIN(entity_id) FROM rollup_{period} WHERE entity_id > ?", (row[0],)
            ).fetchone()

    def count_before(self, period: str, cutoff_for: Callable[[str], int | None]) -> int:
        """Buckets of the tier whose end is at or before the entity's cutoff (None: keep
        the entity's) that :meth:`purge` would delete: the dry run. Buckets whose time the
        next coarser tier does not hold yet are not counted: they are kept."""
        where = _purgeable(_checked(period))
        step = PERIODS[period] * US
        total = 0
        with self._reading() as conn:
            for entity_id in list(self._entities(conn, period)):
                cutoff = cutoff_for(entity_id)
                if cutoff is not None:
                    (n,) = conn.execute(
                        f"SELECT COUNT(*) FROM rollup_{period} WHERE {where}",
                        (entity_id, cutoff - step),
                    ).fetchone()
                    total += n
        return total

    def purge(
        self, period: str, cutoff_for: Callable[[str], int | None], *, chunk_rows: int
    ) -> int:
        """Delete what :meth:`count_before` counts, at most ``chunk_rows`` rows per
        transaction (writers wait for one chunk, never for the whole purge); returns the
        rows deleted. A bucket whose time the next coarser tier does not hold (5m before
        1h has it, 1h before 1d) is kept: the purge clamps, never loses a statistic.
        Records the entity's cutoff, so statistics over the purged range say so."""
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
        where = _purgeable(_checked(period))
        step = PERIODS[period] * US
        with self._reading() as conn:
            entities = list(self._entities(conn, period))
        deleted = 0
        for entity_id in entities:
            cutoff = cutoff_for(entity_id)
            if cutoff is None:
                continue
            while True:
                with self._writing() as conn:
                    n = conn.execute(
                        f"DELETE FROM rollup_{period} WHERE (entity_id, start) IN"
                        f" (SELECT entity_id, start FROM rollup_{period} WHERE {where}"
                        " ORDER BY start LIMIT ?)",
                        (entity_id, cutoff - step, chunk_rows),
                    ).rowcount
                    if n < chunk_rows:  # the last chunk: mark with it, in its transaction
                        conn.execute(
                            "INSERT INTO rollup_tier_purged (period, entity_id, before)"
                            " VALUES (?, ?, ?) ON CONFLICT (period, entity_id)"
                            " DO UPDATE SET before = MAX(before, excluded.before)",
                            (period, entity_id, align(cutoff, PERIODS[period])),
                        )
                deleted += n
                if n < chunk_rows:
                    break
        return deleted

    def tier_purged_before(self, period: str, entity_id: str) -> int | None:
        """Before when the tier's buckets of the entity were purged (None: never)."""
        with self._reading() as conn:
            row = conn.execute(
                "SELECT before FROM rollup_tier_purged WHERE period = ? AND entity_id = ?",
                (_checked(period), entity_id),
            ).fetchone()
        return None if row is None else int(row[0])

    def mark_raw_purged(self, entity_id: str, before: int) -> None:
        """Record that the entity's raw events before ``before`` were purged: no rebuild
        recomputes buckets of the UTC day holding it or older from the few events left
        (they would clobber exact buckets), and a late event that old is not folded."""
        with self._writing() as conn:
            conn.execute(
                "INSERT INTO rollup_raw_purged (entity_id, before) VALUES (?, ?)"
                " ON CONFLICT (entity_id) DO UPDATE SET before = MAX(before, excluded.before)",
                (entity_id, before),
            )
        self.raw_purges += 1

    def raw_purged_before(self, entity_id: str) -> int | None:
        """Before when the entity's raw events were purged (None: never)."""
        return self.marks(entity_id)[1]

    def counter(self, name: str) -> int:
        """A persistent counter (``late_beyond_retention``: late events older than the
        raw purge, not folded)."""
        with self._reading() as conn:
            row = conn.execute("SELECT value FROM rollup_counters WHERE name = ?", (name,))
            found = row.fetchone()
        return 0 if found is None else int(found[0])
