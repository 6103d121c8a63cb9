"""Stored events: filtered pages, history with the state at range start, the context
trace of an event (what caused it and what it caused) and an activity summary.

Everything goes through the store's :class:`~homeiq.sinks.base.EventReader`, so the
answers are the same on SQLite and InfluxDB.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field, StringConstraints

from homeiq.api.auth import require
from homeiq.api.context import Reader
from homeiq.api.errors import ApiError, JSONBody, error_responses
from homeiq.api.times import (
    ENTITY_EXAMPLE,
    MIN_TIME_US,
    TIME_EXAMPLE,
    TIME_HELP,
    Iso,
    When,
    now_us,
    or_now,
    to_us,
)
from homeiq.model import EventRecord, Source
from homeiq.pipeline.normalize import format_time_us
from homeiq.sinks.base import EventQuery
from homeiq.sinks.reading import decode_cursor, encode_cursor

router = APIRouter(
    prefix="/api/v1",
    tags=["events"],
    dependencies=[Depends(require("read"))],
    responses=error_responses(400, 401, 403, 413, 414, 422, 429, 500),
)

PAGE_MAX = 1000
# Events per history answer: ~700 bytes each with attributes, so a few MB at most.
HISTORY_PAGE_MAX = 5000
BUCKETS_MAX = 10_000  # per answer: 35 days of 5-minute buckets, 13 months of hours
HISTORY_ENTITIES_MAX = 50
TRACE_DEPTH = 10  # automations rarely chain deeper; a loop in bad data stops here
TRACE_EVENTS_MAX = 1000  # per part of a trace: its own events, its causes, what it caused
CONTEXT_EXAMPLE = "01JDZ8Q7R0D3G8M5W9X2Y4K6N1"

Text = Annotated[str, StringConstraints(min_length=1, max_length=255)]
# Filters are opaque strings: an id that does not exist (or could not) matches nothing.
Many = Annotated[list[Text] | None, Query(max_length=100)]
# A position in the (time, entity_id) order: every string of this form is one, so no
# cursor is ever "malformed"; the direction comes from ``order``.
CURSOR_PATTERN = r"^-?[0-9]{1,18}~.{1,255}$"


class EventOut(BaseModel):
    """One stored state change (DESIGN §5)."""

    entity_id: str
    domain: str
    time: str = Field(description="The new state's last_updated (ISO 8601, UTC).")
    state: str | None = Field(description="null when the entity was removed.")
    value: float | None
    previous_state: str | None
    duration_in_state_s: float | None
    last_changed: str | None
    attributes: dict[str, Any] | None = Field(description="null with attributes=minimal.")
    context_id: str | None
    context_parent_id: str | None
    context_user_id: str | None
    device_id: str | None
    area_id: str | None
    floor_id: str | None
    device_class: str | None
    unit_of_measurement: str | None
    friendly_name: str | None
    origin: Literal["LOCAL", "REMOTE"]
    source: Literal["live", "backfill", "import"]


def event_out(r: EventRecord, *, attributes: bool = True) -> dict[str, Any]:
    """The JSON shape of a record."""
    return {
        "entity_id": r.entity_id,
        "domain": r.domain,
        "time": format_time_us(r.time),
        "state": r.state,
        "value": r.value,
        "previous_state": r.previous_state,
        "duration_in_state_s": r.duration_in_state_s,
        "last_changed": None if r.last_changed is None else format_time_us(r.last_changed),
        "attributes": r.attributes if attributes else None,
        "context_id": r.context_id,
        "context_parent_id": r.context_parent_id,
        "context_user_id": r.context_user_id,
        "device_id": r.device_id,
        "area_id": r.area_id,
        "floor_id": r.floor_id,
        "device_class": r.device_class,
        "unit_of_measurement": r.unit_of_measurement,
        "friendly_name": r.friendly_name,
        "origin": r.origin.name,
        "source": r.source.name.lower(),
    }


def checked_entity_ids(values: list[str] | None) -> tuple[str, ...]:
    """Entity ids from a query, deduplicated (one that does not exist matches nothing)."""
    return tuple(dict.fromkeys(values or ()))


class EventsPage(BaseModel):
    """A page of events; pass ``next_cursor`` back as ``cursor`` for the next one."""

    events: list[EventOut]
    next_cursor: str | None


@router.get("/events", response_model=EventsPage)
async def events(
    reader: Reader,
    entity_id: Many = None,
    domain: Many = None,
    device_id: Many = None,
    area_id: Many = None,
    floor_id: Many = None,
    state: Many = None,
    source: Annotated[list[Literal["live", "backfill", "import"]] | None, Query()] = None,
    start: When = None,
    end: When = None,
    order: Literal["newest", "oldest"] = "newest",
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 100,
    cursor: Annotated[
        str | None,
        Query(pattern=CURSOR_PATTERN, description="`next_cursor` of the previous page."),
    ] = None,
    attributes: Literal["full", "minimal"] = "full",
) -> JSONBody:
    """Events matching every filter given (a filter repeated means any of its values),
    newest or oldest first, in pages of at most ``limit``."""
    query = EventQuery(
        entity_ids=checked_entity_ids(entity_id),
        domains=tuple(domain or ()),
        device_ids=tuple(device_id or ()),
        area_ids=tuple(area_id or ()),
        floor_ids=tuple(floor_id or ()),
        states=tuple(state or ()),
        sources=tuple(Source[s.upper()] for s in source or ()),
        start=to_us(start, "start"),
        end=to_us(end, "end"),
        newest_first=order == "newest",
        limit=limit,
        cursor=None if cursor is None else _to_reader_cursor(cursor, order == "newest"),
    )
    page = await reader.events(query)
    full = attributes == "full"
    next_cursor = None
    if page.next_cursor is not None:
        at, entity = decode_cursor(page.next_cursor, order == "newest")
        next_cursor = f"{at}~{entity}"
    return JSONBody(
        {
            "events": [event_out(r, attributes=full) for r in page.records],
            "next_cursor": next_cursor,
        }
    )


def _to_reader_cursor(cursor: str, newest_first: bool) -> str:
    at, _, entity = cursor.partition("~")
    return encode_cursor(int(at), entity, newest_first)


class HistoryOut(BaseModel):
    """Each entity's state at ``start`` (its last event before it) and its events; when
    more remain than one answer holds, ``next_cursor`` says where the next page starts."""

    start: str
    end: str
    entities: dict[str, list[EventOut]]
    next_cursor: str | None = Field(
        description="Pass back as `cursor` (with the same parameters) for the next page."
    )


@router.get("/history", response_model=HistoryOut)
async def history(
    reader: Reader,
    entity_id: Annotated[
        list[Text],
        Query(min_length=1, max_length=HISTORY_ENTITIES_MAX, examples=[[ENTITY_EXAMPLE]]),
    ],
    start: Annotated[Iso, Query(description=TIME_HELP, examples=[TIME_EXAMPLE])],
    end: Annotated[
        Iso | None,
        Query(description=f"{TIME_HELP} Default: now; give it when paging."),
    ] = None,
    attributes: Literal["full", "minimal"] = "full",
    start_state: bool = True,
    limit: Annotated[
        int, Query(ge=1, le=HISTORY_PAGE_MAX, description="Events per answer, at most 5,000.")
    ] = HISTORY_PAGE_MAX,
    cursor: Annotated[
        str | None,
        Query(pattern=CURSOR_PATTERN, description="`next_cursor` of the previous page."),
    ] = None,
) -> JSONBody:
    """History of one or more entities over ``[start, end)`` (end defaults to now), with
    the state each was in at ``start`` first, as Home Assistant's history shows it.

    At most ``limit`` events per answer (5,000 at most; the first page adds each entity's
    start state), in (time, entity) order; ``next_cursor`` is set when more remain: ask
    again with the same parameters, the answer's ``end`` and ``cursor=next_cursor``."""
    first = to_us(start, "start")
    assert first is not None
    last = or_now(to_us(end, "end"), now_us())
    full = attributes == "full"
    ids = checked_entity_ids(entity_id)
    found: dict[str, list[EventRecord]] = {e: [] for e in ids}
    next_cursor = None
    if last > first:  # an empty range holds nothing
        if start_state and cursor is None:
            # The state at start is each entity's last event before it; the events at
            # start itself come with the page below.
            before = await reader.history_many(
                ids, first, first + 1, include_start_state=True, attributes=full
            )
            for entity, records in before.items():
                found.setdefault(entity, []).extend(r for r in records if r.time < first)
        page = await reader.events(
            EventQuery(
                entity_ids=ids,
                start=first,
                end=last,
                limit=limit,
                cursor=None if cursor is None else _to_reader_cursor(cursor, False),
            )
        )
        for record in page.records:
            found.setdefault(record.entity_id, []).append(record)
        if page.next_cursor is not None:
            at, entity = decode_cursor(page.next_cursor, False)
            next_cursor = f"{at}~{entity}"
    entities = {e: [event_out(r, attributes=full) for r in rs] for e, rs in found.items()}
    return JSONBody(
        {
            "start": format_time_us(first),
            "end": format_time_us(last),
            "entities": entities,
            "next_cursor": next_cursor,
        }
    )


class ContextOut(BaseModel):
    """The events of one context."""

    context_id: str
    events: list[EventOut]


class TraceOut(BaseModel):
    """A context's events, the chain of contexts that caused it (nearest first), and
    every event it caused, directly or through further contexts."""

    context_id: str
    events: list[EventOut] = Field(description="At most 1,000.")
    caused_by: list[ContextOut] = Field(description="At most 10 contexts, 1,000 events.")
    caused: list[EventOut] = Field(description="At most 1,000, 10 contexts deep.")
    truncated: bool = Field(description="True when a part was cut at its cap.")


@router.get("/trace/{context_id}", response_model=TraceOut)
async def trace(
    reader: Reader,
    context_id: Annotated[str, Path(min_length=1, max_length=64, examples=[CONTEXT_EXAMPLE])],
) -> JSONBody:
    """Which context caused the events of ``context_id`` and everything it caused: at
    most 1,000 events of its own, 1,000 in the chain of causes and 1,000 caused
    (``truncated`` says when a part was cut)."""
    return JSONBody(await _trace(reader, context_id))


@router.get("/events/trace", response_model=TraceOut, responses=error_responses(404))
async def trace_event(
    reader: Reader,
    entity_id: Annotated[str, Query(min_length=1, max_length=255, examples=[ENTITY_EXAMPLE])],
    time: Annotated[
        Iso, Query(description=f"The event's time. {TIME_HELP}", examples=[TIME_EXAMPLE])
    ],
) -> JSONBody:
    """The trace of one event, found by its entity and time (404 if there is none)."""
    at = to_us(time, "time")
    assert at is not None
    return JSONBody(await _trace(reader, await _context_of(reader, entity_id, at)))


async def _trace(reader: Reader, context_id: str) -> dict[str, Any]:
    # The two searches of the context's own window are independent: run them together
    # (the reader runs each in its own thread, and SQLite's scans release the GIL).
    own, first = await asyncio.gather(
        reader.by_context([context_id]), reader.caused_by([context_id])
    )
    truncated = len(own) > TRACE_EVENTS_MAX
    chain: list[dict[str, Any]] = []
    parent = next((r.context_parent_id for r in own if r.context_parent_id), None)
    seen = {context_id}
    budget = TRACE_EVENTS_MAX  # events of the whole chain of causes
    while parent is not None and parent not in seen and len(chain) < TRACE_DEPTH:
        seen.add(parent)
        events_of = await reader.by_context([parent])
        kept = events_of[:budget]
        truncated |= len(kept) < len(events_of)
        budget -= len(kept)
        chain.append({"context_id": parent, "events": [event_out(r) for r in kept]})
        parent = next((r.context_parent_id for r in events_of if r.context_parent_id), None)
    caused: list[EventRecord] = []
    found = [r for r in first if r.context_id not in seen]
    for depth in range(1, TRACE_DEPTH + 1):
        if not found:
            break
        room = TRACE_EVENTS_MAX - len(caused)
        truncated |= len(found) > room
        caused += found[:room]
        frontier = sorted({r.context_id for r in found if r.context_id} - seen)
        seen.update(frontier)
        if len(caused) >= TRACE_EVENTS_MAX or not frontier or depth == TRACE_DEPTH:
            break
        found = [r for r in await reader.caused_by(frontier) if r.context_id not in seen]
    return {
        "context_id": context_id,
        "events": [event_out(r) for r in own[:TRACE_EVENTS_MAX]],
        "caused_by": chain,
        "caused": [event_out(r) for r in sorted(caused, key=lambda r: (r.time, r.entity_id))],
        "truncated": truncated,
    }


async def _context_of(reader: Reader, entity_id: str | None, time_us: int | None) -> str:
    if entity_id is None or time_us is None:
        raise ApiError(422, "give context_id, or entity_id and time")
    ids = checked_entity_ids([entity_id])
    page = await reader.events(EventQuery(entity_ids=ids, start=time_us, end=time_us + 1, limit=1))
    if not page.records:
        raise ApiError(404, f"no event of {entity_id} at {format_time_us(time_us)}")
    found = page.records[0].context_id
    if found is None:
        raise ApiError(404, "that event has no context (backfilled from history)")
    return found


class EntityCount(BaseModel):
    """Events of one entity."""

    entity_id: str
    events: int


class RatePoint(BaseModel):
    """Events in one bucket."""

    start: str
    events: int


class ActivityOut(BaseModel):
    """Event counts over a range."""

    start: str
    end: str
    bucket_s: int
    total: int
    top_entities: list[EntityCount] = Field(description="Busiest first.")
    rate: list[RatePoint] = Field(description="Every bucket of the range, empty ones too.")
    by_domain: dict[str, int]
    by_area: dict[str, int]


@router.get("/activity", response_model=ActivityOut)
async def activity(
    reader: Reader,
    start: When = None,
    end: When = None,
    bucket: Literal["5m", "1h", "1d"] = "1h",
    top: Annotated[int, Query(ge=0, le=100)] = 10,
) -> JSONBody:
    """Top entities by event count, events per bucket, counts per domain and area over
    ``[start, end)`` (default: the last 24 hours)."""
    last = or_now(to_us(end, "end"), now_us())
    given = to_us(start, "start")
    first = max(last - 86_400_000_000, MIN_TIME_US) if given is None else given
    bucket_s = {"5m": 300, "1h": 3600, "1d": 86400}[bucket]
    # At most BUCKETS_MAX buckets: an older start moves forward (the answer says where).
    first = max(first, last - (BUCKETS_MAX - 1) * bucket_s * 1_000_000, MIN_TIME_US)
    last = max(last, first)  # an empty range holds nothing
    found = await reader.activity(first, last, bucket_s=bucket_s, top=top)
    return JSONBody(
        {
            "start": format_time_us(first),
            "end": format_time_us(last),
            "bucket_s": bucket_s,
            "total": found.total,
            "top_entities": [{"entity_id": e, "events": n} for e, n in found.top_entities],
            "rate": [{"start": format_time_us(t), "events": n} for t, n in found.buckets],
            "by_domain": found.by_domain,
            "by_area": found.by_area,
        }
    )
