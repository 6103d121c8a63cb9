"""The API's read queries on events.db: event pages, multi-entity history, context traces
and activity counts. Functions of an open connection; :class:`SQLiteEventStore` holds
the lock around them.

``events`` is clustered on (entity, time) and has no index on time alone (schema.py), so
a query over many entities never asks SQLite for "rows by time": that is a full scan.
Every statement here instead drives an outer loop over entity ids, most often
``json_each(?)`` of a JSON array of ids, ``CROSS JOIN``-ed to ``events`` (CROSS JOIN
fixes the loop order), so each entity's rows are one primary-key range seek. The test
suite checks every statement's plan for a scan of ``events``.

Event pages (:func:`events`): the newest (or oldest) ``limit`` rows of many entities.

* A k-way merge of per-entity ordered seeks (or a UNION of per-entity ``ORDER BY time
  LIMIT n``) reads up to ``limit + 1`` rows of *every* candidate entity to return
  ``limit``: about 50,000 rows for a page of 100 in a home of 500 entities.
* Widening time slices, the choice: read every candidate entity's rows in a short slice
  next to the cursor (5 minutes at first), sort that slice by (time, entity_id) and keep
  what the page needs; if it is not full, the next slice is four times wider. The newest
  100 events of the home take one slice: a few hundred rows and one seek per entity.
  Sparse filters cost a few more slices (one seek per entity each, about 8 for 90
  days); the walk starts and stops at the candidates' newest/oldest stored event when
  the range is open. Only the page's own rows are read in full (attributes decoded).

Measured on 10,000,000 events / 500 entities / 90 days (SQLite's default 2 MB page
cache, warm OS cache): the newest 100 of the home 10 ms (half of it the two per-entity
seek rounds), by one domain 4 ms, by one area of 20 19 ms, 1,000 of the last day 29 ms;
a filter that matches nothing reads the whole range (2.4 s for all 90 days), as any
plan without an index on that column must.

Entity and domain filters shrink the list of ids walked; device, area and floor filters
become the set of matching ``placements`` rows (a small table) and filter rows; state and
source filter rows. Ties on time are ordered by entity_id: the ids are passed sorted by
entity_id, so ``json_each``'s ``key`` (the array index) is that order.

Activity (:func:`activity`) reads every row of the range, twice: counts per entity in
one pass grouped by the outer loop (no sort; the placement of an entity's events is one
value almost always, MIN = MAX, else that entity is grouped again), then counts per
bucket. SQLite groups by sorting, about 0.4 µs a row; counting each bucket with one
seek per entity (about 5 µs each) instead wins when there are more than
``SEEK_COST_ROWS`` rows per seek: 90 days by day 1 s against 4.6 s, but 24 hours by 5
minutes 480 ms against 43 ms. Totals on the store above: 24 hours 0.1 s, 7 days 0.9 s,
90 days 3.5 to 7.5 s (rollup tables would be the next step for long ranges).
"""

from __future__ import annotations

import bisect
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import orjson

from homeiq.model import EventRecord, Origin, Source
from homeiq.sinks.base import Activity, EventPage, EventQuery
from homeiq.sinks.reading import (
    SECOND_US,
    bucket_starts,
    build_activity,
    context_searches,
    decode_cursor,
    encode_cursor,
    needs_anchor,
)
from homeiq.sinks.sqlite.codec import decode_attributes, decode_context, encode_context

INITIAL_SLICE_US = 5 * 60 * SECOND_US
SLICE_GROWTH = 4
# One primary-key seek costs about as much as sorting this many rows (measured, see above).
SEEK_COST_ROWS = 12
MIN_TIME, MAX_TIME = -(2**63), 2**63 - 1
_CHUNK = 500  # bound parameters per statement, under SQLite's limit

_COLUMNS = """n.entity_id, e.time, e.state, e.value, e.previous_state, e.last_changed,
       e.duration_us, e.attributes, {attributes}, e.context_id, e.context_parent_id, u.user_id,
       p.device_id, p.area_id, p.floor_id, e.origin, e.source, e.dropped_attributes_bytes"""
_JOINS = """CROSS JOIN entities n ON n.id = e.entity
LEFT JOIN placements p ON p.id = e.placement
LEFT JOIN users u ON u.id = e.context_user"""
_ATTRIBUTES_JOIN = "\nLEFT JOIN attributes a ON a.id = e.attributes"


def each_entity(ids: str = "?") -> str:
    """``FROM`` the rows of the entities in the JSON array parameter ``ids``, one primary
    key seek each (see the module docstring); ``j.key`` is the entity's index in it."""
    return f"json_each({ids}) j CROSS JOIN events e ON e.entity = j.value"


def select(source: str = "events e", *, attributes: bool = True) -> str:
    """``SELECT`` of the columns :func:`record` decodes, from ``source`` (aliased ``e``)."""
    if attributes:
        columns, joins = _COLUMNS.format(attributes="a.json, a.codec"), _JOINS + _ATTRIBUTES_JOIN
    else:
        columns, joins = _COLUMNS.format(attributes="NULL, NULL"), _JOINS
    return f"SELECT {columns}\nFROM {source}\n{joins}\n"


SELECT = select()


_ORIGINS = {int(o): o for o in Origin}
_SOURCES = {int(s): s for s in Source}
Attributes = tuple[bytes, dict[str, Any]]


def record(row: Sequence[Any], memo: dict[int, Attributes] | None = None) -> EventRecord:
    """The record of a row of :func:`select`.

    ``memo`` keeps decoded attribute sets by id across the rows of one answer: most rows
    of an entity share a handful, and decompressing and parsing them is half the cost of
    a row. Records made with one memo share attribute dicts: treat them as read-only.
    """
    (
        entity_id,
        time,
        state,
        value,
        previous,
        last_changed,
        duration_us,
        attributes_id,
        attributes_json,
        codec,
        context_id,
        parent_id,
        user_id,
        device_id,
        area_id,
        floor_id,
        origin,
        source,
        dropped,
    ) = row
    attributes: dict[str, Any]
    if attributes_json is None:
        blob, attributes = b"{}", {}
    elif memo is not None and attributes_id in memo:
        blob, attributes = memo[attributes_id]
    else:
        blob = decode_attributes(bytes(attributes_json), codec)
        attributes = orjson.loads(blob)
        if memo is not None:
            memo[attributes_id] = blob, attributes
    return EventRecord(
        entity_id=entity_id,
        time=time,
        state=state,
        value=value,
        previous_state=previous,
        duration_in_state_s=None if duration_us is None else duration_us / 1_000_000,
        last_changed=time if last_changed is None else last_changed,
        attributes=attributes,
        attributes_json=blob,
        dropped_attributes_bytes=dropped or 0,
        context_id=decode_context(context_id),
        context_parent_id=decode_context(parent_id),
        context_user_id=user_id,
        device_id=device_id,
        area_id=area_id,
        floor_id=floor_id,
        origin=_ORIGINS[origin],
        source=_SOURCES[source],
    )


def records(rows: Iterable[Sequence[Any]]) -> list[EventRecord]:
    """The records of rows of :func:`select` (attribute sets decoded once each)."""
    memo: dict[int, Attributes] = {}
    return [record(row, memo) for row in rows]


def _clamp(time: int) -> int:
    return min(max(time, MIN_TIME), MAX_TIME)


def entities(
    conn: sqlite3.Connection, entity_ids: Sequence[str] = (), domains: Sequence[str] = ()
) -> list[tuple[str, int]]:
    """(entity_id, id) of the stored entities matching the filters, by entity_id.

    Read from the table each time, not the writer's cache: a read-only store is older
    than the rows it reads.
    """
    wanted, in_domains = set(entity_ids), set(domains)
    return sorted(
        (str(name), int(ident))
        for ident, name in conn.execute("SELECT id, entity_id FROM entities")
        if (not wanted or name in wanted)
        and (not in_domains or name.partition(".")[0] in in_domains)
    )


def _ids_of(conn: sqlite3.Connection, entity_ids: Sequence[str]) -> dict[str, int]:
    """The stored ids of these entities (those that have events)."""
    wanted = list(dict.fromkeys(entity_ids))
    found: dict[str, int] = {}
    for first in range(0, len(wanted), _CHUNK):
        chunk = wanted[first : first + _CHUNK]
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT entity_id, id FROM entities WHERE entity_id IN ({marks})"
        found.update(conn.execute(sql, chunk).fetchall())
    return found


def _placements(conn: sqlite3.Connection, q: EventQuery) -> list[int] | None:
    """Ids of the placements matching the device/area/floor filters; None = no filter."""
    if not (q.device_ids or q.area_ids or q.floor_ids):
        return None
    return [
        int(ident)
        for ident, device, area, floor in conn.execute(
            "SELECT id, device_id, area_id, floor_id FROM placements"
        )
        if (not q.device_ids or device in q.device_ids)
        and (not q.area_ids or area in q.area_ids)
        and (not q.floor_ids or floor in q.floor_ids)
    ]


def edge(conn: sqlite3.Connection, ids: str, *, newest: bool) -> int | None:
    """The newest (or oldest) stored time of the entities in the JSON array ``ids``."""
    agg = "MAX" if newest else "MIN"  # one seek per entity, as MIN/MAX of an index prefix
    found = conn.execute(
        f"SELECT {agg}((SELECT {agg}(time) FROM events WHERE entity = j.value))"
        " FROM json_each(?) j",
        (ids,),
    ).fetchone()[0]
    return None if found is None else int(found)


def span(conn: sqlite3.Connection, ids: str) -> tuple[int, int] | None:
    """``[oldest, newest + 1)`` of the entities in ``ids``; None when they have no events."""
    first, last = edge(conn, ids, newest=False), edge(conn, ids, newest=True)
    return None if first is None or last is None else (first, last + 1)


def _row_filters(q: EventQuery, placements: list[int] | None) -> tuple[list[str], dict[str, Any]]:
    """Conditions on the rows themselves (not the key), with their parameters."""
    where, params = [], {}
    if q.states:
        where.append("e.state IN (SELECT value FROM json_each(:states))")
        params["states"] = orjson.dumps(q.states).decode()
    if q.sources:
        where.append("e.source IN (SELECT value FROM json_each(:sources))")
        params["sources"] = orjson.dumps([int(s) for s in q.sources]).decode()
    if placements is not None:
        where.append("e.placement IN (SELECT value FROM json_each(:placements))")
        params["placements"] = orjson.dumps(placements).decode()
    return where, params


def events(conn: sqlite3.Connection, q: EventQuery) -> EventPage:
    """One page of :class:`EventQuery` (the walk is in the module docstring)."""
    after = None if q.cursor is None else decode_cursor(q.cursor, q.newest_first)
    candidates = entities(conn, q.entity_ids, q.domains)
    placements = _placements(conn, q)
    if not candidates or placements == []:
        return EventPage([])
    ids = orjson.dumps([ident for _, ident in candidates]).decode()
    filters, params = _row_filters(q, placements)
    where = ["e.time >= :a", "e.time < :b", *filters]
    params["ids"] = ids
    low = MIN_TIME if q.start is None else _clamp(q.start)
    high = MAX_TIME if q.end is None else _clamp(q.end)
    if after is not None:
        # Rows at the cursor's own time continue after its entity, by rank in ``ids``.
        names = [name for name, _ in candidates]
        params["tie_time"] = after[0]
        if q.newest_first:
            high = min(high, after[0] + 1)
            params["tie_rank"] = bisect.bisect_left(names, after[1])
            where.append("(e.time <> :tie_time OR j.key < :tie_rank)")
        else:
            low = max(low, after[0])
            params["tie_rank"] = bisect.bisect_right(names, after[1])
            where.append("(e.time <> :tie_time OR j.key >= :tie_rank)")
    elif q.end is None if q.newest_first else q.start is None:
        # An open range starts at the candidates' newest (oldest) stored event.
        near = edge(conn, ids, newest=q.newest_first)
        if near is None:
            return EventPage([])
        if q.newest_first:
            high = min(high, near + 1)
        else:
            low = max(low, near)
    order = "DESC" if q.newest_first else "ASC"
    sql = (
        f"SELECT j.value, e.time FROM {each_entity(':ids')}"
        f" WHERE {' AND '.join(where)} ORDER BY e.time {order}, j.key {order} LIMIT :n"
    )
    found: list[tuple[int, int]] = []
    width = INITIAL_SLICE_US
    spanned = False
    while len(found) <= q.limit and low < high:
        if not spanned and width > INITIAL_SLICE_US:
            # Most pages fill in the first slice: only a walk that goes on needs to know
            # where the candidates' events are (not to widen through empty years).
            spanned = True
            bounds = span(conn, ids)
            if bounds is None:
                break
            low, high = max(low, bounds[0]), min(high, bounds[1])
            continue
        if q.newest_first:
            params["a"], params["b"] = max(low, high - width), high
            high = params["a"]
        else:
            params["a"], params["b"] = low, min(high, low + width)
            low = params["b"]
        params["n"] = q.limit + 1 - len(found)
        found += conn.execute(sql, params).fetchall()
        width *= SLICE_GROWTH
    page = _by_keys(conn, found[: q.limit])
    if len(found) <= q.limit:
        return EventPage(page)
    return EventPage(page, encode_cursor(page[-1].time, page[-1].entity_id, q.newest_first))


def _by_keys(conn: sqlite3.Connection, keys: list[tuple[int, int]]) -> list[EventRecord]:
    """The records of (entity, time) keys, in their order: one seek each, one statement."""
    source = (
        "json_each(?) k CROSS JOIN events e ON e.entity = json_extract(k.value, '$[0]')"
        " AND e.time = json_extract(k.value, '$[1]')"
    )
    rows = conn.execute(select(source) + "ORDER BY k.key", (orjson.dumps(keys).decode(),))
    return records(rows)


def history_many(
    conn: sqlite3.Connection,
    entity_ids: Sequence[str],
    start: int,
    end: int,
    include_start_state: bool,
    attributes: bool,
) -> dict[str, list[EventRecord]]:
    """Each entity's last event before ``start`` and its events in [start, end): seeks."""
    start, end = _clamp(start), _clamp(end)
    stored = _ids_of(conn, entity_ids)
    base = select(attributes=attributes)
    result: dict[str, list[EventRecord]] = {}
    for entity_id in dict.fromkeys(entity_ids):
        ident = stored.get(entity_id)
        rows: list[Any] = []
        if ident is not None:
            if include_start_state:
                rows += conn.execute(
                    base + "WHERE e.entity = ? AND e.time < ? ORDER BY e.time DESC LIMIT 1",
                    (ident, start),
                ).fetchall()
            rows += conn.execute(
                base + "WHERE e.entity = ? AND e.time >= ? AND e.time < ? ORDER BY e.time",
                (ident, start, end),
            ).fetchall()
        result[entity_id] = records(rows)
    return result


def last_states(
    conn: sqlite3.Connection, entity_ids: Sequence[str], before: int | None
) -> dict[str, EventRecord]:
    """Each stored entity's newest event before ``before``, without attributes: seeks."""
    sql = select(attributes=False) + "WHERE e.entity = ? AND e.time < ? ORDER BY e.time DESC"
    high = MAX_TIME if before is None else _clamp(before)
    ids = _ids_of(conn, entity_ids).items()
    rows = ((name, conn.execute(sql + " LIMIT 1", (ident, high)).fetchone()) for name, ident in ids)
    return {name: record(row) for name, row in rows if row is not None}


def by_context(
    conn: sqlite3.Connection,
    context_ids: Sequence[str],
    column: Literal["context_id", "context_parent_id"],
    around: int | None,
) -> list[EventRecord]:
    """Events whose ``column`` is one of ``context_ids``, searched in each id's time
    window (:mod:`homeiq.sinks.reading`): one seek per entity and window."""
    ids = conn.execute("SELECT json_group_array(id) FROM entities").fetchone()[0]
    anchor = around
    if anchor is None and needs_anchor(context_ids):
        anchor = edge(conn, ids, newest=True)
    found: list[EventRecord] = []
    base = select(each_entity())
    for search in context_searches(context_ids, anchor):
        wanted = [encode_context(c) for c in search.windows]
        for first in range(0, len(wanted), _CHUNK):
            chunk = wanted[first : first + _CHUNK]
            rows = conn.execute(
                base + f"WHERE e.time >= ? AND e.time < ? AND e.{column} IN"
                f" ({','.join('?' * len(chunk))})",
                (ids, _clamp(search.start), _clamp(search.end), *chunk),
            ).fetchall()
            for row in rows:
                found_record = record(row)
                if search.wanted(getattr(found_record, column), found_record.time):
                    found.append(found_record)
    found.sort(key=lambda r: (r.time, r.entity_id))
    return found


def activity(conn: sqlite3.Connection, start: int, end: int, bucket_s: int, top: int) -> Activity:
    """Counts in [start, end) per entity, area, domain and bucket (module docstring)."""
    starts = bucket_starts(start, end, bucket_s, top)
    if not starts:
        return build_activity(start, end, bucket_s, top, (), {})
    low, high = _clamp(start), _clamp(end)
    names = dict(conn.execute("SELECT id, entity_id FROM entities").fetchall())
    areas = dict(conn.execute("SELECT id, area_id FROM placements").fetchall())
    per_entity = conn.execute(
        "SELECT n.id, COUNT(*), COUNT(e.placement), MIN(e.placement), MAX(e.placement)"
        " FROM entities n CROSS JOIN events e ON e.entity = n.id"
        " WHERE e.time >= ? AND e.time < ? GROUP BY n.id",
        (low, high),
    ).fetchall()
    counts: list[tuple[str, str | None, int]] = []
    for ident, total, placed, first, last in per_entity:
        name = str(names[ident])
        if placed == total and first == last:
            counts.append((name, areas.get(first), total))
        elif placed == 0:
            counts.append((name, None, total))
        else:  # the entity moved during the range
            counts += (
                (name, areas.get(placement), count)
                for placement, count in conn.execute(
                    "SELECT placement, COUNT(*) FROM events WHERE entity = ? AND time >= ?"
                    " AND time < ? GROUP BY placement",
                    (ident, low, high),
                )
            )
    width = bucket_s * SECOND_US
    rows = sum(total for _, total, *_ in per_entity)
    active = orjson.dumps([ident for ident, *_ in per_entity]).decode()
    if len(starts) * len(per_entity) * SEEK_COST_ROWS < rows:
        per_bucket = conn.execute(
            f"SELECT bk.value, (SELECT COUNT(*) FROM {each_entity()}"
            " WHERE e.time >= MAX(bk.value, ?) AND e.time < MIN(bk.value + ?, ?))"
            " FROM json_each(?) bk",
            (active, low, width, high, orjson.dumps(starts).decode()),
        ).fetchall()
    else:
        per_bucket = conn.execute(
            f"SELECT ? + (e.time - ?) / ? * ?, COUNT(*) FROM {each_entity()}"
            " WHERE e.time >= ? AND e.time < ? GROUP BY 1",
            (starts[0], starts[0], width, width, active, low, high),
        ).fetchall()
    return build_activity(start, end, bucket_s, top, counts, dict(per_bucket))
