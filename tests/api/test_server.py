"""Serving the API with uvicorn inside the running event loop: real HTTP on a loopback
port, HomeIQ's signal handlers left alone, a clear error for a port in use, and a
warning when the API is exposed beyond this machine."""

from __future__ import annotations

import logging
import signal
import socket

import httpx
import pytest

from homeiq.api.server import ApiServer, bind, is_loopback, url_of
from homeiq.errors import ConfigError
from tests.api.conftest import ApiFactory


async def test_serves_real_http_and_stops(make_api: ApiFactory) -> None:
    api = await make_api()
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = ApiServer(api.app, sock, api.runtime.settings)
    assert server.url == f"http://127.0.0.1:{port}"
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    await server.start()
    try:
        # uvicorn would install its own; HomeIQ's shutdown order must stay in charge.
        assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
        async with httpx.AsyncClient(base_url=server.url) as client:
            alive = await client.get("/healthz")
            assert (alive.status_code, alive.json()) == (200, {"status": "ok"})
            assert "server" not in alive.headers
            assert alive.headers["x-content-type-options"] == "nosniff"
            health = await client.get("/api/v1/health", headers=api.keys.auth("read"))
            assert health.status_code == 200
            assert health.json()["sink"]["name"] == "sqlite"
            denied = await client.get("/api/v1/health")
            assert denied.status_code == 401
    finally:
        await server.stop()
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))


def test_a_port_in_use_fails_naming_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as info:
            bind("127.0.0.1", port)
    assert info.value.setting == "HOMEIQ_API_PORT"
    assert f"port {port} on 127.0.0.1 is already in use" in str(info.value)


def test_an_address_this_machine_lacks_names_the_host_setting() -> None:
    with pytest.raises(ConfigError) as info:
        bind("192.0.2.1", 0)  # TEST-NET-1: never local; binding sends nothing
    assert info.value.setting == "HOMEIQ_API_HOST"
    assert "192.0.2.1 is not an address of this machine" in str(info.value)


def test_bind_gives_a_listening_socket_and_its_url() -> None:
    sock = bind("127.0.0.1", 0)
    try:
        with socket.create_connection(sock.getsockname()[:2], timeout=5):
            pass  # accepted into the backlog before any server runs
        assert url_of(sock).startswith("http://127.0.0.1:")
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("homeiq.lan", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


async def test_a_non_loopback_host_is_warned_about(
    make_api: ApiFactory, caplog: pytest.LogCaptureFixture
) -> None:
    api = await make_api(api_host="0.0.0.0")
    # Bound to loopback all the same: no test listens beyond this machine.
    server = ApiServer(api.app, bind("127.0.0.1", 0), api.runtime.settings)
    with caplog.at_level(logging.WARNING, logger="homeiq.api.server"):
        await server.start()
        await server.stop()
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "0.0.0.0" in warning.getMessage()
    assert "exposed to the network" in warning.getMessage()


async def test_a_loopback_host_is_not_warned_about(
    make_api: ApiFactory, caplog: pytest.LogCaptureFixture
) -> None:
    api = await make_api()
    server = ApiServer(api.app, bind("127.0.0.1", 0), api.runtime.settings)
    with caplog.at_level(logging.WARNING, logger="homeiq.api.server"):
        await server.start()
        await server.stop()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
