"""Fault tests: the event store goes away under a steady stream, and comes back.

Against a real InfluxDB 1.6.7 (its own server per test, so stopping it disturbs nobody)
and the simulated Home Assistant. Each test asserts the exact set of stored
(entity_id, time) pairs against what the simulator emitted, and that each is stored once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from homeiq.ha.simulator import Simulator
from homeiq.runtime import Runtime
from homeiq.settings import Settings
from homeiq.sinks.influxdb import InfluxDBReader
from tests.integration.baseline import assert_stored_once, state_keys
from tests.support.influxdb import InfluxDBServer, influxd_binary
from tests.support.wait import async_wait_until

pytestmark = [pytest.mark.influxdb, pytest.mark.slow, pytest.mark.timeout(240)]

DATABASE = "homeiq_faults"
MEASUREMENT = "home_assistant_events"


@pytest.fixture
async def influx(tmp_path: Path) -> AsyncIterator[InfluxDBServer]:
    """An InfluxDB of this test's own, free to be stopped and started."""
    if influxd_binary() is None:
        from tests.support.influxdb import _missing

        _missing("influxd (InfluxDB 1.6.7) is not installed")
    server = InfluxDBServer(tmp_path / "influxdb")
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.close)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(seed=11, rate=250)
    simulator.pause()  # starts streaming once HomeIQ is subscribed
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


def settings_for(tmp_path: Path, server: InfluxDBServer, **overrides: Any) -> Settings:
    options: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "store": "influxdb",
        "influxdb_url": server.url,
        "influxdb_database": DATABASE,
        "influxdb_timeout_s": 2.0,
        "batch_max_age_s": 0.2,
        "sink_breaker_reset_s": 0.5,
        "ha_reconnect_min_s": 0.05,
        "ha_reconnect_max_s": 0.5,
    }
    return Settings(**{**options, **overrides})


def emitted_keys(sim: Simulator) -> set[tuple[str, int]]:
    return {(e.entity_id, e.time_us) for e in sim.emitted}


def point_count(server: InfluxDBServer) -> int:
    rows = server.rows(f'SELECT count("source") FROM "{MEASUREMENT}"', DATABASE)
    return int(rows[0]["count"]) if rows else 0


async def stored_keys(settings: Settings) -> set[tuple[str, int]]:
    reader = InfluxDBReader.from_settings(settings)
    try:
        return await reader.keys()
    finally:
        await reader.close()


async def start_streaming(runtime: Runtime, sim: Simulator) -> None:
    await runtime.start()
    assert runtime.client is not None
    await async_wait_until(runtime.client.connected.is_set, timeout=10)
    sim.resume()


async def finish(runtime: Runtime, sim: Simulator, settings: Settings) -> set[tuple[str, int]]:
    """Stop the stream, wait until everything emitted is stored, stop HomeIQ."""
    sim.pause()
    expected = emitted_keys(sim)
    last: set[tuple[str, int]] = set()

    async def complete() -> bool:
        nonlocal last
        last = await stored_keys(settings)
        return expected <= last

    await async_wait_until(
        complete,
        timeout=60,
        interval=0.5,
        message=lambda: f"{len(expected - last)} events never stored",
    )
    await runtime.stop()
    return expected


async def test_influxdb_down_for_30_seconds_loses_nothing(
    tmp_path: Path, influx: InfluxDBServer, sim: Simulator
) -> None:
    settings = settings_for(tmp_path, influx)
    runtime = Runtime(settings)
    runtime.connect_to(sim.url, sim.token)
    initial = state_keys(sim)
    await start_streaming(runtime, sim)
    await async_wait_until(lambda: runtime.stats().stored >= 500, timeout=60)

    await asyncio.to_thread(influx.stop)
    down_at = time.monotonic()
    await async_wait_until(lambda: runtime.spool.events > 0, timeout=60)
    await async_wait_until(
        lambda: runtime.metrics.value("homeiq_sink_breaker_state", {"sink": "influxdb"}) == 1,
        timeout=60,
    )
    # Outage of at least 30 s (the figure: HA's own InfluxDB integration gives up
    # on a batch after about that long).
    await asyncio.sleep(max(0.0, 30.0 - (time.monotonic() - down_at)))
    spooled = runtime.spool.events
    assert spooled >= 30 * 200  # the stream went on; the spool took it
    assert runtime.stats().rejected == 0

    await asyncio.to_thread(influx.start)
    await async_wait_until(lambda: runtime.spool.empty, timeout=60)
    expected = await finish(runtime, sim, settings)

    assert_stored_once(await stored_keys(settings), point_count(influx), expected, initial)
    assert runtime.metrics.value("homeiq_sink_breaker_state", {"sink": "influxdb"}) == 0
    assert runtime.metrics.value("homeiq_spool_events") == 0


async def test_full_spool_applies_its_policy_alerts_and_backfill_refills_the_gap(
    tmp_path: Path, influx: InfluxDBServer, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    await asyncio.to_thread(influx.stop)  # the store is down from the start
    settings = settings_for(tmp_path, influx, spool_max_bytes=40_000)
    runtime = Runtime(settings)
    runtime.connect_to(sim.url, sim.token)
    caplog.set_level(logging.ERROR, logger="homeiq")
    initial = state_keys(sim)
    await start_streaming(runtime, sim)

    dropped = "homeiq_spool_dropped_events_total"
    await async_wait_until(
        lambda: runtime.metrics.value(dropped, {"policy": "drop_newest"}) >= 500, timeout=60
    )
    # The policy applied: the spool stays within its bound, the drop is counted, logged
    # as an error and recorded as a data-quality event and a gap to backfill.
    assert runtime.spool.bytes <= 40_000
    assert any(
        r.levelno == logging.ERROR and "drop_newest" in r.getMessage() for r in caplog.records
    )
    quality = runtime.metadata.quality_events(kind="spool_dropped")
    assert quality and all(q.events and q.start_us is not None for q in quality)
    assert runtime.metadata.gaps()
    # ... and the process keeps running: still connected, still receiving.
    received = runtime.stats().received
    await async_wait_until(lambda: runtime.stats().received > received + 250, timeout=60)
    assert runtime.client is not None and runtime.client.connected.is_set()
    assert runtime._writer_task is not None and not runtime._writer_task.done()

    # The store comes back: the spool drains, and backfill fetches the dropped spans
    # from Home Assistant's history, so in the end nothing is missing.
    await asyncio.to_thread(influx.start)
    expected = await finish(runtime, sim, settings)
    assert_stored_once(await stored_keys(settings), point_count(influx), expected, initial)
    assert runtime.metrics.value("homeiq_backfill_events_total", {"outcome": "stored"}) > 0
