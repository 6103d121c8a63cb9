"""The :class:`Simulator` itself: the parts put together, the HTTP server and its lifecycle."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Self

from aiohttp import web

from homeiq.ha.simulator.connection import CLOSE_TIMEOUT_S
from homeiq.ha.simulator.defects import Defects
from homeiq.ha.simulator.hooks import Hooks
from homeiq.ha.simulator.protocol import WebSocketAPI
from homeiq.ha.simulator.record import SimStats
from homeiq.ha.simulator.rest import RestAPI
from homeiq.observability.logging import cancel_and_wait

# One logger for the whole simulator package.
log = logging.getLogger("homeiq.ha.simulator")


class Simulator(Hooks, RestAPI, WebSocketAPI):
    """A fake Home Assistant 2024.3.3: WebSocket API, REST history and a generated home.

    ``rate`` is state_changed events per second, or 0 for as fast as the subscribers take
    them (rate 0 idles while nobody is subscribed to state_changed). ``count`` stops the
    stream after that many generated events; connections stay open. ``defects`` plants
    known data-quality defects and runs on simulated time (:mod:`.defects`).
    """

    def __init__(
        self,
        *,
        seed: int = 1,
        token: str = "sim-token",  # noqa: S107 - a throw-away token for a local fake
        rate: float = 10.0,
        count: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        entities: int = 160,
        history_keep_s: float = 86400.0,
        defects: bool = False,
    ) -> None:
        super().__init__(
            seed=seed,
            token=token,
            rate=rate,
            count=count,
            entities=entities,
            history_keep_s=history_keep_s,
            defects=defects,
        )
        if defects:
            self.defects = Defects(self, seed)
        self.host = host
        self.port = port
        # Per-message deflate costs more CPU than the whole simulator; HA would negotiate it.
        self.compress = False
        self._handlers = set()
        self._task: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self._bound_port = 0

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the HTTP server and start the event stream."""
        app = web.Application()
        app.router.add_get("/api/websocket", self._ws_handler)
        app.router.add_get("/api/", self._api_root)
        app.router.add_get("/api/config", self._api_config)
        app.router.add_get("/api/states", self._api_states)
        app.router.add_get("/api/states/{entity_id}", self._api_state_get)
        app.router.add_post("/api/states/{entity_id}", self._api_state_post)
        app.router.add_delete("/api/states/{entity_id}", self._api_state_delete)
        app.router.add_get("/api/history/period", self._api_history)
        app.router.add_get("/api/history/period/{start}", self._api_history)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=CLOSE_TIMEOUT_S)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self._bound_port = sockets[0].getsockname()[1] if sockets else self.port
        self._task = asyncio.create_task(self._run(), name="homeiq-simulator")
        log.info("simulated Home Assistant at %s (%d entities)", self.url, len(self._entities))

    async def stop(self) -> None:
        """Stop generating, close every connection and the server; leaves no task behind."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        conns = list(self._conns)
        for conn in conns:
            conn.closing = True
        if conns:
            closing = [asyncio.ensure_future(c.ws.close()) for c in conns]
            _, pending = await asyncio.wait(closing, timeout=CLOSE_TIMEOUT_S)
            for fut in pending:
                fut.cancel()
            await asyncio.gather(*closing, return_exceptions=True)
            for conn in conns:
                conn.abort()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=CLOSE_TIMEOUT_S)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for _, waiter in self._waiters:
            waiter.cancel()
        self._waiters.clear()

    async def __aenter__(self) -> Self:
        """Start on entering ``async with``."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop on leaving ``async with``."""
        await self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8123``."""
        return f"http://{self.host}:{self._bound_port}"

    @property
    def ws_url(self) -> str:
        """The WebSocket API URL."""
        return f"ws://{self.host}:{self._bound_port}/api/websocket"

    @property
    def rate(self) -> float:
        """Events per second; 0 is as fast as subscribers take them."""
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        if value < 0:
            raise ValueError("rate must be >= 0")
        self._rate = float(value)
        self._rebase = True

    @property
    def entity_ids(self) -> list[str]:
        """Entities that currently have a state."""
        return [e.entity_id for e in self._entities if not e.removed]

    @property
    def owner_user_id(self) -> str:
        """The user the token belongs to; REST writes and service calls carry it."""
        return self.home.owner_user_id

    @property
    def stats(self) -> SimStats:
        """Counters; ``events`` is read from the record, so it is always exact."""
        self._stats.events = len(self.emitted)
        return self._stats

    @property
    def emitted_count(self) -> int:
        """How many state_changed were emitted, whether or not anyone was subscribed."""
        return len(self.emitted)

    @property
    def active_connections(self) -> int:
        """WebSocket connections currently open."""
        return len(self._conns)

    @property
    def state_subscribers(self) -> int:
        """Subscriptions to state_changed right now (tests wait for a client's)."""
        return len(self._sc_targets)

    @property
    def finished(self) -> bool:
        """True once ``count`` events were generated."""
        return self._finished.is_set()

    @property
    def paused(self) -> bool:
        """True while the stream is paused."""
        return not self._running.is_set()


async def serve(
    *,
    seed: int = 1,
    token: str = "sim-token",  # noqa: S107 - a throw-away token for a local fake
    rate: float = 10.0,
    count: int | None = None,
    host: str = "127.0.0.1",
    port: int = 8123,
    entities: int = 160,
    history_keep_s: float = 86400.0,
) -> None:
    """Run a simulator until cancelled (``homeiq simulate``)."""
    async with Simulator(
        seed=seed,
        token=token,
        rate=rate,
        count=count,
        host=host,
        port=port,
        entities=entities,
        history_keep_s=history_keep_s,
    ) as sim:
        log.info("simulator ready: %s", sim.ws_url)
        await asyncio.Event().wait()
