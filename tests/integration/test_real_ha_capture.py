"""`homeiq run` against a real Home Assistant 2024.3.3: every state change it makes is
stored exactly once, with its context, and enriched from HA's own registry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from homeiq.metadata.store import MetadataStore
from homeiq.pipeline.normalize import parse_time_us
from homeiq.sinks.sqlite import SQLiteEventStore
from tests.support.homeassistant import HAWebSocket, HomeAssistantInstance
from tests.support.process import HomeIQProcess
from tests.support.wait import async_wait_until

pytestmark = pytest.mark.homeassistant

REST_CHANGES = 120
COUNTER_CHANGES = 300
OUR_SENSORS = [f"sensor.homeiq_capture_{i}" for i in range(4)]


@pytest.fixture
def homeiq(real_ha: HomeAssistantInstance, tmp_path: Path) -> Iterator[HomeIQProcess]:
    process = HomeIQProcess(real_ha.url, real_ha.token, tmp_path / "data")
    try:
        yield process
    finally:
        process.stop()


def _stored(data_dir: Path, entity_ids: set[str]) -> list[Any]:
    store = SQLiteEventStore.in_dir(data_dir, readonly=True)
    try:
        return [r for r in store.all_records() if r.entity_id in entity_ids]
    finally:
        store.close()


async def _collect(
    ws: HAWebSocket, entity_ids: set[str], placed: list[str]
) -> list[dict[str, Any]]:
    """Every state change HA sent for our entities (the ground truth), until all the
    changes the test made have arrived (registry moves can add a few of HA's own)."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60

    def done() -> bool:
        states = [(e["data"]["entity_id"], e["data"]["new_state"]["state"]) for e in seen]
        sensors = sum(1 for entity_id, _ in states if entity_id in OUR_SENSORS)
        counter = sum(1 for entity_id, _ in states if entity_id == "counter.homeiq_test")
        marked = sum(1 for entity_id, state in states if state.startswith("homeiq-"))
        return sensors == REST_CHANGES and counter == COUNTER_CHANGES and marked == len(placed)

    while not done():
        assert time.monotonic() < deadline, f"HA sent only {len(seen)} events"
        event = await ws.next_event(timeout_s=30)
        data = event["event"]["data"]
        if event["event"]["event_type"] == "state_changed" and data["entity_id"] in entity_ids:
            seen.append(event["event"])
    return seen


async def _pick_devices(ha: HomeAssistantInstance) -> list[dict[str, Any]]:
    """Three registered entities on three different devices."""
    entities = await ha.ws_command({"type": "config/entity_registry/list"})
    picked: list[dict[str, Any]] = []
    devices: set[str] = set()
    for entry in sorted(entities, key=lambda e: e["entity_id"]):
        if (
            entry.get("device_id")
            and entry["device_id"] not in devices
            and not entry.get("disabled_by")
            and entry["entity_id"].split(".")[0] in ("light", "switch", "sensor")
        ):
            picked.append(entry)
            devices.add(entry["device_id"])
        if len(picked) == 3:
            return picked
    pytest.fail("the demo integration registered fewer than three devices with entities")


async def _wait_stored(data_dir: Path, entity_ids: set[str], keys: set[Any]) -> list[Any]:
    stored: list[Any] = []

    def complete() -> bool:
        nonlocal stored
        stored = _stored(data_dir, entity_ids) if (data_dir / "events.db").exists() else []
        return keys <= {(r.entity_id, r.time) for r in stored}

    await async_wait_until(
        complete,
        timeout=30,
        interval=0.2,
        message=lambda: (
            f"{len(keys - {(r.entity_id, r.time) for r in stored})} changes never stored"
        ),
    )
    return stored


async def _move(ha: HomeAssistantInstance, kind: str, item_id: str, area_id: str | None) -> None:
    """Put a device or an entity in an area (None: no area) through HA's registry API."""
    await ha.ws_command(
        {"type": f"config/{kind}_registry/update", f"{kind}_id": item_id, "area_id": area_id}
    )


async def _wait_registry(data_dir: Path, entity_id: str, area_id: str) -> None:
    def moved() -> bool:
        meta = MetadataStore.in_dir(data_dir, readonly=True)
        try:
            snapshot = meta.load_registry()
        finally:
            meta.close()
        return any(e.entity_id == entity_id and e.area_id == area_id for e in snapshot.entities)

    await async_wait_until(
        moved,
        timeout=15,
        interval=0.2,
        message=f"homeiq's registry never saw {entity_id} move to {area_id}",
    )


async def test_homeiq_run_stores_every_change_once_with_context_and_placement(
    real_ha: HomeAssistantInstance, homeiq: HomeIQProcess
) -> None:
    ha = real_ha
    first, second, third = await _pick_devices(ha)
    area_a = (await ha.ws_command({"type": "config/area_registry/create", "name": "HomeIQ A"}))[
        "area_id"
    ]
    area_b = (await ha.ws_command({"type": "config/area_registry/create", "name": "HomeIQ B"}))[
        "area_id"
    ]
    try:
        # Before HomeIQ starts: first's device lives in A; second's entity overrides to B.
        await _move(ha, "device", first["device_id"], area_a)
        await _move(ha, "device", second["device_id"], area_a)
        await _move(ha, "entity", second["entity_id"], area_b)
        await homeiq.wait_for_log("connected to Home Assistant")
        placed = [first["entity_id"], second["entity_id"], third["entity_id"]]
        ours = set(OUR_SENSORS) | {"counter.homeiq_test"} | set(placed)
        async with ha.websocket() as ws:
            await ws.subscribe_events("state_changed")
            subscribed_at = time.time_ns() // 1000
            collector = asyncio.create_task(_collect(ws, ours, placed))
            # While HomeIQ runs: third's entity moves to B; the registry event must reach it.
            await _move(ha, "entity", third["entity_id"], area_b)
            await _wait_registry(homeiq.data_dir, third["entity_id"], area_b)
            async with ha.websocket() as producer:
                for _ in range(COUNTER_CHANGES):  # fire without awaiting each result
                    await producer.send(
                        {
                            "type": "call_service",
                            "domain": "counter",
                            "service": "increment",
                            "service_data": {"entity_id": "counter.homeiq_test"},
                        }
                    )
                for i in range(REST_CHANGES):
                    await ha.set_state(
                        OUR_SENSORS[i % 4], str(i * 1.5), {"unit_of_measurement": "W"}
                    )
                for n, entity_id in enumerate(placed):
                    await ha.set_state(entity_id, f"homeiq-{n}", {"friendly_name": entity_id})
                truth = await asyncio.wait_for(collector, 90)
    finally:
        for entry in (first, second, third):
            await _move(ha, "device", entry["device_id"], None)
            await _move(ha, "entity", entry["entity_id"], None)
        for area in (area_a, area_b):
            await ha.ws_command({"type": "config/area_registry/delete", "area_id": area})

    expected = {
        (e["data"]["entity_id"], parse_time_us(e["data"]["new_state"]["last_updated"], "t")): e
        for e in truth
    }
    assert len(expected) == len(truth) >= REST_CHANGES + COUNTER_CHANGES + len(placed)
    stored = await _wait_stored(homeiq.data_dir, ours, set(expected))
    assert homeiq.stop() == 0, homeiq.log()

    keys = [(r.entity_id, r.time) for r in stored]
    assert len(keys) == len(set(keys)), "an event was stored twice"
    assert set(expected) <= set(keys), "HA sent events that were not stored"
    # HomeIQ listened before and after the test's own subscription (HA re-writes states
    # when the registry changes): anything more it has lies outside the test's window.
    window_end = max(t for _, t in expected)
    extras = set(keys) - set(expected)
    assert not [k for k in extras if subscribed_at <= k[1] <= window_end], extras
    stored = [r for r in stored if (r.entity_id, r.time) in expected]

    for record in stored:
        event = expected[(record.entity_id, record.time)]
        context = event["data"]["new_state"]["context"]
        assert record.context_id == context["id"]
        assert record.context_parent_id == context["parent_id"]
        assert record.context_user_id == context["user_id"]
        assert record.state == event["data"]["new_state"]["state"]
    counter = [r for r in stored if r.entity_id == "counter.homeiq_test"]
    assert len(counter) == COUNTER_CHANGES
    assert all(r.context_user_id for r in counter), "service calls carry the token's user"
    assert all(r.value is not None for r in counter)

    by_entity = {r.entity_id: r for r in stored}
    assert by_entity[first["entity_id"]].device_id == first["device_id"]
    assert by_entity[first["entity_id"]].area_id == area_a  # from its device
    assert by_entity[second["entity_id"]].device_id == second["device_id"]
    assert by_entity[second["entity_id"]].area_id == area_b  # entity overrides device
    assert by_entity[third["entity_id"]].area_id == area_b  # moved while running
    assert all(r.device_id is None for r in stored if r.entity_id in OUR_SENSORS)
    assert "stopped:" in homeiq.log()
    assert ha.token not in homeiq.log(), "the access token must never reach the logs"
