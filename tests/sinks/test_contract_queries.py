"""The API's queries, one contract for every event store (the ``backend`` fixture).

Each test writes the home of tests/sinks/home.py and compares what the backend answers
with the answer worked out in Python there: filters alone and combined, both orders,
paging with small limits, history with the state at range start, context traces of an
automation chain, activity counts.
"""

from __future__ import annotations

import base64
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homeiq.model import EventRecord, Source
from homeiq.sinks.base import Activity, EventPage, EventQuery
from tests.sinks.conftest import Backend
from tests.sinks.home import (
    AUTOMATION_CONTEXT,
    ENTITIES,
    HOME,
    LEGACY_CONTEXT,
    MOTION_CONTEXT,
    SCENE_CONTEXT,
    SCENE_LIGHTS,
    STALE_CONTEXT,
    expected_activity,
    expected_events,
    ordered,
    ulid,
    without_attributes,
)
from tests.support.influxdb import T0, S, event

DAY = 86_400 * S


@pytest.fixture
async def home(backend: Backend) -> AsyncIterator[Backend]:
    """The backend with :data:`HOME` written, in shuffled batches."""
    batch = HOME[:]
    random.Random(3).shuffle(batch)
    for first in range(0, len(batch), 10):
        await backend.sink.write(batch[first : first + 10])
    yield backend


async def all_pages(backend: Backend, query: EventQuery) -> list[EventPage]:
    """Every page of ``query``, following next_cursor."""
    pages = [await backend.reader.events(query)]
    while pages[-1].next_cursor is not None:
        assert len(pages) <= len(HOME), "paging does not end"
        cursor = pages[-1].next_cursor
        pages.append(await backend.reader.events(_with(query, cursor=cursor)))
    return pages


def _with(query: EventQuery, **changes: Any) -> EventQuery:
    fields = {f: getattr(query, f) for f in EventQuery.__dataclass_fields__}
    return EventQuery(**{**fields, **changes})


def _entities(records: list[EventRecord]) -> list[str]:
    return [r.entity_id for r in records]


# -- events ---------------------------------------------------------------------------------

FILTERS: list[dict[str, Any]] = [
    {},
    {"entity_ids": ("light.kitchen",)},
    {"entity_ids": ("light.kitchen", "sensor.outdoor", "sensor.unknown")},
    {"domains": ("light",)},
    {"domains": ("binary_sensor", "automation")},
    {"device_ids": ("heater",)},
    {"device_ids": ("heater", "motion")},
    {"area_ids": ("kitchen",)},
    {"area_ids": ("bedroom", "hall")},
    {"floor_ids": ("upstairs",)},
    {"states": ("on",)},
    {"states": ("off", "4.5")},
    {"sources": (Source.BACKFILL, Source.IMPORT)},
    {"start": T0, "end": T0 + 30 * S},
    {"start": T0 + 30 * S},
    {"end": T0},
    {"domains": ("light",), "area_ids": ("kitchen", "hall"), "states": ("on",)},
    {"entity_ids": ("switch.heater",), "area_ids": ("bedroom",), "start": T0},
    {"floor_ids": ("ground",), "sources": (Source.LIVE,), "start": T0 + 20 * S, "end": T0 + 31 * S},
]
NOTHING: list[dict[str, Any]] = [
    {"area_ids": ("garage",)},
    {"domains": ("light",), "states": ("4.0",)},
    {"entity_ids": ("sensor.unknown",)},
    {"start": T0 + 2 * DAY},
    {"start": T0 + 10 * S, "end": T0 + 10 * S},
]


@pytest.mark.parametrize("newest_first", [False, True], ids=["oldest-first", "newest-first"])
async def test_events_filters_alone_and_combined(home: Backend, newest_first: bool) -> None:
    for filters in FILTERS:
        query = EventQuery(**filters, newest_first=newest_first, limit=1000)
        expected = expected_events(query)
        assert expected, f"the data should match {filters}"
        assert await home.reader.events(query) == EventPage(expected), filters
    for filters in NOTHING:
        query = EventQuery(**filters, newest_first=newest_first)
        assert await home.reader.events(query) == EventPage([]), filters


async def test_filters_use_the_placement_stored_with_each_event(home: Backend) -> None:
    page = await home.reader.events(
        EventQuery(entity_ids=("switch.heater",), area_ids=("kitchen",))
    )
    assert [r.time for r in page.records] == [T0 - 40 * S, T0]  # before it moved
    page = await home.reader.events(EventQuery(device_ids=("heater",), floor_ids=("upstairs",)))
    assert [r.time for r in page.records] == [T0 + 12 * S]


async def test_events_at_the_same_time_are_ordered_by_entity_id(home: Backend) -> None:
    query = EventQuery(start=T0 + 30 * S, end=T0 + 30 * S + 1)
    assert _entities((await home.reader.events(query)).records) == SCENE_LIGHTS
    newest = await home.reader.events(_with(query, newest_first=True))
    assert _entities(newest.records) == SCENE_LIGHTS[::-1]


async def test_the_newest_page_of_the_home(home: Backend) -> None:
    page = await home.reader.events(EventQuery(newest_first=True, limit=3))
    assert page.records == ordered(HOME, newest_first=True)[:3]
    assert page.next_cursor is not None


@pytest.mark.parametrize("limit", [1, 2, 3, 7])
async def test_paging_yields_every_row_once_in_order(home: Backend, limit: int) -> None:
    for filters in ({}, {"domains": ("light",)}, {"area_ids": ("hall",), "start": T0}):
        for newest_first in (False, True):
            query = EventQuery(**filters, newest_first=newest_first, limit=limit)
            pages = await all_pages(home, query)
            expected = expected_events(query)
            assert [r for p in pages for r in p.records] == expected, (filters, newest_first)
            # Full pages until the last, which says there is no more.
            assert [len(p.records) for p in pages[:-1]] == [limit] * (len(pages) - 1)
            assert 0 < len(pages[-1].records) <= limit
            assert pages[-1].next_cursor is None


async def test_a_page_that_ends_exactly_at_the_last_row_has_no_cursor(home: Backend) -> None:
    query = EventQuery(domains=("light",))
    count = len(expected_events(query))
    assert (await home.reader.events(_with(query, limit=count))).next_cursor is None
    assert (await home.reader.events(_with(query, limit=count - 1))).next_cursor is not None


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not a cursor",
        "é",
        "AAAA",
        _cursor(b"[1,"),
        _cursor(b'{"time": 1}'),
        _cursor(b'[1, "asc", "1", "light.a"]'),
        _cursor(b'[1, "up", 1, "light.a"]'),
        _cursor(b'[2, "asc", 1, "light.a"]'),
        _cursor(b'[1, "asc", 1, null]'),
        _cursor(b'[1, "asc", 1.5, "light.a"]'),
        _cursor(b'[1, "asc", 99999999999999999999, "light.a"]'),
    ],
)
async def test_a_malformed_cursor_is_a_value_error(backend: Backend, cursor: str) -> None:
    with pytest.raises(ValueError, match="malformed cursor"):
        await backend.reader.events(EventQuery(cursor=cursor))


async def test_a_cursor_of_the_other_order_is_a_value_error(home: Backend) -> None:
    page = await home.reader.events(EventQuery(limit=2))
    assert page.next_cursor is not None
    with pytest.raises(ValueError, match="other order"):
        await home.reader.events(EventQuery(limit=2, newest_first=True, cursor=page.next_cursor))


def test_event_query_checks_its_limit_and_takes_lists() -> None:
    with pytest.raises(ValueError, match="limit"):
        EventQuery(limit=0)
    query = EventQuery(entity_ids=["light.a"], sources=[1])  # type: ignore[arg-type]
    assert query.entity_ids == ("light.a",) and query.sources == (Source.BACKFILL,)


filter_values: dict[str, Any] = {
    "entity_ids": st.sampled_from([*ENTITIES, "sensor.unknown"]),
    "domains": st.sampled_from(["light", "sensor", "switch", "automation", "binary_sensor"]),
    "device_ids": st.sampled_from(["heater", "thermo", "motion", "d0", "d3", "kitchen_light"]),
    "area_ids": st.sampled_from(["kitchen", "bedroom", "hall"]),
    "floor_ids": st.sampled_from(["ground", "upstairs"]),
    "states": st.sampled_from(["on", "off", "21.0", "4.0"]),
    "sources": st.sampled_from(Source),
}
times = st.sampled_from([None, T0 - 60 * S, T0, T0 + 20 * S, T0 + 30 * S, T0 + 31 * S, T0 + DAY])


@st.composite
def queries(draw: Any) -> EventQuery:
    filters = {
        name: tuple(draw(st.lists(values, min_size=1, max_size=3, unique=True)))
        for name, values in filter_values.items()
        if draw(st.integers(0, 3)) == 0
    }
    return EventQuery(
        **filters,
        start=draw(times),
        end=draw(times),
        newest_first=draw(st.booleans()),
        limit=draw(st.integers(1, 6)),
    )


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(query=queries())
async def test_pages_concatenated_equal_one_big_page(home: Backend, query: EventQuery) -> None:
    pages = await all_pages(home, query)
    one = await home.reader.events(_with(query, limit=len(HOME)))
    assert one.next_cursor is None
    assert [r for p in pages for r in p.records] == one.records == expected_events(query)


# -- history --------------------------------------------------------------------------------


def _history(entity_id: str, start: int, end: int, start_state: bool) -> list[EventRecord]:
    mine = ordered([r for r in HOME if r.entity_id == entity_id])
    before = [r for r in mine if r.time < start][-1:] if start_state else []
    return before + [r for r in mine if start <= r.time < end]


async def test_history_many_starts_with_the_state_at_range_start(home: Backend) -> None:
    wanted = ["sensor.kitchen_temp", "switch.heater", "light.scene_0", "sensor.unknown"]
    start, end = T0 + 5 * S, T0 + 50 * S
    found = await home.reader.history_many([*wanted, "switch.heater"], start, end)
    assert list(found) == wanted
    assert found == {e: _history(e, start, end, True) for e in wanted}
    assert [r.time for r in found["sensor.kitchen_temp"]] == [T0, T0 + 10 * S, T0 + 40 * S]
    assert found["light.scene_0"] == _history("light.scene_0", start, end, False)
    assert found["sensor.unknown"] == []

    plain = await home.reader.history_many(wanted, start, end, include_start_state=False)
    assert plain == {e: _history(e, start, end, False) for e in wanted}


async def test_history_many_without_attributes(home: Backend) -> None:
    start, end = T0, T0 + 60 * S
    found = await home.reader.history_many(
        ["light.kitchen", "automation.motion_lights"], start, end, attributes=False
    )
    kitchen = _history("light.kitchen", start, end, True)
    assert any(r.attributes for r in kitchen)
    assert found == {
        "light.kitchen": [without_attributes(r) for r in kitchen],
        "automation.motion_lights": [
            without_attributes(r) for r in _history("automation.motion_lights", start, end, True)
        ],
    }


async def test_history_many_of_nothing(home: Backend) -> None:
    assert await home.reader.history_many([], T0, T0 + S) == {}
    assert await home.reader.history_many(["light.kitchen"], T0 + DAY, T0 + 2 * DAY) == {
        "light.kitchen": [ordered([r for r in HOME if r.entity_id == "light.kitchen"])[-1]]
    }


# -- context traces -------------------------------------------------------------------------


def _context(field: str, *ids: str) -> list[EventRecord]:
    return ordered([r for r in HOME if getattr(r, field) in ids])


async def test_an_automation_chain_is_traced_both_ways(home: Backend) -> None:
    reader = home.reader
    motion = await reader.by_context([MOTION_CONTEXT])
    assert _entities(motion) == ["binary_sensor.hall_motion"]
    caused = await reader.caused_by([MOTION_CONTEXT])
    assert caused == _context("context_parent_id", MOTION_CONTEXT)
    assert _entities(caused) == ["automation.motion_lights", "light.bedroom", "light.kitchen"]
    # The automation run's own context: the same three events, and nothing below them.
    assert await reader.by_context([AUTOMATION_CONTEXT]) == caused
    assert await reader.caused_by([AUTOMATION_CONTEXT]) == []
    assert caused[1].context_user_id == "user-1"


async def test_by_context_of_several_ids_and_of_a_scene(home: Backend) -> None:
    ids = [SCENE_CONTEXT, MOTION_CONTEXT, AUTOMATION_CONTEXT, SCENE_CONTEXT]
    assert await home.reader.by_context(ids) == _context("context_id", *ids)
    assert _entities(await home.reader.by_context([SCENE_CONTEXT])) == SCENE_LIGHTS


async def test_context_search_is_bounded_by_the_ulid_time(home: Backend) -> None:
    # The event came two hours after the context's creation: past the window.
    assert await home.reader.by_context([STALE_CONTEXT]) == []
    assert await home.reader.by_context([ulid(T0 + 20 * S, 99)]) == []
    assert await home.reader.by_context([]) == []
    assert await home.reader.caused_by(["no-such-context"]) == []


async def test_a_context_id_that_is_no_ulid_is_searched_around_an_anchor(home: Backend) -> None:
    legacy = _context("context_id", LEGACY_CONTEXT)
    assert len(legacy) == 1
    # No anchor given: around the newest stored event (within a day of it).
    assert await home.reader.by_context([LEGACY_CONTEXT]) == legacy
    assert await home.reader.by_context([LEGACY_CONTEXT], around=T0) == legacy
    assert await home.reader.by_context([LEGACY_CONTEXT], around=T0 + 3 * DAY) == []


# -- activity -------------------------------------------------------------------------------

RANGES = [
    (T0 - 200 * S, T0 + 4000 * S, 60, 3),
    (T0, T0 + 60 * S, 10, 100),
    (T0 + 5 * S, T0 + 31 * S, 7, 2),  # neither end on a bucket boundary
    (T0 - DAY, T0 + DAY, 3600, 0),
    (T0 + 100 * S, T0 + 200 * S, 60, 5),  # nothing happened
    (T0 + 10 * S, T0 + 10 * S, 60, 5),  # empty range
]


@pytest.mark.parametrize(("start", "end", "bucket_s", "top"), RANGES)
async def test_activity_counts(
    home: Backend, start: int, end: int, bucket_s: int, top: int
) -> None:
    found = await home.reader.activity(start, end, bucket_s=bucket_s, top=top)
    assert found == expected_activity(start, end, bucket_s, top)


async def test_activity_of_the_home(home: Backend) -> None:
    found = await home.reader.activity(T0, T0 + 60 * S, bucket_s=30, top=2)
    # Ties (five entities changed twice) go by entity_id.
    assert found.top_entities == [("sensor.kitchen_temp", 3), ("binary_sensor.hall_motion", 2)]
    # T0 is 17 s past a 30 s boundary of the epoch.
    assert found.buckets == [(T0 - 17 * S, 6), (T0 + 13 * S, 12), (T0 + 43 * S, 3)]
    # The heater counts in the kitchen before it moved, in the bedroom after.
    assert found.by_area == {"kitchen": 5, "bedroom": 3, "hall": 9, "(no area)": 4}
    assert found.total == sum(found.by_domain.values()) == 21


@pytest.mark.parametrize(
    ("start", "end", "bucket_s", "top", "message"),
    [
        (T0, T0 + S, 0, 1, "bucket_s"),
        (T0, T0 + S, 1, -1, "top"),
        (T0, T0 + DAY, 1, 1, "buckets"),
        (-(2**70), T0, 10**15, 1, "start and end"),
        (T0, T0 + S, 2**60, 1, "bucket_s"),
    ],
)
async def test_activity_refuses_what_it_cannot_answer(
    backend: Backend, start: int, end: int, bucket_s: int, top: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await backend.reader.activity(start, end, bucket_s=bucket_s, top=top)


async def test_an_empty_store(backend: Backend) -> None:
    reader = backend.reader
    assert await reader.events(EventQuery(newest_first=True)) == EventPage([])
    assert await reader.history_many(["light.a"], T0, T0 + S) == {"light.a": []}
    assert await reader.by_context([MOTION_CONTEXT, LEGACY_CONTEXT]) == []
    assert await reader.activity(T0, T0 + 60 * S, bucket_s=30, top=3) == Activity(
        start=T0,
        end=T0 + 60 * S,
        bucket_s=30,
        buckets=[(T0 - 17 * S, 0), (T0 + 13 * S, 0), (T0 + 43 * S, 0)],
    )


# Seconds to a year apart, ties included: pages that cross the readers' widening time
# slices (5 minutes, then 4x wider) at every scale, both orders, with and without bounds.
SCATTERED_OFFSETS = (0, 1, 2, 299, 300, 301, 1_200, 6_000, 86_400, 90_000, 31_536_000)
SCATTERED = [
    event(f"sensor.s{i % 3}", second=-offset, state=str(i))
    for i, offset in enumerate(SCATTERED_OFFSETS)
] + [event("sensor.s9", second=-2, state="tie")]


@pytest.mark.parametrize("newest_first", [True, False], ids=["newest-first", "oldest-first"])
@pytest.mark.parametrize("limit", [1, 2, 5])
@pytest.mark.parametrize(
    "bounds", [{}, {"start": T0 - 100_000 * S}, {"end": T0 - 1 * S}, {"entity_ids": ("sensor.s1",)}]
)
async def test_pages_across_time_slices_of_every_width(
    backend: Backend, newest_first: bool, limit: int, bounds: dict[str, Any]
) -> None:
    await backend.sink.write(SCATTERED)
    query = EventQuery(**bounds, newest_first=newest_first, limit=limit)
    expected = [
        r
        for r in ordered(SCATTERED, newest_first)
        if (query.start is None or r.time >= query.start)
        and (query.end is None or r.time < query.end)
        and (not query.entity_ids or r.entity_id in query.entity_ids)
    ]
    pages = [await backend.reader.events(query)]
    while pages[-1].next_cursor is not None:
        assert len(pages) <= len(SCATTERED)
        pages.append(await backend.reader.events(_with(query, cursor=pages[-1].next_cursor)))
    assert [r for p in pages for r in p.records] == expected
    assert all(len(p.records) == limit for p in pages[:-1])
