"""The data endpoints (events, history, trace, activity, statistics, rollup rebuild) on
both backends, through the ASGI app over a started Runtime: the data in the answers,
not only the status codes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from homeiq.maintenance.rollups import align
from homeiq.model import EventRecord, Source
from homeiq.pipeline.normalize import format_time_us, numeric_value
from tests.api.conftest import Api, ApiFactory

H = 3_600_000_000
T0 = align(1_795_640_400_000_000, 86400)  # a UTC midnight in the past
# Realistic ULIDs: the first 10 characters encode the context's creation time (ms).
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(time_us: int, tail: str) -> str:
    ms, chars = time_us // 1000, []
    for _ in range(10):
        ms, digit = divmod(ms, 32)
        chars.append(_CROCKFORD[digit])
    return "".join(reversed(chars)) + tail.rjust(16, "0")


def ev(seconds: float, entity_id: str, state: str, **kw: Any) -> EventRecord:
    attributes = kw.pop("attributes", {"friendly_name": entity_id})
    return EventRecord(
        entity_id=entity_id,
        time=T0 + int(seconds * 1_000_000),
        state=state,
        value=numeric_value(state),
        attributes=attributes,
        attributes_json=orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS),
        **kw,
    )


TRIGGER = ulid(T0 + 7200 * 1_000_000, "A")  # the motion sensor's context
AUTOMATION = ulid(T0 + 7200 * 1_000_000 + 1000, "B")  # the automation's run
EVENTS = [
    ev(0, "sensor.power", "100", area_id="kitchen"),
    ev(1800, "sensor.power", "300", area_id="kitchen"),
    ev(3600 + 600, "sensor.power", "200", area_id="kitchen"),
    ev(600, "light.desk", "on", area_id="office"),
    ev(2400, "light.desk", "off", area_id="office", source=Source.BACKFILL),
    ev(7200, "binary_sensor.motion", "on", context_id=TRIGGER),
    ev(7200.001, "automation.lights", "on", context_id=AUTOMATION, context_parent_id=TRIGGER),
    ev(
        7200.002,
        "light.hall",
        "on",
        context_id=ulid(T0 + 7200002000, "C"),
        context_parent_id=AUTOMATION,
    ),
]


@pytest.fixture(params=["sqlite", pytest.param("influxdb", marks=pytest.mark.influxdb)])
async def loaded(request: pytest.FixtureRequest, make_api: ApiFactory) -> Api:
    overrides: dict[str, Any] = {}
    if request.param == "influxdb":
        server = request.getfixturevalue("influxdb")
        overrides = {
            "store": "influxdb",
            "influxdb_url": server.url,
            "influxdb_database": request.getfixturevalue("influxdb_database"),
        }
    api = await make_api(**overrides)
    await api.runtime.writer.deliver(list(EVENTS))
    await api.runtime.rollup_maintainer.refresh()
    return api


async def get(api: Api, path: str, **params: Any) -> Any:
    response = await api.client.get(path, params=params, headers=api.keys.auth("read"))
    assert response.status_code == 200, response.text
    return response.json()


def iso(seconds: float) -> str:
    return format_time_us(T0 + int(seconds * 1_000_000))


async def test_events_pages_newest_first_with_filters(loaded: Api) -> None:
    seen: list[tuple[str, str]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = await get(loaded, "/api/v1/events", **params)
        seen += [(e["time"], e["entity_id"]) for e in page["events"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    expected = sorted(((iso((r.time - T0) / 1e6), r.entity_id) for r in EVENTS), reverse=True)
    assert seen == expected
    kitchen = await get(loaded, "/api/v1/events", area_id="kitchen", order="oldest")
    assert [e["state"] for e in kitchen["events"]] == ["100", "300", "200"]
    backfilled = await get(loaded, "/api/v1/events", source="backfill")
    assert [(e["entity_id"], e["state"]) for e in backfilled["events"]] == [("light.desk", "off")]
    minimal = await get(loaded, "/api/v1/events", domain="light", attributes="minimal")
    assert {e["entity_id"] for e in minimal["events"]} == {"light.desk", "light.hall"}
    assert all(e["attributes"] is None for e in minimal["events"])


async def test_history_includes_the_state_at_range_start(loaded: Api) -> None:
    body = await get(
        loaded,
        "/api/v1/history",
        entity_id=["sensor.power", "light.desk"],
        start=iso(3600),
        end=iso(7200),
    )
    power = body["entities"]["sensor.power"]
    assert [(e["state"], e["time"]) for e in power] == [("300", iso(1800)), ("200", iso(4200))]
    assert power[0]["attributes"] == {"friendly_name": "sensor.power"}
    assert [e["state"] for e in body["entities"]["light.desk"]] == ["off"]


async def test_trace_shows_what_caused_the_light_and_what_the_trigger_caused(
    loaded: Api,
) -> None:
    light = await get(loaded, "/api/v1/events/trace", entity_id="light.hall", time=iso(7200.002))
    assert [e["entity_id"] for e in light["events"]] == ["light.hall"]
    assert [c["context_id"] for c in light["caused_by"]] == [AUTOMATION, TRIGGER]
    assert light["caused_by"][0]["events"][0]["entity_id"] == "automation.lights"
    assert light["caused_by"][1]["events"][0]["entity_id"] == "binary_sensor.motion"
    trigger = await get(loaded, f"/api/v1/trace/{TRIGGER}")
    assert [e["entity_id"] for e in trigger["caused"]] == ["automation.lights", "light.hall"]
    assert trigger["caused_by"] == []


async def test_activity_counts(loaded: Api) -> None:
    body = await get(loaded, "/api/v1/activity", start=iso(0), end=iso(3 * 3600), bucket="1h")
    assert body["total"] == len(EVENTS)
    assert body["top_entities"][0] == {"entity_id": "sensor.power", "events": 3}
    assert [p["events"] for p in body["rate"]] == [4, 1, 3]
    assert body["by_domain"]["light"] == 3


async def test_statistics_from_rollups(loaded: Api) -> None:
    body = await get(
        loaded,
        "/api/v1/statistics",
        entity_id=["sensor.power", "light.desk"],
        start=iso(0),
        end=iso(3 * 3600),
        period="1h",
    )
    first, second, third = body["entities"]["sensor.power"]
    assert (first["count"], first["min"], first["max"], first["mean"]) == (2, 100.0, 300.0, 200.0)
    assert first["time_weighted_mean"] == pytest.approx(200.0)  # 100 then 300, half each
    assert second["time_weighted_mean"] == pytest.approx((300 * 600 + 200 * 3000) / 3600)
    assert third["count"] == 0 and third["time_weighted_mean"] == 200.0
    desk = body["entities"]["light.desk"]
    assert desk[0]["state_seconds"] == {"on": 1800.0, "off": 1200.0}
    assert desk[1]["state_seconds"] == {"off": 3600.0}


async def test_rollup_rebuild_restores_deleted_buckets(loaded: Api) -> None:
    for period in ("5m", "1h"):
        loaded.runtime.rollups.replace(period, "sensor.power", T0, [])
    response = await loaded.client.post(
        "/api/v1/admin/rollups/rebuild",
        json={"start": iso(0)},
        headers=loaded.keys.auth("admin"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["entities"] == 5
    body = await get(
        loaded,
        "/api/v1/statistics",
        entity_id="sensor.power",
        start=iso(0),
        end=iso(3600),
        period="1h",
    )
    assert body["entities"]["sensor.power"][0]["count"] == 2
