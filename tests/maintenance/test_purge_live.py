"""The purge in real conditions: under the simulator's live ingest (no event inside the
keep window lost, the writer's queue never filling), and ``homeiq purge`` killed with
kill -9 part-way (the store stays consistent; the next run finishes the job)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from homeiq.ha.simulator import Simulator
from homeiq.runtime import Runtime
from homeiq.settings import Settings
from homeiq.sinks.sqlite import SQLiteEventStore
from tests.support.influxdb import event
from tests.support.wait import async_wait_until

DAY_US = 86_400_000_000
KEEP_DAYS = 10


def write_old(data_dir: Path, entities: int, per_entity: int, span_days: int) -> int:
    """Events of ``sensor.old_*`` spread over the ``span_days`` before now; their newest
    time. Written straight to events.db before any server runs."""
    now = time.time_ns() // 1000
    store = SQLiteEventStore.in_dir(data_dir)
    step = span_days * DAY_US // per_entity
    records = [
        event(f"sensor.old_{e}", 0, str(k), value=float(k))
        for e in range(entities)
        for k in range(per_entity)
    ]
    for record in records:  # events place them at T0 + second: move them to the past
        k = int(record.state or 0)
        object.__setattr__(record, "time", now - span_days * DAY_US + k * step)
        object.__setattr__(record, "last_changed", record.time)
    store.write(records)
    store.close()
    return now - span_days * DAY_US + (per_entity - 1) * step


def old_keys(data_dir: Path) -> set[tuple[str, int]]:
    store = SQLiteEventStore.in_dir(data_dir, readonly=True)
    try:
        stored = store.keys()
        return {k for k in stored if k[0].startswith("sensor.old_")}
    finally:
        store.close()


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(seed=11, rate=400)
    simulator.pause()
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


async def test_a_purge_under_live_ingest_loses_nothing_inside_the_keep_window(
    tmp_path: Path, sim: Simulator
) -> None:
    write_old(tmp_path, entities=4, per_entity=600, span_days=40)
    before = old_keys(tmp_path)
    settings = Settings(
        data_dir=tmp_path,
        backfill=False,
        batch_max_age_s=0.1,
        retention_raw_days=KEEP_DAYS,
        retention_chunk_rows=100,
        retention_schedule="off",
    )
    runtime = Runtime(settings)  # the writer process, as `homeiq run` runs it
    runtime.connect_to(sim.url, sim.token)
    await runtime.start()
    depths: list[int] = []
    try:
        await async_wait_until(lambda: sim.state_subscribers == 1, timeout=20)
        sim.resume()
        await async_wait_until(lambda: runtime.stats().received >= 300, timeout=20)
        purge = asyncio.create_task(runtime.purger.run())
        while not purge.done():
            depths.append(runtime.stats().queue_depth)
            await asyncio.sleep(0.005)
        report = await purge
        await async_wait_until(lambda: runtime.stats().received >= 600, timeout=20)
        sim.pause()
        await async_wait_until(lambda: runtime.stats().received >= sim.emitted_count, timeout=20)
        await asyncio.wait_for(runtime.delivery.wait_drained(), 20)
    finally:
        await runtime.stop()
    assert report.reference is not None
    cutoff = report.reference - KEEP_DAYS * DAY_US
    kept = {k for k in before if k[1] >= cutoff}
    assert 0 < len(kept) < len(before)
    assert old_keys(tmp_path) == kept  # the old ones: exactly the keep window left
    assert report.tiers[0].rows == len(before) - len(kept)
    metrics = runtime.metrics
    assert metrics.value("homeiq_purge_rows_total", {"tier": "raw"}) == report.tiers[0].rows
    assert metrics.value("homeiq_purge_runs_total", {"outcome": "ok"}) == 1
    assert metrics.value("homeiq_purge_last_success_timestamp_seconds") > 0
    store = SQLiteEventStore.in_dir(tmp_path, readonly=True)
    try:
        stored = store.keys()
    finally:
        store.close()
    assert {(e.entity_id, e.time_us) for e in sim.emitted} <= stored  # no live event lost
    assert depths and max(depths) < settings.queue_max_events // 2  # never near full


def homeiq_purge(data_dir: Path, *, output: bool = True) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMEIQ_")}
    env.update(
        HOMEIQ_DATA_DIR=str(data_dir),
        HOMEIQ_RETENTION_RAW_DAYS=str(KEEP_DAYS),
        HOMEIQ_RETENTION_CHUNK_ROWS="100",
        HOMEIQ_SQLITE_WRITER="thread",
        HOMEIQ_LOG_LEVEL="WARNING",
    )
    command = [sys.executable, "-m", "homeiq.cli", "purge"]
    pipe = subprocess.PIPE if output else subprocess.DEVNULL
    return subprocess.Popen(command, env=env, stdout=pipe, stderr=pipe)


def count(data_dir: Path) -> int:
    conn = sqlite3.connect(f"file:{data_dir / 'events.db'}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    finally:
        conn.close()


async def test_kill_9_mid_purge_leaves_a_consistent_store_and_a_rerun_finishes(
    tmp_path: Path,
) -> None:
    newest = write_old(tmp_path, entities=5, per_entity=4000, span_days=40)
    before = old_keys(tmp_path)
    total = len(before)
    purge = homeiq_purge(tmp_path, output=False)
    try:
        # Killed as soon as the first chunks are gone (or when it ended on its own).
        await async_wait_until(
            lambda: purge.poll() is not None or count(tmp_path) < total, timeout=60, interval=0.01
        )
        purge.send_signal(signal.SIGKILL)
    finally:
        purge.wait(timeout=30)
    conn = sqlite3.connect(tmp_path / "events.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()
    cutoff = newest - KEEP_DAYS * DAY_US
    kept = {k for k in before if k[1] >= cutoff}
    remaining = old_keys(tmp_path)
    print(f"killed with {len(remaining) - len(kept)} of {total - len(kept)} rows left to purge")
    assert kept <= remaining  # nothing inside the keep window went
    assert (total - len(remaining)) % 100 == 0 or not remaining - kept  # whole chunks only

    rerun = homeiq_purge(tmp_path)
    out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err.decode()
    assert old_keys(tmp_path) == kept
    assert b"raw" in out
