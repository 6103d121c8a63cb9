"""Low: a request without a valid key learns nothing about a route's body rules. Every
route that takes a body answers 401 (no key) or 403 (a key short of its scope) before
it judges a malformed, non-UTF-8 or schema-invalid body."""

from __future__ import annotations

import pytest

from homeiq.api.app import routes_of
from tests.api.conftest import Api, assert_error

BODIES = [
    b"\xff\xfe\x00 not text",
    b"{",
    b'{"unexpected": ' + b"[" * 50,
    b'"a string"',
    b'{"name": 12, "scopes": "all"}',
]


def body_routes(api: Api) -> list[tuple[str, str, str | None]]:
    found = []
    for route in routes_of(api.app):
        for method in route.methods & {"POST", "PUT", "PATCH"}:
            found.append((method, route.path, route.scope))
    assert found, "no route takes a body: the test would prove nothing"
    return found


@pytest.mark.parametrize("body", BODIES)
async def test_no_key_is_refused_before_the_body_is_read(api: Api, body: bytes) -> None:
    for method, path, _ in body_routes(api):
        response = await api.client.request(
            method, path, content=body, headers={"Content-Type": "application/json"}
        )
        assert_error(response, 401, "unauthorized")


@pytest.mark.parametrize("body", BODIES)
async def test_a_short_scope_is_refused_before_the_body_is_read(api: Api, body: bytes) -> None:
    for method, path, scope in body_routes(api):
        assert scope == "admin", path  # every body route is an admin one today
        headers = {"Content-Type": "application/json", **api.keys.auth("read")}
        response = await api.client.request(method, path, content=body, headers=headers)
        assert_error(response, 403, "forbidden")


async def test_an_admin_still_gets_the_body_errors(api: Api) -> None:
    headers = {"Content-Type": "application/json", **api.keys.auth("admin")}
    bad = await api.client.post("/api/v1/admin/keys", content=b"{", headers=headers)
    assert bad.status_code in (400, 422)
    assert bad.json()["error"]["code"] in ("bad_request", "validation_error")
