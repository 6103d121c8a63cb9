"""The app's edge: one JSON error shape for every failure (404, 405, 413, 414, 422, 500),
security headers on every response, request ids, CORS only for allowed origins, and
latency per route template."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, Depends

from homeiq.api.app import create_app
from homeiq.api.auth import require
from homeiq.api.routes import ROUTERS
from tests.api.conftest import BASE_URL, Api, ApiFactory, assert_error

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.status_code)
    assert "server" not in response.headers


# -- the error shape ---------------------------------------------------------------------


async def test_unknown_path_is_a_json_404(api: Api) -> None:
    response = await api.client.get("/api/v1/nothing-here", headers=api.keys.auth("read"))
    error = assert_error(response, 404, "not_found")
    assert error["message"] == "no route /api/v1/nothing-here"
    assert_security_headers(response)


async def test_wrong_method_is_a_json_405_naming_every_allowed_method(api: Api) -> None:
    response = await api.client.put("/api/v1/admin/keys", headers=api.keys.auth("admin"))
    error = assert_error(response, 405, "method_not_allowed")
    assert error["message"] == "PUT is not allowed on /api/v1/admin/keys"
    assert response.headers["allow"] == "GET, POST"


async def test_invalid_query_is_a_json_422_naming_the_parameter(api: Api) -> None:
    response = await api.client.get(
        "/api/v1/admin/dead-letters?limit=0", headers=api.keys.auth("admin")
    )
    error = assert_error(response, 422, "validation_error")
    assert error["message"].startswith("query.limit: ")


async def test_invalid_body_is_a_json_422_without_echoing_it(api: Api) -> None:
    response = await api.client.post(
        "/api/v1/admin/keys",
        json={"name": "", "scopes": ["root-SECRETISH"]},
        headers=api.keys.auth("admin"),
    )
    error = assert_error(response, 422, "validation_error")
    assert "body.name" in error["message"]
    assert "body.scopes.0" in error["message"]
    assert "root-SECRETISH" not in response.text


async def test_malformed_json_body_is_a_json_422(api: Api) -> None:
    response = await api.client.post(
        "/api/v1/admin/keys",
        content=b"{not json",
        headers={**api.keys.auth("admin"), "Content-Type": "application/json"},
    )
    assert_error(response, 422, "validation_error")


async def test_malformed_json_body_is_judged_after_the_key(api: Api) -> None:
    """FastAPI parses a body before dependencies: the key must still be checked first."""
    body = {"content": b"{not json", "headers": {"Content-Type": "application/json"}}
    no_key = await api.client.post("/api/v1/admin/keys", **body)  # type: ignore[arg-type]
    assert_error(no_key, 401, "unauthorized")
    assert no_key.headers["www-authenticate"] == "Bearer"
    read_key = {"Content-Type": "application/json", **api.keys.auth("read")}
    low = await api.client.post("/api/v1/admin/keys", content=b"{not json", headers=read_key)
    assert_error(low, 403, "forbidden")
    bogus = {"Content-Type": "application/json", "X-API-Key": "hiq_not-a-key"}
    wrong = await api.client.post("/api/v1/admin/keys", content=b"{not json", headers=bogus)
    assert_error(wrong, 401, "unauthorized")


@pytest.fixture
async def boom_client(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    """The app with one more router whose route fails: an unexpected exception."""
    boom = APIRouter(dependencies=[Depends(require("read"))])

    @boom.get("/api/v1/boom")
    async def explode() -> dict[str, str]:
        raise RuntimeError("the database exploded at /var/lib/internal/path")

    app = create_app(api.runtime, routers=(*ROUTERS, boom))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL
    ) as client:
        yield client


async def test_unexpected_exception_is_a_json_500_logged_with_the_request_id(
    api: Api, boom_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    headers = {**api.keys.auth("read"), "X-Request-ID": "req-500-check"}
    with caplog.at_level(logging.ERROR, logger="homeiq.api"):
        response = await boom_client.get("/api/v1/boom", headers=headers)
    error = assert_error(response, 500, "internal_error")
    assert error == {
        "code": "internal_error",
        "message": "internal server error",
        "request_id": "req-500-check",
    }
    assert "exploded" not in response.text
    assert "/var/lib" not in response.text
    assert_security_headers(response)
    [record] = [r for r in caplog.records if r.name == "homeiq.api.middleware"]
    assert "req-500-check" in record.getMessage()
    assert "/api/v1/boom" in record.getMessage()
    assert record.exc_info is not None  # the trace stays on the server


async def test_a_route_without_a_key_requirement_is_refused_at_build_time(api: Api) -> None:
    open_door = APIRouter()

    @open_door.get("/api/v1/open")
    async def anyone() -> dict[str, str]:
        return {}

    with pytest.raises(RuntimeError, match="/api/v1/open has no require"):
        create_app(api.runtime, routers=(*ROUTERS, open_door))


# -- size limits -------------------------------------------------------------------------


async def test_body_over_the_limit_is_refused_by_its_length_before_reading(
    make_api: ApiFactory,
) -> None:
    api = await make_api(api_max_body_bytes=1024)
    body = b'{"name": "' + b"x" * 2000 + b'", "scopes": ["read"]}'
    response = await api.client.post(
        "/api/v1/admin/keys",
        content=body,
        headers={**api.keys.auth("admin"), "Content-Type": "application/json"},
    )
    error = assert_error(response, 413, "payload_too_large")
    assert error["message"] == "request body exceeds 1024 bytes"
    assert_security_headers(response)
    listed = await api.client.get("/api/v1/admin/keys", headers=api.keys.auth("admin"))
    assert listed.json()["count"] == 4  # nothing was created


async def test_chunked_body_over_the_limit_is_cut_off(make_api: ApiFactory) -> None:
    api = await make_api(api_max_body_bytes=1024)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(10):
            yield b"y" * 200
        yield b'", "scopes": ["read"]}'

    response = await api.client.post(
        "/api/v1/admin/keys",
        content=chunks(),
        headers={**api.keys.auth("admin"), "Content-Type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "payload_too_large")


async def test_query_string_over_the_limit_is_a_414(make_api: ApiFactory) -> None:
    api = await make_api(api_max_query_bytes=256)
    ok = await api.client.get(
        "/api/v1/registry/entities", params={"domain": "l" * 200}, headers=api.keys.auth("read")
    )
    assert ok.status_code == 200
    response = await api.client.get(
        "/api/v1/registry/entities", params={"domain": "l" * 300}, headers=api.keys.auth("read")
    )
    error = assert_error(response, 414, "uri_too_long")
    assert error["message"] == "query string exceeds 256 bytes"


# -- headers and request ids -------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "scope", "status"),
    [
        ("/healthz", None, 200),
        ("/api/v1/registry/areas", "read", 200),
        ("/api/v1/registry/areas", None, 401),
        ("/api/v1/admin/config", "read", 403),
        ("/nope", None, 404),
    ],
)
async def test_every_response_carries_the_security_headers(
    api: Api, path: str, scope: str | None, status: int
) -> None:
    response = await api.client.get(path, headers=api.keys.auth(scope) if scope else {})
    assert response.status_code == status
    assert_security_headers(response)
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


async def test_a_safe_request_id_is_echoed_an_unsafe_one_replaced(api: Api) -> None:
    given = await api.client.get("/healthz", headers={"X-Request-ID": "trace-42.a:b_c"})
    assert given.headers["x-request-id"] == "trace-42.a:b_c"
    for unsafe in ("has space", "x" * 129, "new\\nline"):
        response = await api.client.get("/healthz", headers={"X-Request-ID": unsafe})
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"]), unsafe


async def test_request_ids_differ_between_requests(api: Api) -> None:
    ids = {(await api.client.get("/healthz")).headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


# -- CORS ----------------------------------------------------------------------------------


async def test_no_cors_headers_by_default(api: Api) -> None:
    origin = {"Origin": "https://dash.example"}
    response = await api.client.get(
        "/api/v1/registry/floors", headers={**origin, **api.keys.auth("read")}
    )
    assert response.status_code == 200
    assert not [h for h in response.headers if h.startswith("access-control-")]
    preflight = await api.client.options(
        "/api/v1/registry/floors",
        headers={**origin, "Access-Control-Request-Method": "GET"},
    )
    assert_error(preflight, 405, "method_not_allowed")
    assert "access-control-allow-origin" not in preflight.headers


async def test_cors_for_an_allowed_origin_only(make_api: ApiFactory) -> None:
    api = await make_api(api_cors_origins=["https://dash.example"])
    preflight = await api.client.options(
        "/api/v1/registry/floors",
        headers={
            "Origin": "https://dash.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://dash.example"
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in preflight.headers

    allowed = await api.client.get(
        "/api/v1/registry/floors",
        headers={"Origin": "https://dash.example", **api.keys.auth("read")},
    )
    assert allowed.headers["access-control-allow-origin"] == "https://dash.example"
    exposed = allowed.headers["access-control-expose-headers"].lower()
    assert "x-request-id" in exposed
    assert "ratelimit-remaining" in exposed
    assert "retry-after" in exposed

    other = await api.client.get(
        "/api/v1/registry/floors",
        headers={"Origin": "https://evil.example", **api.keys.auth("read")},
    )
    assert other.status_code == 200
    assert "access-control-allow-origin" not in other.headers


# -- latency metrics -------------------------------------------------------------------------


async def test_latency_is_recorded_per_route_template_and_status(api: Api) -> None:
    auth = api.keys.auth("read")
    await api.client.get("/api/v1/registry/areas/kitchen", headers=auth)
    await api.client.get("/api/v1/registry/areas/garage", headers=auth)
    await api.client.get("/api/v1/registry/areas/attic", headers=auth)
    await api.client.get("/no/such/route/4711", headers=auth)
    value = api.runtime.metrics.value
    name = "homeiq_api_request_duration_seconds_count"
    route = "/api/v1/registry/areas/{area_id}"
    assert value(name, {"method": "GET", "route": route, "status": "200"}) == 2
    assert value(name, {"method": "GET", "route": route, "status": "404"}) == 1
    # Unmatched paths share one label value: no label per path a client makes up.
    assert value(name, {"method": "GET", "route": "unmatched", "status": "404"}) == 1
