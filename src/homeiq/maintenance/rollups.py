"""Rollups: 5-minute and hourly aggregates per entity, so statistics never scan events.

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

The computation is pure (:class:`Accumulator`, :func:`roll_up`); :class:`RollupStore`
keeps the buckets in ``rollups.db`` in the data directory, whatever the event store is,
so statistics work the same on SQLite and InfluxDB.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from homeiq.model import EventRecord
from homeiq.sqlitedb import SQLiteFile, run_script

ROLLUPS_DB = "rollups.db"
PERIODS = {"5m": 300, "1h": 3600}
US = 1_000_000


@dataclass(slots=True)
class Bucket:
    """Aggregates of one entity over ``[start, start + period_s)`` (start in µs)."""

    entity_id: str
    period_s: int
    start: int
    count: int = 0
    num_count: int = 0
    sum: float = 0.0
    min: float | None = None
    max: float | None = None
    last_value: float | None = None
    last_state: str | None = None
    tw_sum: float = 0.0  # ∫ value dt over the seconds with a numeric state
    tw_seconds: float = 0.0
    state_seconds: dict[str, float] = field(default_factory=dict)
    # Where folding stopped: time credited up to, and the last event's time. With them a
    # restarted process continues an open bucket without reading the events again.
    credited_to: int | None = None
    last_time: int | None = None

    @property
    def mean(self) -> float | None:
        """Mean of the numeric values reported in the bucket."""
        return self.sum / self.num_count if self.num_count else None

    @property
    def time_weighted_mean(self) -> float | None:
        """Mean of the value over the time it was numeric."""
        return self.tw_sum / self.tw_seconds if self.tw_seconds else None


def align(time_us: int, period_s: int) -> int:
    """Start of the bucket holding ``time_us``."""
    step = period_s * US
    return time_us - time_us % step


def _credit(bucket: Bucket, state: str | None, value: float | None, seconds: float) -> None:
    """Credit ``seconds`` in ``state`` (and at ``value``) to the bucket."""
    if seconds <= 0:
        return
    if value is not None:
        bucket.tw_sum += value * seconds
        bucket.tw_seconds += seconds
    elif state is not None:
        # Time in state for what is not a number (on/off, modes, unavailable): a numeric
        # sensor would otherwise get one key per value it ever had.
        bucket.state_seconds[state] = bucket.state_seconds.get(state, 0.0) + seconds


class Accumulator:
    """Folds one entity's events, in time order, into buckets of one period: O(1) per
    event, so rollups follow live events without reading them back."""

    __slots__ = (
        "closed",
        "current",
        "cursor",
        "entity_id",
        "last_time",
        "period_s",
        "state",
        "value",
    )

    def __init__(self, entity_id: str, period_s: int, before: EventRecord | None) -> None:
        self.entity_id = entity_id
        self.period_s = period_s
        self.state = before.state if before is not None else None
        self.value = before.value if before is not None else None
        self.last_time = before.time if before is not None else None
        self.current: Bucket | None = None
        self.cursor = 0  # up to where the current bucket's time is credited, µs
        self.closed: list[Bucket] = []

    def add(self, event: EventRecord) -> None:
        """Fold the next event (callers keep time order: see :attr:`last_time`)."""
        start = align(event.time, self.period_s)
        current = self.current
        if current is None or start != current.start:
            if current is not None:
                end = current.start + self.period_s * US
                _credit(current, self.state, self.value, (end - self.cursor) / US)
                self.closed.append(current)
            current = self.current = Bucket(self.entity_id, self.period_s, start)
            self.cursor = start
        _credit(current, self.state, self.value, (event.time - self.cursor) / US)
        self.cursor = event.time
        self.state, self.value, self.last_time = event.state, event.value, event.time
        value = event.value
        current.last_time = event.time
        current.count += 1
        current.last_state = event.state
        current.last_value = value
        if value is not None:
            current.num_count += 1
            current.sum += value
            current.min = value if current.min is None else min(current.min, value)
            current.max = value if current.max is None else max(current.max, value)

    def take(self, until: int) -> list[Bucket]:
        """Buckets changed since the last take: the ones closed since, and the open one
        with its time credited up to ``until`` (on a copy: it stays open)."""
        out, self.closed = self.closed, []
        current = self.current
        for bucket in out:
            bucket.credited_to = bucket.start + self.period_s * US
        if current is not None:
            snapshot = replace(current, state_seconds=dict(current.state_seconds))
            end = max(min(current.start + self.period_s * US, until), self.cursor)
            _credit(snapshot, self.state, self.value, (end - self.cursor) / US)
            snapshot.credited_to = end
            out.append(snapshot)
        return out

    @classmethod
    def resume(cls, stored: Bucket | None, entity_id: str, period_s: int) -> Accumulator:
        """Continue from the entity's last stored bucket (after a restart): its open
        bucket goes on where it was saved; an older one only gives the state."""
        accumulator = cls(entity_id, period_s, None)
        if stored is None:
            return accumulator
        accumulator.state, accumulator.value = stored.last_state, stored.last_value
        accumulator.last_time = stored.last_time
        if stored.credited_to is not None:
            accumulator.current = replace(stored, state_seconds=dict(stored.state_seconds))
            accumulator.cursor = stored.credited_to
        return accumulator


def roll_up(
    entity_id: str,
    before: EventRecord | None,
    events: Sequence[EventRecord],
    period_s: int,
    until: int,
) -> list[Bucket]:
    """Buckets holding ``events`` (ordered, one entity), with time-weighted parts up to
    ``until`` (µs; the end of what is known, e.g. now). ``before`` is the last event
    before the first bucket, the state the entity was in when it began."""
    accumulator = Accumulator(entity_id, period_s, before)
    for event in events:
        accumulator.add(event)
    return accumulator.take(until)


def merge(buckets: Iterable[Bucket], period_s: int) -> list[Bucket]:
    """Coarser buckets (a day from hours) of the same entity, in order."""
    out: list[Bucket] = []
    for b in buckets:
        start = align(b.start, period_s)
        if not out or out[-1].start != start:
            out.append(Bucket(b.entity_id, period_s, start))
        m = out[-1]
        m.count += b.count
        m.num_count += b.num_count
        m.sum += b.sum
        if b.min is not None:
            m.min = b.min if m.min is None else min(m.min, b.min)
        if b.max is not None:
            m.max = b.max if m.max is None else max(m.max, b.max)
        if b.count:
            m.last_value, m.last_state = b.last_value, b.last_state
        m.tw_sum += b.tw_sum
        m.tw_seconds += b.tw_seconds
        for state, seconds in b.state_seconds.items():
            m.state_seconds[state] = m.state_seconds.get(state, 0.0) + seconds
    return out


def fill(
    stored: Sequence[Bucket],
    carried: Bucket | None,
    entity_id: str,
    period_s: int,
    start: int,
    end: int,
) -> Iterator[Bucket]:
    """Every bucket of ``[start, end)``: the stored ones, and between them buckets with no
    events in which the entity held the state the previous bucket ended with.
    ``carried`` is the last stored bucket before ``start`` (or None)."""
    step = period_s * US
    by_start = {b.start: b for b in stored}
    last_state = carried.last_state if carried is not None else None
    last_value = carried.last_value if carried is not None else None
    t = align(start, period_s)
    while t < end:
        found = by_start.get(t)
        if found is not None:
            yield found
            if found.count:
                last_state, last_value = found.last_state, found.last_value
        elif last_state is not None or last_value is not None:
            seconds = (min(t + step, end) - t) / US
            quiet = Bucket(entity_id, period_s, t, last_state=last_state, last_value=last_value)
            if last_value is not None:
                quiet.tw_sum, quiet.tw_seconds = last_value * seconds, seconds
            elif last_state is not None:
                quiet.state_seconds[last_state] = seconds
            yield quiet
        t += step


def _v1(conn: sqlite3.Connection) -> None:
    tables = []
    for name in PERIODS:
        tables.append(
            f"""CREATE TABLE rollup_{name} (
                entity_id TEXT NOT NULL, start INTEGER NOT NULL, count INTEGER NOT NULL,
                num_count INTEGER NOT NULL, sum REAL NOT NULL, min REAL, max REAL,
                last_value REAL, last_state TEXT, tw_sum REAL NOT NULL,
                tw_seconds REAL NOT NULL, state_seconds BLOB NOT NULL,
                PRIMARY KEY (entity_id, start)) WITHOUT ROWID"""
        )
    run_script(conn, ";".join(tables))


def _v2(conn: sqlite3.Connection) -> None:
    run_script(
        conn,
        ";".join(
            f"ALTER TABLE rollup_{name} ADD COLUMN {column} INTEGER"
            for name in PERIODS
            for column in ("credited_to", "last_time")
        ),
    )


STEPS = (_v1, _v2)
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


class RollupStore(SQLiteFile):
    """``rollups.db``: stored buckets per period; synchronous, behind a lock. Raises only
    HomeIQ's errors (a full disk is :class:`~homeiq.errors.SinkUnavailable`)."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        super().__init__(path, STEPS, readonly=readonly)

    @classmethod
    def in_dir(cls, data_dir: Path, *, readonly: bool = False) -> RollupStore:
        """The store at its standard place in the data directory."""
        return cls(data_dir / ROLLUPS_DB, readonly=readonly)

    def replace(self, period: str, entity_id: str, start: int, buckets: Sequence[Bucket]) -> None:
        """Make the entity's stored buckets from ``start`` on exactly ``buckets``."""
        self.replace_many([(period, entity_id, start, buckets)])

    def replace_many(self, changes: Sequence[tuple[str, str, int, Sequence[Bucket]]]) -> None:
        """:meth:`replace` for many (period, entity, start, buckets), in one transaction."""
        with self._writing() as conn:
            for period, entity_id, start, buckets in changes:
                conn.execute(
                    f"DELETE FROM rollup_{period} WHERE entity_id = ? AND start >= ?",
                    (entity_id, start),
                )
                conn.executemany(
                    f"INSERT INTO rollup_{period} ({_COLUMNS}) VALUES"
                    " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [_row(b) for b in buckets],
                )

    def buckets(self, period: str, entity_id: str, start: int, end: int) -> list[Bucket]:
        """Stored buckets with ``start <= bucket start < end``, oldest first."""
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM rollup_{period}"
                " WHERE entity_id = ? AND start >= ? AND start < ? ORDER BY start",
                (entity_id, start, end),
            ).fetchall()
        return [_bucket(PERIODS[period], r) for r in rows]

    def before(self, period: str, entity_id: str, start: int) -> Bucket | None:
        """The last stored bucket that starts before ``start``."""
        with self._reading() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM rollup_{period}"
                " WHERE entity_id = ? AND start < ? ORDER BY start DESC LIMIT 1",
                (entity_id, start),
            ).fetchone()
        return None if row is None else _bucket(PERIODS[period], row)
