"""Full-system restore, on both stores (the embedded SQLite and the real InfluxDB 1.6.7):
ingest a known stream from the simulated Home Assistant, take a backup while HomeIQ
runs, wipe everything (the data directory and the InfluxDB database), restore, start
HomeIQ again, and compare what the API answers: events, history, statistics, registry
and API keys must be the same as before."""

from __future__ import annotations

import asyncio
import shutil
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from homeiq.api.app import create_app
from homeiq.api.auth import create_key
from homeiq.ha.simulator import Simulator
from homeiq.maintenance.backup.crypto import new_identity
from homeiq.maintenance.backup.service import BackupService
from homeiq.pipeline.normalize import format_time_us
from homeiq.runtime import Runtime
from homeiq.settings import Settings
from tests.support.influxdb import InfluxDBServer
from tests.support.wait import async_wait_until

EVENTS = 600
GENEROUS = "1000000/second"


async def answers(runtime: Runtime, admin_key: str, stored: int) -> dict[str, Any]:
    """What the API says about the stored data, through every kind of query."""
    app = create_app(runtime)
    headers = {"Authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://homeiq.test", headers=headers
    ) as client:

        async def get(path: str, **params: Any) -> Any:
            response = await client.get(path, params=params)
            assert response.status_code == 200, (path, response.text)
            return response.json()

        pages: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = await get("/api/v1/events", limit=250, **({"cursor": cursor} if cursor else {}))
            pages += page["events"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(pages) == stored
        first, last = pages[-1]["time"], pages[0]["time"]
        busiest = sorted({e["entity_id"] for e in pages})[:5]
        span = {"start": first, "end": format_time_us(_us(last) + 1)}
        history = await get("/api/v1/history", entity_id=busiest, **span)
        statistics = await get("/api/v1/statistics", entity_id=busiest, period="5m", **span)
        keys = await get("/api/v1/admin/keys")
        for key in keys["items"]:
            key.pop("last_used_at")  # touched by these very requests
        return {
            "events": pages,
            "history": history,
            "statistics": statistics,
            "entities": await get("/api/v1/registry/entities"),
            "areas": await get("/api/v1/registry/areas"),
            "devices": await get("/api/v1/registry/devices"),
            "keys": keys,
        }


def _us(iso: str) -> int:
    from homeiq.pipeline.normalize import parse_time_us

    return parse_time_us(iso, "time")


async def full_restore(settings: Settings, wipe_store: Callable[[], Awaitable[None]]) -> None:
    """The scenario, for the store ``settings`` describe."""
    async with Simulator(seed=11, rate=3000, count=EVENTS) as sim:
        # The home holds still until HomeIQ is subscribed: on a loaded machine the whole
        # stream could otherwise go out before anyone listens.
        sim.pause()
        runtime = Runtime(settings)
        runtime.connect_to(sim.url, sim.token)
        await runtime.start()
        try:
            assert runtime.client is not None
            await asyncio.wait_for(runtime.client.connected.wait(), 30)
            sim.resume()
            # Plus the baseline snapshot of the home (a snapshot of a state whose change
            # was in flight counts as a duplicate: ha/snapshot.py).
            await async_wait_until(
                lambda: (
                    len(sim.emitted) >= EVENTS
                    and runtime.snapshot.taken >= 1
                    and runtime.stats().stored + runtime.stats().duplicates
                    == sim.stats.delivered + runtime.snapshot.recorded
                    and sim.stats.delivered > EVENTS // 2
                ),
                timeout=30,
            )
            stored = runtime.stats().stored
        finally:
            await runtime.stop()

    # HomeIQ running (without a source now), answering, and backing up while it runs.
    runtime = Runtime(settings)
    await runtime.start()
    try:
        admin_key, _ = create_key(runtime.metadata, "restore-test", ["admin", "read"])
        before = await answers(runtime, admin_key, stored)
        result = await runtime.backups.create()
        assert result.ok, result.copies
    finally:
        await runtime.stop()

    shutil.rmtree(settings.data_dir)  # everything: databases, keys, rollups, spool
    await wipe_store()

    service = BackupService(settings)
    report = await service.restore(result.name)
    assert not report.dry_run

    runtime = Runtime(settings)
    await runtime.start()
    try:
        after = await answers(runtime, admin_key, stored)  # the restored key opens the API
    finally:
        await runtime.stop()
    for part in before:
        assert after[part] == before[part], part


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    secret, public = new_identity()
    identity = tmp_path / "identity.txt"
    identity.write_text(secret + "\n")
    return Settings(
        data_dir=tmp_path / "data",
        backfill=False,
        batch_max_age_s=0.05,
        backup_recipients=[public],
        backup_identity_file=identity,
        backup_targets=[(tmp_path / "nas").as_uri()],
        api_rate_limit_admin=GENEROUS,
        api_rate_limit_read=GENEROUS,
        api_rate_limit_ip=GENEROUS,
        **overrides,
    )


async def test_full_restore_of_the_embedded_store(tmp_path: Path) -> None:
    async def nothing_else() -> None:
        return None

    await full_restore(settings_for(tmp_path, sqlite_writer="thread"), nothing_else)


@pytest.mark.influxdb
async def test_full_restore_with_influxdb(
    tmp_path: Path, influxdb: InfluxDBServer, influxdb_database: str
) -> None:
    settings = settings_for(
        tmp_path, store="influxdb", influxdb_url=influxdb.url, influxdb_database=influxdb_database
    )

    async def drop_database() -> None:
        query = urllib.parse.urlencode({"q": f'DROP DATABASE "{influxdb_database}"'})
        request = urllib.request.Request(f"{influxdb.url}/query?{query}", method="POST")
        await asyncio.to_thread(lambda: urllib.request.urlopen(request, timeout=10).read())

    await full_restore(settings, drop_database)
