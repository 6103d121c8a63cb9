"""GET /api/v1/quality and /api/v1/quality/{entity_id} over a real Runtime: events go
in through the delivery path the writer uses, so the tracker follows what was stored."""

from __future__ import annotations

from homeiq.model import EventRecord, now_us
from tests.api.conftest import Api, assert_error


def record(entity_id: str, seconds_ago: float, state: str, api: Api) -> EventRecord:
    placement = api.runtime.registry.placement_of(entity_id)
    return EventRecord(
        entity_id,
        now_us() - int(seconds_ago * 1_000_000),
        state,
        context_id="01HXCONTEXT",
        device_id=placement.device_id,
        area_id=placement.area_id,
    )


async def store(api: Api) -> None:
    # All within the last minute: none is late.
    records = [record("sensor.fridge_temperature", 40 - i, "4.5", api) for i in range(20)]
    records += [
        record("light.bedside", 40 - i, "unavailable" if i % 2 else "on", api) for i in range(20)
    ]
    # Older than the newest already stored: out of order.
    records += [record("sensor.fridge_temperature", 45, "4.4", api)]
    records += [record("switch.garage_door", 20 - i, "off", api) for i in range(10)]
    records += [record("sun.sun", 10, "above_horizon", api)]
    assert await api.runtime.delivery.deliver(records) == []


async def test_the_report_has_overall_domains_and_the_worst_entities(api: Api) -> None:
    await store(api)
    response = await api.client.get("/api/v1/quality", headers=api.keys.auth("read"))
    assert response.status_code == 200, response.text
    body = response.json()
    overall = body["overall"]
    assert overall["domain"] is None
    assert overall["counts"]["events"] == 52
    assert overall["counts"]["out_of_order"] == 1
    assert overall["completeness"] == {"context_id": 1.0, "device_id": 1.0, "area_id": 1.0}
    assert overall["flagged_entities"] == 2
    assert overall["score"] is None  # 52 events: too few to judge the whole home
    domains = {d["domain"]: d["score"] for d in body["domains"]}
    assert list(domains) == ["light", "sensor", "sun", "switch"]
    assert domains["light"] == 100 - 25 * 0.5 and domains["sun"] == 100.0
    worst = [(e["entity_id"], e["flags"]) for e in body["worst"]]
    assert worst == [
        ("light.bedside", ["often_unavailable"]),
        ("sensor.fridge_temperature", ["out_of_order"]),
    ]
    assert body["next_cursor"] is None
    assert body["stale"] == [] and body["open_gaps"] == 0

    api.runtime.quality.min_events = 50
    response = await api.client.get("/api/v1/quality", headers=api.keys.auth("read"))
    assert 0 < response.json()["overall"]["score"] < 100


async def test_the_worst_entities_come_a_page_at_a_time(api: Api) -> None:
    await store(api)
    auth = api.keys.auth("read")
    first = (await api.client.get("/api/v1/quality?limit=1&days=0", headers=auth)).json()
    assert [e["entity_id"] for e in first["worst"]] == ["light.bedside"]
    assert first["history"] == []
    cursor = first["next_cursor"]
    second = await api.client.get(f"/api/v1/quality?limit=1&after={cursor}", headers=auth)
    body = second.json()
    assert [e["entity_id"] for e in body["worst"]] == ["sensor.fridge_temperature"]
    assert body["next_cursor"] is None
    past = await api.client.get("/api/v1/quality?after=zzz", headers=auth)
    assert past.json()["worst"] == []


async def test_one_entity_and_the_unknown_ones(api: Api) -> None:
    await store(api)
    auth = api.keys.auth("read")
    response = await api.client.get("/api/v1/quality/switch.garage_door", headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    # No device in the registry: device_id is not expected, so not incomplete.
    assert body["completeness"] == {"context_id": 1.0, "device_id": None, "area_id": 1.0}
    assert body["flags"] == [] and body["score"] == 100.0
    assert body["counts"]["events"] == 10
    missing = await api.client.get("/api/v1/quality/sensor.never_seen", headers=auth)
    assert_error(missing, 404, "not_found")
    invalid = await api.client.get("/api/v1/quality/Not-An-Entity", headers=auth)
    assert_error(invalid, 422, "validation_error")


async def test_the_history_lists_saved_days_and_a_key_is_required(api: Api) -> None:
    await store(api)
    await api.runtime.quality.flush()
    response = await api.client.get("/api/v1/quality?days=5", headers=api.keys.auth("read"))
    history = response.json()["history"]
    assert len(history) == 1 and history[0]["events"] == 52
    assert_error(await api.client.get("/api/v1/quality"), 401, "unauthorized")
