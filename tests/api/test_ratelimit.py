"""Rate limits per key (by its highest scope) and per client IP: RateLimit-* headers on
every limited response, 429 with Retry-After, both windows of a limit enforced, and the
rejections counted. Windows of minutes and hours keep the tests free of timing."""

from __future__ import annotations

import httpx
import limits
from prometheus_client import CollectorRegistry

from homeiq.api.metrics import ApiMetrics
from homeiq.api.ratelimit import RateLimiter
from tests.api.conftest import BASE_URL, Api, ApiFactory, assert_error


def headers_of(response: httpx.Response) -> tuple[int, int, int]:
    h = response.headers
    return int(h["ratelimit-limit"]), int(h["ratelimit-remaining"]), int(h["ratelimit-reset"])


async def test_key_limit_headers_count_down_then_429(make_api: ApiFactory) -> None:
    api = await make_api(api_rate_limit_read="3/hour")
    auth = api.keys.auth("read")
    seen = []
    for _ in range(3):
        response = await api.client.get("/api/v1/registry/floors", headers=auth)
        assert response.status_code == 200
        limit, remaining, reset = headers_of(response)
        seen.append((limit, remaining))
        assert 1 <= reset <= 3600
    assert seen == [(3, 2), (3, 1), (3, 0)]

    refused = await api.client.get("/api/v1/registry/floors", headers=auth)
    error = assert_error(refused, 429, "rate_limited")
    assert error["message"] == "rate limit of this API key exceeded"
    assert 1 <= int(refused.headers["retry-after"]) <= 3600
    assert headers_of(refused)[:2] == (3, 0)
    metrics = api.runtime.metrics
    assert metrics.value("homeiq_api_rate_limited_total", {"kind": "key"}) == 1
    assert metrics.value("homeiq_api_rate_limited_total", {"kind": "ip"}) == 0

    # Another key has its own budget.
    other = await api.client.get("/api/v1/registry/floors", headers=api.keys.auth("write"))
    assert other.status_code == 200


async def test_the_burst_window_is_enforced(make_api: ApiFactory) -> None:
    api = await make_api(api_rate_limit_read="50/hour;2/minute")
    auth = api.keys.auth("read")
    for remaining in (1, 0):
        response = await api.client.get("/api/v1/health", headers=auth)
        assert response.status_code == 200
        assert headers_of(response)[:2] == (2, remaining)  # the tighter window is reported
    refused = await api.client.get("/api/v1/health", headers=auth)
    assert_error(refused, 429, "rate_limited")
    assert 1 <= int(refused.headers["retry-after"]) <= 60


async def test_the_sustained_window_is_enforced(make_api: ApiFactory) -> None:
    api = await make_api(api_rate_limit_read="2/hour;50/minute")
    auth = api.keys.auth("read")
    for _ in range(2):
        assert (await api.client.get("/api/v1/health", headers=auth)).status_code == 200
    refused = await api.client.get("/api/v1/health", headers=auth)
    assert_error(refused, 429, "rate_limited")
    assert int(refused.headers["ratelimit-limit"]) == 2


async def test_a_key_is_limited_by_its_highest_scope(make_api: ApiFactory) -> None:
    api = await make_api(api_rate_limit_admin="1/hour")
    admin = api.keys.auth("admin")
    assert (await api.client.get("/api/v1/registry/floors", headers=admin)).status_code == 200
    # Even on a read route, an admin key spends the admin budget.
    assert_error(
        await api.client.get("/api/v1/registry/floors", headers=admin), 429, "rate_limited"
    )
    read = await api.client.get("/api/v1/registry/floors", headers=api.keys.auth("read"))
    assert read.status_code == 200


async def test_client_ip_limit_covers_requests_without_a_key(make_api: ApiFactory) -> None:
    api = await make_api(api_rate_limit_ip="3/hour")
    assert (await api.client.get("/readyz")).status_code == 200
    assert_error(await api.client.get("/api/v1/health"), 401, "unauthorized")
    assert (
        await api.client.get("/api/v1/health", headers=api.keys.auth("read"))
    ).status_code == 200
    refused = await api.client.get("/api/v1/health", headers=api.keys.auth("read"))
    error = assert_error(refused, 429, "rate_limited")
    assert error["message"] == "rate limit of this client address exceeded"
    assert "retry-after" in refused.headers
    assert api.runtime.metrics.value("homeiq_api_rate_limited_total", {"kind": "ip"}) == 1

    # Liveness is never limited, and says nothing about limits.
    for _ in range(5):
        alive = await api.client.get("/healthz")
        assert alive.status_code == 200
        assert "ratelimit-limit" not in alive.headers

    # Another address has its own budget.
    transport = httpx.ASGITransport(app=api.app, client=("192.0.2.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as elsewhere:
        assert (await elsewhere.get("/readyz")).status_code == 200


def test_a_refused_request_costs_nothing() -> None:
    """Every window is tested before any is counted: a client refused by one window
    does not keep draining the others."""
    minute, hour = limits.parse_many("1/minute;5/hour")
    limiter = RateLimiter(
        per_scope={s: [minute, hour] for s in ("read", "write", "admin")},
        per_ip=[hour],
        metrics=ApiMetrics(CollectorRegistry()),
    )
    assert limiter.check_key(1, ["read"]).allowed
    for _ in range(10):
        verdict = limiter.check_key(1, ["read"])
        assert not verdict.allowed
        assert verdict.window.limit == 1
    # The hour window holds the one counted request, not eleven.
    stats = limiter._limiter.get_window_stats(hour, "key", "1")
    assert stats.remaining == 4


async def test_rate_limit_headers_are_not_on_healthz_but_on_readyz(api: Api) -> None:
    assert "ratelimit-limit" not in (await api.client.get("/healthz")).headers
    ready = await api.client.get("/readyz")
    assert int(ready.headers["ratelimit-limit"]) == 100000
