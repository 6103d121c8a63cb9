"""InfluxQL for the API's read queries: event pages, multi-entity history, context traces
and activity counts, answering exactly as the SQLite store does (the contract suite).

Filters on entity, domain, device and area compare tags (``"area_id" = 'kitchen'``,
values in their stored tag form, :func:`encode_tag_value`); floor, state and source
compare fields. Several values of one filter are OR-ed in parentheses. Every value is
quoted with :func:`quote_literal`, every name with :func:`quote_ident`.

Paging across series. Without ``GROUP BY`` InfluxDB merges the matching series into one
time-ordered answer, but orders points of the same time by series, not entity_id, and
InfluxQL cannot say "time = t AND entity_id > x OR time > t" (no OR on time). So a page
is read as: the points at the cursor's own time (``time = t``), kept when they come
after the cursor's entity; then ``time > t ... LIMIT limit + 1``; when that limit is
reached, the points of the last time returned are read again in full (``time = last``),
since the limit may have cut them anywhere. The same holds for the unbounded reads
(:func:`scan`): every page of ``page_size`` points ends with all points of its last time.

A point an entity wrote twice at the same time in two series (it moved area between the
writes) is returned once, as the reader's ``history`` does; ``count()`` in activity
counts it twice (SQLite stores it once), a rare difference accepted for one query.

Without a lower time bound, ``ORDER BY time DESC LIMIT n`` makes InfluxDB open every
shard of the database (seconds at a million points), so a page is read in widening time
slices next to its cursor (five minutes, then four times wider each time, as the SQLite
store does), until the page is full or the range is exhausted.
"""

from __future__ import annotations

import asyncio
import time as clock
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal

from homeiq.model import EventRecord
from homeiq.sinks.base import Activity, EventPage, EventQuery
from homeiq.sinks.influxdb.escaping import encode_tag_value, quote_ident, quote_literal
from homeiq.sinks.influxdb.points import Point, record_from_point, tag, time_ns
from homeiq.sinks.reading import (
    SECOND_US,
    bucket_starts,
    build_activity,
    context_searches,
    decode_cursor,
    encode_cursor,
    needs_anchor,
)

if TYPE_CHECKING:
    from homeiq.sinks.influxdb.reader import InfluxDBReader

QUERIES_IN_FLIGHT = 4
# Event pages read widening time slices next to the cursor, as SQLite's do: InfluxDB
# answers "ORDER BY time DESC LIMIT n" over every shard of the database otherwise.
SLICE_US = 5 * 60 * SECOND_US
SLICE_GROWTH = 4
SLICE_MAX_US = 2**60  # past this the slice is the rest of the range
VALUES_PER_QUERY = 200  # context ids OR-ed in one statement
# Every field a record is read from, except the attributes JSON; and the tags.
_FIELDS = (
    "state",
    "value",
    "previous_state",
    "duration_in_state_s",
    "last_changed",
    "dropped_attributes_bytes",
    "context_id",
    "context_parent_id",
    "context_user_id",
    "floor_id",
    "origin",
    "source",
)
_TAGS = ("entity_id", "device_id", "area_id")


def columns(attributes: bool) -> str:
    """The SELECT list of a record, its attributes left out when not wanted."""
    return "*" if attributes else ", ".join(quote_ident(c) for c in (*_FIELDS, *_TAGS))


def any_of(key: str, values: Iterable[str | int], *, is_tag: bool = False) -> str:
    """``("key" = v1 OR "key" = v2 ...)`` with every value quoted for what ``key`` is."""

    def literal(value: str | int) -> str:
        if isinstance(value, int):
            return str(int(value))
        return quote_literal(encode_tag_value(value) if is_tag else value)

    return "(" + " OR ".join(f"{quote_ident(key)} = {literal(v)}" for v in values) + ")"


def _filters(q: EventQuery) -> list[str]:
    where = []
    for key, values in (
        ("entity_id", q.entity_ids),
        ("domain", q.domains),
        ("device_id", q.device_ids),
        ("area_id", q.area_ids),
    ):
        if values:
            where.append(any_of(key, values, is_tag=True))
    for key, fields in (("floor_id", q.floor_ids), ("state", q.states)):
        if fields:
            where.append(any_of(key, fields))
    if q.sources:
        where.append(any_of("source", [int(s) for s in q.sources]))
    if q.start is not None:
        where.append(f"time >= {time_ns(q.start)}")
    if q.end is not None:
        where.append(f"time < {time_ns(q.end)}")
    return where


def _statement(reader: InfluxDBReader, select: str, where: Sequence[str], tail: str = "") -> str:
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return f"SELECT {select} FROM {reader.from_clause}{clause}{tail}"


async def _rows(reader: InfluxDBReader, statement: str) -> list[Point]:
    return (await reader.query(statement))[0]


async def _at(reader: InfluxDBReader, select: str, where: Sequence[str], time: int) -> list[Point]:
    """Every matching point at exactly ``time`` (µs)."""
    return await _rows(reader, _statement(reader, select, [*where, f"time = {time_ns(time)}"]))


async def scan(reader: InfluxDBReader, select: str, where: Sequence[str]) -> list[Point]:
    """Every matching point, oldest first, a page at a time (see the module docstring)."""
    rows: list[Point] = []
    after: int | None = None
    n = reader.page_size
    while True:
        bounded = [*where, f"time > {time_ns(after)}"] if after is not None else where
        page = await _rows(reader, _statement(reader, select, bounded, f" ORDER BY time LIMIT {n}"))
        if len(page) < n:
            return rows + page
        after = int(page[-1]["time"])
        rows += [p for p in page if int(p["time"]) != after]
        rows += await _at(reader, select, where, after)


def now_us() -> int:
    """Wall-clock time in µs."""
    return clock.time_ns() // 1000


def _records(points: Iterable[Point], newest_first: bool = False) -> list[EventRecord]:
    """Records of points, each (entity_id, time) once, by (time, entity_id)."""
    seen: set[tuple[str, int]] = set()
    records = []
    for point in points:
        record = record_from_point(point)
        if record is not None and (record.entity_id, record.time) not in seen:
            seen.add((record.entity_id, record.time))
            records.append(record)
    records.sort(key=lambda r: (r.time, r.entity_id), reverse=newest_first)
    return records


async def events(reader: InfluxDBReader, q: EventQuery) -> EventPage:
    """One page of :class:`EventQuery` (the reads are in the module docstring)."""
    after = None if q.cursor is None else decode_cursor(q.cursor, q.newest_first)
    where = _filters(q)
    tied: list[Point] = []
    if after is not None:
        time, entity_id = after
        for point in await _at(reader, "*", where, time):
            other = tag(point.get("entity_id")) or ""
            if (other < entity_id) if q.newest_first else (other > entity_id):
                tied.append(point)
    n = q.limit + 1
    page = await _sliced(reader, where, q, None if after is None else after[0], n)
    full = len(page) == n
    if full:
        last = int(page[-1]["time"])
        page = [p for p in page if int(p["time"]) != last] + await _at(reader, "*", where, last)
    records = _records([*tied, *page], q.newest_first)
    more = full or len(records) > q.limit
    records = records[: q.limit]
    if not (more and records):
        return EventPage(records)
    return EventPage(
        records, encode_cursor(records[-1].time, records[-1].entity_id, q.newest_first)
    )


async def _sliced(
    reader: InfluxDBReader, where: list[str], q: EventQuery, after: int | None, n: int
) -> list[Point]:
    """The first ``n`` points past ``after`` (µs, exclusive; None: from the range's edge)
    in the page's order, read in widening time slices (module docstring)."""
    newest = q.newest_first
    order = "DESC" if newest else "ASC"
    edge = after if after is not None else (q.end if newest else q.start)
    if edge is None and not newest:  # oldest first from the very beginning: one read
        return await _rows(reader, _statement(reader, "*", where, f" ORDER BY time ASC LIMIT {n}"))
    bound = q.start if newest else q.end  # where the walk stops (already in ``where``)
    # Newest first from "now" has no near bound: a clock ahead of ours may have written
    # points in what is our future. The cursor's own time is excluded (its points were
    # read above); later slices meet where the previous one stopped.
    near = edge if edge is not None else now_us()
    near_op = None if edge is None else "<" if newest else ">" if after is not None else ">="
    width = SLICE_US
    found: list[Point] = []
    while True:
        far: int | None = near - width if newest else near + width
        if width >= SLICE_MAX_US or (
            bound is not None and far is not None and (far <= bound if newest else far >= bound)
        ):
            far = None  # the last slice runs to the range's end
        conditions = list(where)
        if near_op is not None:
            conditions.append(f"time {near_op} {time_ns(near)}")
        if far is not None:
            conditions.append(f"time {'>=' if newest else '<'} {time_ns(far)}")
        tail = f" ORDER BY time {order} LIMIT {n - len(found)}"
        found += await _rows(reader, _statement(reader, "*", conditions, tail))
        if len(found) >= n or far is None:
            return found
        near, near_op, width = far, "<" if newest else ">=", width * SLICE_GROWTH


async def history_many(
    reader: InfluxDBReader,
    entity_ids: Sequence[str],
    start: int,
    end: int,
    include_start_state: bool,
    attributes: bool,
) -> dict[str, list[EventRecord]]:
    """Each entity's last point before ``start`` and its points in [start, end)."""
    select = columns(attributes)
    gate = asyncio.Semaphore(QUERIES_IN_FLIGHT)

    async def one(entity_id: str) -> list[EventRecord]:
        entity = any_of("entity_id", [entity_id], is_tag=True)
        async with gate:
            first: list[Point] = []
            if include_start_state:
                before = [entity, f"time < {time_ns(start)}"]
                tail = " ORDER BY time DESC LIMIT 1"
                first = await _rows(reader, _statement(reader, select, before, tail))
            within = [entity, f"time >= {time_ns(start)}", f"time < {time_ns(end)}"]
            return _records([*first, *await scan(reader, select, within)])

    wanted = list(dict.fromkeys(entity_ids))
    return dict(zip(wanted, await asyncio.gather(*(one(e) for e in wanted)), strict=True))


async def by_context(
    reader: InfluxDBReader,
    context_ids: Sequence[str],
    field: Literal["context_id", "context_parent_id"],
    around: int | None,
) -> list[EventRecord]:
    """Points whose ``field`` is one of ``context_ids``, in each id's time window."""
    anchor = around
    if anchor is None and needs_anchor(context_ids):
        anchor = await reader.last_event_time()
    found: list[Point] = []
    for search in context_searches(context_ids, anchor):
        ids = list(search.windows)
        for first in range(0, len(ids), VALUES_PER_QUERY):
            where = [
                any_of(field, ids[first : first + VALUES_PER_QUERY]),
                f"time >= {time_ns(search.start)}",
                f"time < {time_ns(search.end)}",
            ]
            for point in await scan(reader, "*", where):
                value, time = point.get(field), int(point["time"])
                if search.wanted(value if isinstance(value, str) else None, time):
                    found.append(point)
    return _records(found)


async def activity(
    reader: InfluxDBReader, start: int, end: int, bucket_s: int, top: int
) -> Activity:
    """Counts in [start, end) per entity and area (tags) and per ``GROUP BY time()`` bucket."""
    starts = bucket_starts(start, end, bucket_s, top)
    if not starts:
        return build_activity(start, end, bucket_s, top, (), {})
    span = [f"time >= {time_ns(start)}", f"time < {time_ns(end)}"]
    count = 'count("source")'
    per_series, per_time = await reader.query(
        _statement(reader, count, span, ' GROUP BY "entity_id", "area_id"'),
        # Buckets of GROUP BY time() are aligned to the epoch, as bucket_starts' are.
        _statement(reader, count, span, f" GROUP BY time({int(bucket_s)}s) fill(none)"),
    )
    counts = []
    for row in per_series:
        entity_id = tag(row.get("entity_id"))
        if entity_id is not None:
            counts.append((entity_id, tag(row.get("area_id")), int(row["count"] or 0)))
    width = bucket_s * SECOND_US
    per_bucket: dict[int, int] = {}
    for row in per_time:
        key = starts[0] + (int(row["time"]) - starts[0]) // width * width
        per_bucket[key] = per_bucket.get(key, 0) + int(row["count"] or 0)
    return build_activity(start, end, bucket_s, top, counts, per_bucket)
