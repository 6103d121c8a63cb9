"""Info and low: what reaches the served socket before any route. uvicorn's own 400s
(bad Content-Length, a raw 0xff byte in the request line) answer in the API's JSON
error shape; a header block over 16 KiB is refused even when it arrives in one write;
a trailing slash is a 404, never a redirect built from the client's Host header."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from homeiq.api.server import ApiServer, bind
from tests.api.conftest import Api, assert_error


@pytest.fixture
async def served(api: Api) -> AsyncIterator[tuple[str, int]]:
    server = ApiServer(api.app, bind("127.0.0.1", 0), api.runtime.settings)
    await server.start()
    try:
        yield "127.0.0.1", server.sock.getsockname()[1]
    finally:
        await server.stop()


async def exchange(address: tuple[str, int], *chunks: bytes) -> tuple[int, dict[str, str], Any]:
    """Send raw bytes (each chunk one write), read the answer until the server closes."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, orjson.loads(body)


def assert_json_error(status: int, headers: dict[str, str], body: Any, code: str) -> None:
    assert headers["content-type"] == "application/json"
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["request_id"] == headers["x-request-id"]
    assert len(body["error"]["request_id"]) == 32


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /api/v1/admin/keys HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"\xff\xfe\x00\x01 garbage\r\n\r\n",
    ],
)
async def test_unparseable_requests_get_the_json_error_shape(
    served: tuple[str, int], request_bytes: bytes
) -> None:
    status, headers, body = await exchange(served, request_bytes)
    assert status == 400
    assert_json_error(status, headers, body, "bad_request")
    assert headers["connection"] == "close"


async def test_a_100_kb_header_in_one_write_is_refused(served: tuple[str, int]) -> None:
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: "
    status, headers, body = await exchange(served, big + b"a" * 100_000 + b"\r\n\r\n")
    assert status == 431
    assert_json_error(status, headers, body, "headers_too_large")


async def test_a_header_block_over_16_kib_arriving_in_parts_is_refused(
    served: tuple[str, int],
) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    # Part one alone is past the limit and incomplete: h11 refuses it (400); should
    # the two parts be read together, the edge refuses the whole (431).
    status, headers, body = await exchange(
        served, head + b"X-A: " + b"a" * 20_000 + b"\r\n", b"X-B: b\r\n\r\n"
    )
    assert (status, body["error"]["code"]) in ((400, "bad_request"), (431, "headers_too_large"))
    assert_json_error(status, headers, body, body["error"]["code"])


async def test_a_header_block_under_the_limit_is_served(served: tuple[str, int]) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Ok: "
    status, _, body = await exchange(served, request + b"a" * 12_000 + b"\r\n\r\n")
    assert (status, body) == (200, {"status": "ok"})


async def test_a_trailing_slash_is_not_redirected_to_a_forged_host(api: Api) -> None:
    for path in ("/api/v1/health/", "/healthz/", "/api/v1/registry/floors/"):
        response = await api.client.get(
            path, headers={"Host": "evil.example", **api.keys.auth("read")}
        )
        assert_error(response, 404, "not_found")
        assert "location" not in response.headers
        assert "evil.example" not in response.text
