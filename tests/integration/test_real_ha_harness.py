"""The real-Home-Assistant harness works: auth, demo inventory, events, history, restart."""

from __future__ import annotations

import asyncio
import ipaddress
import time
import uuid
from datetime import UTC, datetime, timedelta

import psutil
import pytest

from tests.support.homeassistant import HomeAssistantError, HomeAssistantInstance
from tests.support.wait import async_wait_until

pytestmark = pytest.mark.homeassistant

COUNTER = "counter.homeiq_test"


async def test_websocket_auth_with_long_lived_token(real_ha: HomeAssistantInstance) -> None:
    async with real_ha.websocket() as ws:
        assert ws.ha_version == "2024.3.3"
        assert await ws.command({"type": "ping"}) is None


async def test_websocket_rejects_a_bad_token(real_ha: HomeAssistantInstance) -> None:
    # One attempt only: HA can ban an IP after repeated failures (threshold is off here).
    with pytest.raises(HomeAssistantError, match="auth_invalid"):
        async with real_ha.websocket(token="not-a-token"):
            pass


async def test_get_states_returns_demo_entities(real_ha: HomeAssistantInstance) -> None:
    states = await real_ha.ws_command({"type": "get_states"})
    entity_ids = {state["entity_id"] for state in states}
    assert len(states) >= 100
    assert {"sun.sun", "light.bed_light", COUNTER, "input_boolean.homeiq_test"} <= entity_ids
    assert "input_number.homeiq_test" in entity_ids
    assert len({entity_id.split(".")[0] for entity_id in entity_ids}) >= 30


async def test_registries_have_devices_and_linked_entities(
    real_ha: HomeAssistantInstance,
) -> None:
    async with real_ha.websocket() as ws:
        entities = await ws.command({"type": "config/entity_registry/list"})
        devices = await ws.command({"type": "config/device_registry/list"})
        areas = await ws.command({"type": "config/area_registry/list"})
        floors = await ws.command({"type": "config/floor_registry/list"})
    device_ids = {device["id"] for device in devices}
    linked = [entity for entity in entities if entity.get("device_id")]
    assert len(devices) >= 40
    assert len(linked) >= 40
    assert {entity["device_id"] for entity in linked} <= device_ids
    assert {"living_room", "kitchen", "bedroom"} <= {area["area_id"] for area in areas}
    assert floors == []


async def test_set_state_fires_state_changed_with_context(real_ha: HomeAssistantInstance) -> None:
    entity_id = "sensor.homeiq_harness_probe"
    value = uuid.uuid4().hex[:8]
    async with real_ha.websocket() as ws:
        await ws.subscribe_events("state_changed")
        posted = await real_ha.set_state(entity_id, value, {"unit_of_measurement": "W"})
        deadline = time.monotonic() + 10
        while True:
            message = await ws.next_event(timeout_s=max(0.1, deadline - time.monotonic()))
            event = message["event"]
            if event["data"]["entity_id"] == entity_id:
                break
    assert event["event_type"] == "state_changed"
    new_state = event["data"]["new_state"]
    assert new_state["state"] == value
    assert new_state["attributes"]["unit_of_measurement"] == "W"
    assert len(event["context"]["id"]) == 26  # a ULID
    assert event["context"]["id"] == posted["context"]["id"]


async def test_counter_burst_rate(
    real_ha: HomeAssistantInstance, capsys: pytest.CaptureFixture[str]
) -> None:
    """N counter.increment calls sent without awaiting each result give N state_changed."""
    n_calls = 2000
    before = int((await real_ha.get_state(COUNTER))["state"])
    call = {
        "type": "call_service",
        "domain": "counter",
        "service": "increment",
        "target": {"entity_id": COUNTER},
    }
    async with real_ha.websocket() as ws:
        await ws.subscribe_events("state_changed")

        async def count_events() -> float:
            seen = 0
            while seen < n_calls:
                message = await ws.next_event(timeout_s=30)
                if message["event"]["data"]["entity_id"] == COUNTER:
                    seen += 1
            return time.monotonic()

        async def send_calls() -> list[int]:
            return [await ws.send(call) for _ in range(n_calls)]

        began = time.monotonic()
        # Read while sending: HA drops a client that leaves 4096 messages pending.
        last_event_at, ids = await asyncio.gather(count_events(), send_calls())
        for msg_id in ids:
            await ws.result(msg_id)
    rate = n_calls / (last_event_at - began)
    after = int((await real_ha.get_state(COUNTER))["state"])
    assert after - before == n_calls
    with capsys.disabled():
        print(f"\n[real HA] {n_calls} counter.increment -> state_changed at {rate:,.0f} events/s")


async def test_history_returns_recorded_rows(real_ha: HomeAssistantInstance) -> None:
    entity_id = "sensor.homeiq_harness_history"
    start = datetime.now(UTC) - timedelta(seconds=1)
    for value in ("1", "2", "3"):
        await real_ha.set_state(entity_id, value)
    rows: list[dict[str, object]] = []

    async def recorded() -> bool:
        nonlocal rows
        result = await real_ha.history([entity_id], start)
        rows = result[0] if result else []
        return len(rows) >= 3

    # The recorder commits every second.
    await async_wait_until(
        recorded, timeout=15, interval=0.5, message=lambda: f"HA recorded only {rows}"
    )
    assert [row["state"] for row in rows][-3:] == ["1", "2", "3"]
    minimal = await real_ha.history(
        [entity_id], start, datetime.now(UTC), minimal_response=True, no_attributes=True
    )
    assert minimal[0][-1]["state"] == "3"


def test_listens_on_loopback_only(real_ha: HomeAssistantInstance) -> None:
    assert real_ha.pid is not None
    connections = psutil.Process(real_ha.pid).net_connections(kind="inet")
    listening = [conn for conn in connections if conn.status == psutil.CONN_LISTEN]
    assert listening, "HA listens nowhere?"
    for conn in connections:
        assert ipaddress.ip_address(conn.laddr.ip).is_loopback, conn
        if conn.raddr:
            assert ipaddress.ip_address(conn.raddr.ip).is_loopback, conn
    assert {conn.laddr.port for conn in listening} == {real_ha.port}


async def test_restart_keeps_token_and_state(real_ha: HomeAssistantInstance) -> None:
    count = int((await real_ha.get_state(COUNTER))["state"])
    token, port = real_ha.token, real_ha.port
    await real_ha.async_restart()
    assert (real_ha.token, real_ha.port) == (token, port)
    assert int((await real_ha.get_state(COUNTER))["state"]) == count  # restored
    states = await real_ha.ws_command({"type": "get_states"})
    assert len(states) >= 100
