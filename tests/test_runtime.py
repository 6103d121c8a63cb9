"""The runtime's lifecycle around outages: what is queued when HomeIQ stops while the
store is down is spooled, not lost, and the next start delivers it; a row the store
refuses for good is dead-lettered with the store's own message."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from homeiq.errors import AuthenticationFailed
from homeiq.ha.simulator import Simulator
from homeiq.metadata.store import MetadataStore
from homeiq.model import EventRecord
from homeiq.pipeline.spool import Spool
from homeiq.runtime import Runtime
from homeiq.settings import Settings
from homeiq.sinks.sqlite import SQLiteEventStore
from tests.support.influxdb import T0, InfluxDBServer, event, influx_settings
from tests.support.wait import async_wait_until


def closed_port_url() -> str:
    """A loopback URL nothing listens on: a store that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(seed=9, rate=400)
    simulator.pause()
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


async def test_stopping_while_the_store_is_down_spools_everything_for_the_next_start(
    tmp_path: Path, sim: Simulator
) -> None:
    down = Settings(
        data_dir=tmp_path,
        store="influxdb",
        influxdb_url=closed_port_url(),
        batch_max_age_s=0.1,
        sink_breaker_reset_s=30,
        backfill=False,
    )
    runtime = Runtime(down)
    runtime.connect_to(sim.url, sim.token)
    await runtime.start()
    await async_wait_until(lambda: sim.state_subscribers == 1, timeout=20)
    sim.resume()
    await async_wait_until(lambda: runtime.stats().received >= 1000, timeout=20)
    sim.pause()
    await async_wait_until(lambda: runtime.stats().received >= sim.emitted_count, timeout=20)
    await runtime.stop()  # SIGTERM's path: the queue and the batch in flight go somewhere
    sent = {(e.entity_id, e.time_us) for e in sim.emitted}
    spool = Spool.in_dir(tmp_path, max_bytes=down.spool_max_bytes)
    try:
        assert spool.events == len(sent)
    finally:
        spool.close()

    # Next start, the store is up (the embedded one here: the spool is store-agnostic).
    up = Runtime(Settings(data_dir=tmp_path, sqlite_writer="thread", backfill=False))
    await up.start()
    await asyncio.wait_for(up.delivery.wait_drained(), 20)
    await up.stop()
    store = SQLiteEventStore.in_dir(tmp_path, readonly=True)
    try:
        assert store.keys() == sent
    finally:
        store.close()


@pytest.mark.influxdb
async def test_a_point_influxdb_refuses_is_dead_lettered_with_its_message(
    tmp_path: Path, influxdb: InfluxDBServer, influxdb_database: str
) -> None:
    # The shard already holds `value` as a string: InfluxDB refuses the float for good.
    status, _ = influxdb.write(
        f'home_assistant_events,entity_id=sensor.odd,domain=sensor value="text" {T0}',
        influxdb_database,
    )
    assert status == 204
    runtime = Runtime(
        influx_settings(influxdb.url, influxdb_database, data_dir=tmp_path, backfill=False)
    )
    await runtime.start()
    # Field types are per measurement and shard: these carry no `value`, so they fit.
    good = [event("binary_sensor.fine", second=i, state="on") for i in range(5)]
    bad: EventRecord = event("sensor.odd", second=2, state="21.5", value=21.5)
    try:
        await runtime.writer.deliver([*good, bad])
    finally:
        await runtime.stop()
    metadata = MetadataStore.in_dir(tmp_path, readonly=True)
    try:
        (letter,) = metadata.dead_letters()
    finally:
        metadata.close()
    assert letter.reason == "sink_rejected"
    assert letter.entity_id == "sensor.odd"
    assert "field type conflict" in letter.detail
    assert orjson.loads(letter.payload)["attributes_json"] == "{}"
    rows = influxdb.rows(
        "SELECT count(source) FROM home_assistant_events WHERE entity_id = 'binary_sensor.fine'",
        influxdb_database,
    )
    assert rows[0]["count"] == 5


async def test_a_task_that_failed_is_logged_at_stop_and_stopping_goes_on(
    tmp_path: Path, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path, backfill=False, sqlite_writer="thread")
    runtime = Runtime(settings)
    runtime.connect_to(sim.url, "not-the-token")
    await runtime.start()
    with pytest.raises(AuthenticationFailed):
        await asyncio.wait_for(runtime.wait(), 20)  # the client's task ended with it
    with caplog.at_level(logging.ERROR, logger="homeiq.runtime"):
        await runtime.stop()
    (failed,) = [r for r in caplog.records if "had failed" in r.getMessage()]
    assert failed.getMessage().startswith("ha-client had failed: Home Assistant rejected")
    assert failed.exc_info is None  # HomeIQ's own error: its message, no traceback
    # Stopping went on past the failed task: the data directory is free for the next run.
    again = Runtime(settings)
    await again.start()
    await again.stop()
