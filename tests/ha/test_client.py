"""The Home Assistant client and the whole pipeline against the simulated Home Assistant:
reconnects, a rejected token, malformed input, heartbeats, registry enrichment."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from homeiq.errors import AuthenticationFailed
from homeiq.ha.client import HAClient, websocket_url
from homeiq.ha.simulator import Simulator, malformed_frames
from homeiq.metadata.store import MetadataStore
from homeiq.observability.metrics import Metrics
from homeiq.pipeline.normalize import format_time_us, parse_time_us
from homeiq.pipeline.queue import EventQueue
from homeiq.runtime import Runtime
from homeiq.settings import Settings
from homeiq.sinks.sqlite import SQLiteEventStore
from tests.support.wait import async_wait_until


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(seed=7, rate=300)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


def _runtime(tmp_path: Path, sim: Simulator, **overrides: Any) -> Runtime:
    options: dict[str, Any] = {
        "batch_max_age_s": 0.05,
        "ha_reconnect_min_s": 0.05,
        "ha_reconnect_max_s": 0.2,
    }
    settings = Settings(data_dir=tmp_path, **{**options, **overrides})
    runtime = Runtime(settings)
    runtime.connect_to(sim.url, sim.token)
    return runtime


def _stored(tmp_path: Path) -> list[Any]:
    store = SQLiteEventStore.in_dir(tmp_path, readonly=True)
    try:
        return store.all_records()
    finally:
        store.close()


def test_websocket_url_forms() -> None:
    assert websocket_url("http://ha:8123") == "ws://ha:8123/api/websocket"
    assert websocket_url("https://ha.example/") == "wss://ha.example/api/websocket"
    assert websocket_url("ws://ha:8123/api/websocket") == "ws://ha:8123/api/websocket"


async def test_events_are_stored_once_and_enriched_from_the_registry(
    sim: Simulator, tmp_path: Path
) -> None:
    runtime = _runtime(tmp_path, sim)
    await runtime.start()
    try:
        await async_wait_until(lambda: runtime.stats().stored >= 300)
    finally:
        await runtime.stop()
    records = _stored(tmp_path)
    emitted = {(e.entity_id, parse_time_us(e.last_updated, "t")): e for e in sim.emitted}
    keys = [(r.entity_id, r.time) for r in records]
    assert len(keys) == len(set(keys)) >= 300
    assert set(keys) <= set(emitted)
    home = sim.home
    devices = {d.id: d for d in home.devices}
    areas = {a.area_id: a for a in home.areas}
    for record in records:
        event = emitted[(record.entity_id, record.time)]
        assert record.context_id == event.context_id
        assert record.context_parent_id == event.parent_id
        assert record.context_user_id == event.user_id
        entity = next(e for e in home.entities if e.entity_id == record.entity_id)
        area_id = entity.area_id or (
            devices[entity.device_id].area_id if entity.device_id else None
        )
        assert record.device_id == entity.device_id
        assert record.area_id == area_id
        assert record.floor_id == (areas[area_id].floor_id if area_id else None)
    assert any(r.context_parent_id for r in records), "automation chains carry parent ids"


async def test_reconnects_after_dropped_connections(sim: Simulator, tmp_path: Path) -> None:
    runtime = _runtime(tmp_path, sim)
    await runtime.start()
    try:
        for _ in range(3):
            await async_wait_until(lambda: runtime.stats().ha_connected)
            floor = runtime.stats().stored + 20
            await async_wait_until(lambda: runtime.stats().stored > floor)  # noqa: B023
            assert sim.drop_connections() == 1
            await async_wait_until(lambda: not runtime.stats().ha_connected, timeout=5)
        await async_wait_until(lambda: runtime.stats().ha_connected)
        before = runtime.stats().stored
        await async_wait_until(lambda: runtime.stats().stored > before + 20)
    finally:
        await runtime.stop()
    assert sim.stats.connections_total >= 4
    assert runtime.metrics.value("homeiq_ha_connects_total") >= 4
    assert (
        runtime.metrics.value("homeiq_ha_disconnects_total", {"reason": "SourceUnavailable"}) >= 3
    )
    keys = [(r.entity_id, r.time) for r in _stored(tmp_path)]
    assert len(keys) == len(set(keys))
    assert set(keys) <= {(e.entity_id, parse_time_us(e.last_updated, "t")) for e in sim.emitted}


async def test_a_rejected_token_stops_without_retrying(sim: Simulator) -> None:
    metrics = Metrics()
    client = HAClient(
        sim.url, "wrong-token", EventQueue(100, metrics), metrics, reconnect_min_s=0.01
    )
    with pytest.raises(AuthenticationFailed, match="rejected the access token"):
        await asyncio.wait_for(client.run(), 5)
    assert sim.stats.auth_invalid == 1, "a rejected token must never be retried"


async def test_malformed_messages_are_dead_lettered_and_valid_ones_stored(
    sim: Simulator, tmp_path: Path
) -> None:
    runtime = _runtime(tmp_path, sim)
    await runtime.start()
    try:
        await async_wait_until(lambda: runtime.stats().stored >= 20)
        client = runtime.client
        assert client is not None and client._state_subscription is not None
        frames = malformed_frames(client._state_subscription)
        assert sim.inject_raw(frames) == 1
        stored_before = runtime.stats().stored
        await async_wait_until(lambda: runtime.stats().rejected >= len(frames) - 2)
        await async_wait_until(lambda: runtime.stats().stored > stored_before + 20)
        assert runtime.stats().ha_connected
    finally:
        await runtime.stop()
    meta = MetadataStore.in_dir(tmp_path, readonly=True)
    try:
        reasons = meta.dead_letter_counts()
        letters = meta.dead_letters(limit=1000)
    finally:
        meta.close()
    for reason in (
        "invalid_json",
        "not_an_object",
        "bad_entity_id",
        "timestamp_in_future",
        "bad_timestamp",
        "bad_attributes",
        "bad_state",
        "attributes_too_large",
        "unexpected_result",
    ):
        assert reasons.get(reason, 0) >= 1, (reason, reasons)
    assert all(letter.payload for letter in letters)
    oversized = [r for r in _stored(tmp_path) if r.entity_id == "sensor.oversized"]
    assert len(oversized) == 1 and oversized[0].attributes == {}
    assert oversized[0].dropped_attributes_bytes > 300_000


async def test_a_moved_entity_is_enriched_with_its_new_area(sim: Simulator, tmp_path: Path) -> None:
    runtime = _runtime(tmp_path, sim)
    await runtime.start()
    try:
        await async_wait_until(lambda: runtime.sync.syncs >= 1)
        entity = next(
            e for e in sim.home.entities if e.device_id and e.entity_id.startswith("sensor.")
        )
        target = next(a.area_id for a in sim.home.areas if a.area_id != entity.area_id)
        syncs = runtime.sync.syncs
        sim.move_entity(entity.entity_id, target)
        await async_wait_until(lambda: runtime.sync.syncs > syncs)
        assert runtime.registry.placement_of(entity.entity_id).area_id == target
        sim.set_state(entity.entity_id, "12.5")
        await async_wait_until(
            lambda: any(
                r.entity_id == entity.entity_id and r.state == "12.5" for r in _stored(tmp_path)
            ),
        )
    finally:
        await runtime.stop()
    record = next(
        r for r in _stored(tmp_path) if r.entity_id == entity.entity_id and r.state == "12.5"
    )
    assert record.area_id == target
    assert record.device_id == entity.device_id
    meta = MetadataStore.in_dir(tmp_path, readonly=True)
    try:
        snapshot = meta.load_registry()
    finally:
        meta.close()
    assert any(e.entity_id == entity.entity_id and e.area_id == target for e in snapshot.entities)


async def test_a_silent_server_is_detected_by_the_heartbeat() -> None:
    """A server that stops answering (no pong) is dropped and reconnected."""
    connections = 0

    async def handler(request: web.Request) -> web.WebSocketResponse:
        nonlocal connections
        connections += 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "auth_required", "ha_version": "2024.3.3"})
        await ws.receive()
        await ws.send_json({"type": "auth_ok", "ha_version": "2024.3.3"})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            command = msg.json()
            if command["type"] == "ping":
                continue  # the server hangs: no pong
            result: Any = [] if command["type"].endswith("/list") else None
            await ws.send_json(
                {"id": command["id"], "type": "result", "success": True, "result": result}
            )
        return ws

    app = web.Application()
    app.router.add_get("/api/websocket", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    metrics = Metrics()
    client = HAClient(
        f"http://127.0.0.1:{port}",
        "token",
        EventQueue(100, metrics),
        metrics,
        heartbeat_s=0.1,
        heartbeat_timeout_s=0.2,
        reconnect_min_s=0.05,
        reconnect_max_s=0.1,
    )
    task = asyncio.create_task(client.run())
    try:
        await async_wait_until(lambda: connections >= 2, timeout=5)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await runner.cleanup()
    assert metrics.value("homeiq_ha_disconnects_total", {"reason": "SourceUnavailable"}) >= 1


async def test_shutdown_writes_everything_received(sim: Simulator, tmp_path: Path) -> None:
    runtime = _runtime(tmp_path, sim, batch_max_events=100_000, batch_max_age_s=30)
    await runtime.start()
    await async_wait_until(lambda: sim.stats.delivered >= 50)
    await asyncio.sleep(0.2)  # let them arrive: they sit in the writer's unfinished batch
    await runtime.stop()  # the batch is far from full and young: stop must flush it
    stats = runtime.stats()
    assert stats.received >= 50
    assert len(_stored(tmp_path)) == stats.stored == stats.received - stats.rejected
    assert format_time_us(max(r.time for r in _stored(tmp_path)))
