"""Low: the per-IP limiter's memory is bounded, and X-Forwarded-For is believed only
from configured proxies (uvicorn trusted any loopback peer, so a local client could
forge a new address per request and never be limited)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import limits
import pytest
from prometheus_client import CollectorRegistry

from homeiq.api.metrics import ApiMetrics
from homeiq.api.ratelimit import RateLimiter
from homeiq.api.server import ApiServer, bind
from homeiq.settings import Settings
from tests.api.conftest import ApiFactory


def limiter(max_clients: int, per_ip: str = "2/minute") -> RateLimiter:
    return RateLimiter(
        per_scope={s: limits.parse_many("100/minute") for s in ("read", "write", "admin")},
        per_ip=limits.parse_many(per_ip),
        metrics=ApiMetrics(CollectorRegistry()),
        max_clients=max_clients,
    )


def test_forged_addresses_do_not_grow_the_limiter_past_its_bound() -> None:
    limits_ = limiter(max_clients=100, per_ip="5/minute;2/second")
    for i in range(5000):
        assert limits_.check_ip(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}").allowed
    assert limits_.tracked == 100
    # Every remembered entry belongs to one of the 100 newest clients, two windows each.
    assert len(limits_.storage.events) <= 100 * 2
    assert all("10.0.19." in key for key in limits_.storage.events)  # 4900..4999


def test_a_busy_client_stays_limited_while_others_come_and_go() -> None:
    limits_ = limiter(max_clients=10)
    assert limits_.check_ip("192.0.2.1").allowed
    assert limits_.check_ip("192.0.2.1").allowed
    for i in range(50):
        limits_.check_ip(f"198.51.100.{i}")
        # Seen again before it could be forgotten: still at its limit.
        assert not limits_.check_ip("192.0.2.1").allowed
    assert limits_.tracked == 10


def test_trusted_proxies_are_parsed_as_networks() -> None:
    settings = Settings(api_trusted_proxies="10.0.0.0/8, 127.0.0.1,::1")  # type: ignore[arg-type]
    assert settings.api.trusted_proxies == ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]
    assert Settings().api.trusted_proxies == []
    with pytest.raises(ValueError, match="not an IP address or CIDR network"):
        Settings(api_trusted_proxies="proxy.example")  # type: ignore[arg-type]


async def served_statuses(make_api: ApiFactory, **overrides: Any) -> list[int]:
    """Statuses of 5 keyless requests from loopback, each naming a new forwarded client."""
    api = await make_api(api_rate_limit_ip="3/minute", **overrides)
    server = ApiServer(api.app, bind("127.0.0.1", 0), api.runtime.settings)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as client:
            statuses = []
            for i in range(5):
                headers = {"X-Forwarded-For": f"203.0.113.{i}"}
                response = await client.get("/api/v1/health", headers=headers)
                statuses.append(response.status_code)
            return statuses
    finally:
        await server.stop()
        await asyncio.sleep(0)


async def test_forwarded_for_from_loopback_is_ignored_by_default(make_api: ApiFactory) -> None:
    # The limit counts the real peer (127.0.0.1): the forged addresses do not help.
    assert await served_statuses(make_api) == [401, 401, 401, 429, 429]


async def test_forwarded_for_from_a_configured_proxy_names_the_client(
    make_api: ApiFactory,
) -> None:
    # Each forwarded client has its own window: none is limited.
    statuses = await served_statuses(make_api, api_trusted_proxies=["127.0.0.1"])
    assert statuses == [401] * 5
