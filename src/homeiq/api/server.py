"""Serving the API from the HomeIQ process: uvicorn as one more task in its event loop.

The socket is bound before anything else starts, so a port in use fails startup at
once with a message naming ``HOMEIQ_API_PORT`` (uvicorn would log and ``sys.exit``).
uvicorn's own signal handling is off: HomeIQ's handlers decide when to stop, and stop
the API first, so no request touches a store while it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import secrets
import socket
from collections.abc import Iterator

import h11
import orjson
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from homeiq.api.app import create_app
from homeiq.api.context import ApiHost
from homeiq.api.errors import error_body
from homeiq.api.middleware import MAX_HEADER_BYTES, REQUEST_ID_HEADER, SECURITY_HEADERS
from homeiq.errors import ConfigError
from homeiq.settings import Settings

log = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_S = 5.0
STARTUP_TIMEOUT_S = 10.0


def is_loopback(host: str) -> bool:
    """True when ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; ConfigError naming the setting if impossible."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError("HOMEIQ_API_HOST", f"cannot resolve {host!r}: {exc}") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        # Listening now (not when uvicorn starts) queues early connections instead of
        # refusing them.
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                "HOMEIQ_API_PORT",
                f"port {port} on {host} is already in use; choose another with HOMEIQ_API_PORT",
            ) from exc
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(
                "HOMEIQ_API_HOST", f"{host} is not an address of this machine"
            ) from exc
        raise ConfigError(
            "HOMEIQ_API_PORT", f"cannot listen on {host}:{port}: {exc.strerror}"
        ) from exc
    sock.setblocking(False)
    return sock


def api_socket(settings: Settings) -> socket.socket | None:
    """The API's listening socket as configured; None when ``HOMEIQ_API_ENABLED`` is off.

    Bound before anything else starts, so a port in use fails startup at once.
    """
    if not settings.api.enabled:
        return None
    return bind(settings.api.host, settings.api.port)


def url_of(sock: socket.socket) -> str:
    """The API's base URL for people (``http://host:port``)."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class JsonErrorsH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, answering a request it cannot parse (a bad Content-Length,
    a raw byte above 0x7f in the request line, headers past the limit while arriving) in
    the API's one JSON error shape instead of uvicorn's plain text."""

    def send_400_response(self, msg: str) -> None:
        """Write the 400 and close, as uvicorn does, with a JSON body and a request id."""
        request_id = secrets.token_hex(16)
        log.warning("unparseable HTTP request (request_id=%s)", request_id)
        body = orjson.dumps(error_body("bad_request", "malformed HTTP request", request_id))
        headers = [
            (b"content-type", b"application/json"),
            (b"connection", b"close"),
            (REQUEST_ID_HEADER.lower().encode(), request_id.encode()),
            *((name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()),
        ]
        try:
            for event in (
                h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                h11.Data(data=body),
                h11.EndOfMessage(),
            ):
                self.transport.write(self.conn.send(event))
        except h11.LocalProtocolError:
            pass  # a response was under way already: closing is all that is left
        self.transport.close()


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn replaces SIGINT/SIGTERM handlers while it serves; HomeIQ's own
        # handlers must stay in charge of the shutdown order.
        yield


class ApiServer:
    """uvicorn serving ``app`` on an already bound socket, inside the running loop."""

    def __init__(self, app: FastAPI, sock: socket.socket, settings: Settings) -> None:
        self.sock = sock
        self.url = url_of(sock)
        self.settings = settings
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,  # HomeIQ configured logging already
            access_log=False,  # no line per request; request ids are in error logs
            server_header=False,
            http=JsonErrorsH11Protocol,
            # A request still arriving is cut at this size (one arriving in a single
            # write is checked by the edge middleware, against the same limit).
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
            # X-Forwarded-For is believed only from the configured proxies; uvicorn
            # would trust loopback by default, letting any local client forge it.
            proxy_headers=bool(settings.api.trusted_proxies),
            forwarded_allow_ips=list(settings.api.trusted_proxies),
            ws="none",
            timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN_S),
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start serving; returns once uvicorn accepts connections."""
        host = self.settings.api.host
        if not is_loopback(host):
            log.warning(
                "the API listens on %s port %d: it is exposed to the network (HOMEIQ_API_HOST)."
                " Keep keys secret and put TLS in front of it, or bind 127.0.0.1",
                host,
                self.sock.getsockname()[1],
            )
        self._task = asyncio.create_task(self._server.serve(sockets=[self.sock]), name="api")
        # uvicorn has no event for "started"; its flag flips within a few ms.
        deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if self._task.done():
                await self._task  # raises what stopped it
                raise RuntimeError("the API server stopped while starting")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError("the API server did not start in time")
            await asyncio.sleep(0.01)
        log.info("API listening on %s/api/v1", self.url)

    async def stop(self) -> None:
        """Finish requests in flight (up to a deadline), then close the socket."""
        if self._task is None:
            self.sock.close()
            return
        self._server.should_exit = True
        try:
            await self._task
        except (Exception, SystemExit) as exc:  # uvicorn exits the process on some errors
            log.error("the API server failed: %s", exc)
        finally:
            self._task = None
            self.sock.close()


async def serve(host: ApiHost, sock: socket.socket) -> ApiServer:
    """Build the app over ``host`` and serve it on ``sock``; returns the started server."""
    server = ApiServer(create_app(host), sock, host.settings)
    await server.start()
    return server
