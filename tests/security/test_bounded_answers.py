"""Medium: every answer is bounded. History for many entities from year 1 came back as
16 MB in one answer; now history, trace, statistics and the registry lists have a cap
and (but statistics, which says where it stopped) a cursor. Paging must neither skip
nor repeat a row, also where many rows share one time at a page boundary."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from homeiq.api.routes.events import HISTORY_PAGE_MAX, TRACE_EVENTS_MAX
from homeiq.api.routes.statistics import BUCKETS_MAX
from homeiq.model import EventRecord
from homeiq.pipeline.normalize import format_time_us, numeric_value, parse_time_us
from homeiq.sinks.reading import ulid_time_us
from tests.api.conftest import Api, assert_error

T0 = 1_795_640_400_000_000  # a time in the past
ENTITIES = [f"sensor.s{i:02d}" for i in range(7)]


def record(at: int, entity_id: str, state: str, **kw: Any) -> EventRecord:
    attributes = {"friendly_name": entity_id}
    return EventRecord(
        entity_id=entity_id,
        time=at,
        state=state,
        value=numeric_value(state),
        attributes=attributes,
        attributes_json=orjson.dumps(attributes),
        **kw,
    )


async def get(api: Api, path: str, **params: Any) -> Any:
    response = await api.client.get(path, params=params, headers=api.keys.auth("read"))
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
async def crowded(api: Api) -> Api:
    """Seven entities changing at the same 30 instants, and one change before the range."""
    events = [record(T0 - 60_000_000, e, "-1") for e in ENTITIES]
    events += [record(T0 + t * 1_000_000, e, str(t)) for t in range(30) for e in ENTITIES]
    await api.runtime.writer.deliver(events)
    return api


def rows(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(r["time"], e) for e, records in body["entities"].items() for r in records]


@pytest.mark.parametrize("limit", [1, 6, 7, 20, 209])
async def test_history_pages_neither_skip_nor_repeat(crowded: Api, limit: int) -> None:
    params = {
        "entity_id": ENTITIES,
        "start": format_time_us(T0),
        "end": format_time_us(T0 + 3_600_000_000),
    }
    whole = await get(crowded, "/api/v1/history", **params)
    assert whole["next_cursor"] is None
    assert len(rows(whole)) == 7 + 7 * 30  # start states, then every change
    pages, cursor = [], None
    while True:
        extra = {} if cursor is None else {"cursor": cursor}
        page = await get(crowded, "/api/v1/history", **params, limit=limit, **extra)
        assert len(rows(page)) <= limit + (7 if cursor is None else 0)
        assert set(page["entities"]) == set(ENTITIES)
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(pages) >= -(-7 * 30 // limit)
    paged = sorted(row for page in pages for row in rows(page))
    assert paged == sorted(rows(whole))
    assert len(set(paged)) == len(paged)
    # The start state is on the first page only.
    before = format_time_us(T0 - 60_000_000)
    assert [p for p in pages if any(t == before for t, _ in rows(p))] == pages[:1]


async def test_history_caps_one_answer(api: Api) -> None:
    ids = ["sensor.a", "sensor.b"]
    await api.runtime.writer.deliver(
        [record(T0 + i * 1_000_000, ids[i % 2], str(i)) for i in range(HISTORY_PAGE_MAX + 10)]
    )
    params = {"entity_id": ids, "start": "0001-01-01T00:00:00Z"}
    first = await get(api, "/api/v1/history", **params)
    assert len(rows(first)) == HISTORY_PAGE_MAX
    assert first["next_cursor"] is not None
    second = await get(
        api, "/api/v1/history", **params, end=first["end"], cursor=first["next_cursor"]
    )
    assert len(rows(second)) == 10
    assert second["next_cursor"] is None
    response = await api.client.get(
        "/api/v1/history",
        params={**params, "limit": HISTORY_PAGE_MAX + 1},
        headers=api.keys.auth("read"),
    )
    assert_error(response, 422, "validation_error")


async def test_trace_is_capped_and_says_so(api: Api) -> None:
    context = "01" + "K" * 24  # a ULID: its events are searched near its creation
    created = ulid_time_us(context)
    assert created is not None
    events = [
        record(created + i, f"light.l{i:04d}", "on", context_id=context)
        for i in range(TRACE_EVENTS_MAX + 5)
    ]
    await api.runtime.writer.deliver(events)
    body = await get(api, f"/api/v1/trace/{context}")
    assert len(body["events"]) == TRACE_EVENTS_MAX
    assert body["truncated"] is True
    small = await get(api, "/api/v1/trace/01" + "M" * 24)
    assert (small["events"], small["truncated"]) == ([], False)


async def test_registry_lists_page(api: Api) -> None:
    whole = await get(api, "/api/v1/registry/entities")
    assert whole["next_cursor"] is None
    assert whole["count"] == len(whole["items"]) == 6
    seen, cursor = [], None
    while True:
        extra = {} if cursor is None else {"cursor": cursor}
        page = await get(api, "/api/v1/registry/entities", limit=4, **extra)
        assert len(page["items"]) <= 4
        assert page["count"] == 6
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == whole["items"]
    devices = await get(api, "/api/v1/registry/devices", limit=1)
    assert [d["device_id"] for d in devices["items"]] == ["dev_fridge"]
    assert devices["next_cursor"] == "dev_fridge"


async def test_statistics_hold_at_most_the_bucket_cap_in_total(api: Api) -> None:
    entities = [f"sensor.s{i:02d}" for i in range(20)]
    body = await get(
        api,
        "/api/v1/statistics",
        entity_id=entities,
        start="0001-01-01T00:00:00Z",
        end=format_time_us(T0),
        period="5m",
    )
    span_us = T0 - parse_time_us(body["start"], "start")
    assert span_us == (BUCKETS_MAX // 20 - 1) * 300 * 1_000_000
    assert body["end"] == format_time_us(T0)
