"""Fault tests: HomeIQ killed mid-stream (``kill -9``), and the Home Assistant connection
dropped again and again, Home Assistant itself restarted. After each, the exact set of
stored (entity_id, time) pairs equals what Home Assistant (the simulator) emitted, each
stored once: what HomeIQ missed live came back through backfill from HA's history."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from yarl import URL

from homeiq.ha.simulator import Simulator
from homeiq.runtime import Runtime
from homeiq.settings import Settings
from homeiq.sinks.influxdb import InfluxDBReader
from homeiq.sinks.sqlite import SQLiteEventStore
from tests.integration.baseline import assert_stored_once, state_keys
from tests.support.influxdb import InfluxDBServer, influx_settings
from tests.support.process import HomeIQProcess
from tests.support.wait import async_wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

Keys = set[tuple[str, int]]


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(seed=21, rate=300)
    simulator.pause()  # streams once HomeIQ has subscribed
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


def emitted(sim: Simulator) -> Keys:
    return {(e.entity_id, e.time_us) for e in sim.emitted}


class SQLiteView:
    """Reads a SQLite data directory the way an outside tool would (read-only)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    async def rows(self) -> tuple[Keys, int, dict[str, int]]:
        if not (self.data_dir / "events.db").exists():
            return set(), 0, {}
        store = SQLiteEventStore.in_dir(self.data_dir, readonly=True)
        try:
            summary = store.summary()
            return store.keys(), summary.total, summary.by_source
        finally:
            store.close()


class InfluxView:
    """Reads the InfluxDB database through HomeIQ's reader, counting raw points too."""

    def __init__(self, server: InfluxDBServer, settings: Settings) -> None:
        self.server = server
        self.settings = settings

    async def rows(self) -> tuple[Keys, int, dict[str, int]]:
        reader = InfluxDBReader.from_settings(self.settings)
        try:
            keys = await reader.keys()
            summary = await reader.summary()
        finally:
            await reader.close()
        return keys, summary.total, summary.by_source


async def wait_stored(
    rows: Callable[[], Awaitable[tuple[Keys, int, dict[str, int]]]], expected: Keys
) -> None:
    keys: Keys = set()

    async def complete() -> bool:
        nonlocal keys
        keys, _, _ = await rows()
        return expected <= keys

    await async_wait_until(
        complete,
        timeout=60,
        interval=0.5,
        message=lambda: f"{len(expected - keys)} events never stored",
    )


@pytest.mark.parametrize("store", ["sqlite", pytest.param("influxdb", marks=pytest.mark.influxdb)])
async def test_kill_9_mid_stream_then_restart_stores_every_event_once(
    tmp_path: Path, sim: Simulator, store: str, request: pytest.FixtureRequest
) -> None:
    data_dir = tmp_path / "data"
    env: dict[str, str] = {}
    view: SQLiteView | InfluxView = SQLiteView(data_dir)
    if store == "influxdb":
        server: InfluxDBServer = request.getfixturevalue("influxdb")
        database: str = request.getfixturevalue("influxdb_database")
        env = {
            "HOMEIQ_STORE": "influxdb",
            "HOMEIQ_INFLUXDB_URL": server.url,
            "HOMEIQ_INFLUXDB_DATABASE": database,
        }
        view = InfluxView(server, influx_settings(server.url, database))
    initial = state_keys(sim)
    homeiq = HomeIQProcess(sim.url, sim.token, data_dir, **env)
    try:
        await async_wait_until(lambda: sim.state_subscribers == 1, timeout=30)
        sim.resume()
        await async_wait_until(lambda: sim.emitted_count >= 600, timeout=30)
        keys, _, _ = await view.rows()
        homeiq.kill()  # kill -9: the queue and the batch in flight die with it
        killed_at = sim.emitted_count
        # HA goes on recording.
        await async_wait_until(lambda: sim.emitted_count >= killed_at + 300, timeout=30)
        homeiq.start()
        await async_wait_until(lambda: sim.state_subscribers == 1, timeout=30)
        await async_wait_until(lambda: sim.emitted_count >= killed_at + 900, timeout=30)
        sim.pause()
        expected = emitted(sim)
        await wait_stored(view.rows, expected)
    finally:
        code = homeiq.stop()
    assert code == 0, homeiq.log()
    keys, total, by_source = await view.rows()
    assert_stored_once(keys, total, expected, initial)
    assert by_source.get("backfill", 0) >= 300  # the gap came back from HA's history
    assert "Traceback" not in homeiq.log()


async def test_dropped_connections_and_a_restarted_home_assistant_lose_nothing(
    tmp_path: Path, sim: Simulator
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        sqlite_writer="thread",
        batch_max_age_s=0.1,
        ha_reconnect_min_s=0.2,
        ha_reconnect_max_s=0.5,
    )
    runtime = Runtime(settings)
    runtime.connect_to(sim.url, sim.token)
    initial = state_keys(sim)
    await runtime.start()
    try:
        await async_wait_until(lambda: sim.state_subscribers == 1, timeout=30)
        sim.resume()
        for _ in range(4):  # dropped without a close frame, mid-stream
            await async_wait_until(lambda: sim.state_subscribers == 1, timeout=30)
            target = sim.emitted_count + 150
            await async_wait_until(lambda t=target: sim.emitted_count >= t, timeout=30)  # type: ignore[misc]
            assert sim.drop_connections() == 1
        # Home Assistant restarts: down (nothing listens), then up on the same port with
        # its recorder's history intact.
        await async_wait_until(lambda: sim.state_subscribers == 1, timeout=30)
        port = URL(sim.url).port
        await sim.stop()
        await asyncio.sleep(1.0)
        sim.port = port if port is not None else 0
        await sim.start()
        await async_wait_until(lambda: sim.state_subscribers == 1, timeout=15)
        mark = sim.emitted_count
        await async_wait_until(lambda: sim.emitted_count >= mark + 300, timeout=30)
        sim.pause()
        expected = emitted(sim)
        view = SQLiteView(tmp_path)
        await wait_stored(view.rows, expected)
    finally:
        await runtime.stop()
    keys, total, _ = await SQLiteView(tmp_path).rows()
    assert_stored_once(keys, total, expected, initial)
    assert (
        runtime.metrics.value("homeiq_ha_disconnects_total", {"reason": "SourceUnavailable"}) >= 4
    )
    assert runtime.metrics.value("homeiq_backfill_events_total", {"outcome": "stored"}) > 0
