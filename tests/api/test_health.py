"""Liveness, readiness, per-component health and /metrics, over a real runtime: the
store's breaker opened by real failures reports, the spool filled by real batches."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from homeiq.ha.simulator import Simulator
from homeiq.model import DeadLetter, EventRecord, Gap, now_us
from homeiq.pipeline.normalize import format_time_us
from tests.api.conftest import Api, ApiFactory, assert_error

T0 = 1_700_000_000_000_000


def closed_port_url() -> str:
    """A loopback URL nothing listens on: a Home Assistant that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def open_breaker(api: Api) -> None:
    for _ in range(api.runtime.settings.sink_breaker_failures):
        api.runtime.breaker.failure()


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(seed=5, rate=0)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


async def test_healthz_needs_no_key(api: Api) -> None:
    response = await api.client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_is_ready_when_the_store_takes_writes(api: Api) -> None:
    response = await api.client.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready", "reasons": []})


async def test_readyz_is_503_with_reasons_while_the_store_is_unreachable(api: Api) -> None:
    open_breaker(api)
    response = await api.client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["reasons"] == ["the sqlite store is unreachable (breaker open)"]
    assert body["error"] == {
        "code": "not_ready",
        "message": "not ready: the sqlite store is unreachable (breaker open)",
        "request_id": response.headers["x-request-id"],
    }
    api.runtime.breaker.success()
    assert (await api.client.get("/readyz")).status_code == 200


async def test_readyz_needs_home_assistant_or_a_backfill(make_api: ApiFactory) -> None:
    api = await make_api(source=(closed_port_url(), "token"), backfill=True)
    response = await api.client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reasons"] == ["Home Assistant is not connected"]
    # A gap waiting for backfill: HomeIQ is catching up, which is its job.
    api.runtime.metadata.add_gap(Gap(T0, T0 + 1, "disconnected", now_us()))
    assert (await api.client.get("/readyz")).status_code == 200


async def test_health_reports_every_component(api: Api) -> None:
    runtime = api.runtime
    runtime.metadata.add_gap(Gap(T0, T0 + 1_000_000, "disconnected", now_us()))
    runtime.metadata.add_dead_letters(
        [DeadLetter("bad_state", "x", b"{}", now_us()), DeadLetter("bad_state", "y", b"{}", 1)]
    )
    newest = T0 + 5_000_000
    assert await runtime.delivery.deliver([EventRecord("sensor.a", newest, "1")]) == []

    response = await api.client.get("/api/v1/health", headers=api.keys.auth("read"))
    settings = runtime.settings
    assert response.status_code == 200
    body = response.json()
    resources = body.pop("resources")
    files = resources["files"]
    assert files["events.db"] == (settings.data_dir / "events.db").stat().st_size > 0
    assert files["metadata.db"] == (settings.data_dir / "metadata.db").stat().st_size > 0
    assert resources["data_bytes"] == sum(files.values())
    assert 0 < resources["disk_free_bytes"] < resources["disk_total_bytes"]
    assert resources["processes"] >= 1 and resources["rss_bytes"] > 10 * 1024 * 1024
    assert resources["cpu_percent"] is None  # one sample yet: no interval to average over
    assert body == {
        "status": "ok",
        "ha": {"status": "disabled", "configured": False, "connected": False, "version": None},
        "sink": {
            "status": "ok",
            "name": "sqlite",
            "breaker": "closed",
            "consecutive_failures": 0,
            "retry_in_s": 0.0,
        },
        "spool": {
            "status": "ok",
            "events": 0,
            "batches": 0,
            "bytes": 0,
            "capacity_bytes": settings.spool_max_bytes,
        },
        "queue": {"status": "ok", "depth": 0, "capacity": settings.queue_max_events},
        "backfill": {"status": "disabled", "enabled": False, "pending_gaps": 1},
        "backup": {
            "status": "disabled",
            "enabled": False,
            "schedule": "no HOMEIQ_BACKUP_RECIPIENTS or HOMEIQ_BACKUP_PASSPHRASE_FILE set",
            "next_run": None,
            "last_success": None,
        },
        "alerts": [],
        "dead_letters": 2,
        "last_event_time": format_time_us(newest),
    }


async def test_last_event_time_comes_from_the_store_after_a_restart(
    make_api: ApiFactory,
) -> None:
    api = await make_api()
    await api.runtime.sink.write([EventRecord("sensor.a", T0, "1")])  # not via delivery
    response = await api.client.get("/api/v1/health", headers=api.keys.auth("read"))
    assert response.json()["last_event_time"] == format_time_us(T0)


async def test_health_with_home_assistant_connected(make_api: ApiFactory, sim: Simulator) -> None:
    api = await make_api(source=(sim.url, sim.token))
    assert api.runtime.client is not None
    await asyncio.wait_for(api.runtime.client.connected.wait(), 10)
    body = (await api.client.get("/api/v1/health", headers=api.keys.auth("read"))).json()
    assert body["ha"] == {
        "status": "ok",
        "configured": True,
        "connected": True,
        "version": "2024.3.3",
    }
    assert body["status"] == "ok"
    assert (await api.client.get("/readyz")).json() == {"status": "ready", "reasons": []}


async def test_health_is_degraded_while_spooling_and_down_once_the_spool_is_full(
    make_api: ApiFactory,
) -> None:
    api = await make_api(spool_max_bytes=2048, spool_full_policy="drop_oldest")
    runtime = api.runtime
    auth = api.keys.auth("read")
    open_breaker(api)
    # The store is down: batches go to the spool, nothing is lost yet.
    await runtime.delivery.deliver([EventRecord("sensor.a", T0, "1")])
    body = (await api.client.get("/api/v1/health", headers=auth)).json()
    assert body["status"] == "degraded"
    assert body["sink"]["status"] == "down"
    assert body["sink"]["breaker"] == "open"
    assert body["sink"]["consecutive_failures"] == runtime.settings.sink_breaker_failures
    assert 0 < body["sink"]["retry_in_s"] <= runtime.settings.sink_breaker_reset_s
    assert body["spool"]["status"] == "degraded"
    assert body["spool"]["events"] == 1

    t = T0
    while runtime.spool.bytes < 0.9 * runtime.spool.max_bytes:
        t += 1
        await runtime.delivery.deliver([EventRecord("sensor.a", t, "x" * 40)])
    body = (await api.client.get("/api/v1/health", headers=auth)).json()
    assert body["status"] == "down"
    assert body["spool"]["status"] == "down"
    assert body["spool"]["bytes"] == runtime.spool.bytes


async def test_metrics_are_prometheus_text_with_the_api_series(api: Api) -> None:
    assert_error(await api.client.get("/metrics"), 401, "unauthorized")
    await api.client.get("/api/v1/registry/floors", headers=api.keys.auth("read"))
    response = await api.client.get("/metrics", headers=api.keys.auth("read"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    for expected in (
        "homeiq_queue_capacity 50000.0",
        'homeiq_api_rate_limited_total{kind="ip"} 0.0',
        'homeiq_api_rate_limited_total{kind="key"} 0.0',
        'homeiq_sink_breaker_state{sink="sqlite"} 0.0',
    ):
        assert expected in lines
    floors = [
        line
        for line in lines
        if line.startswith("homeiq_api_request_duration_seconds_count")
        and 'route="/api/v1/registry/floors"' in line
    ]
    assert floors == [
        'homeiq_api_request_duration_seconds_count{method="GET",'
        'route="/api/v1/registry/floors",status="200"} 1.0'
    ]
