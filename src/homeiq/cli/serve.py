"""``homeiq run`` and ``homeiq demo``: one serve loop for both.

Both bind the API's socket first (a port in use fails before anything touches the
disk), take the data directory's lock (a second HomeIQ is refused before it prints
anything), build the runtime, start it and the API, and stop in the one safe order:
the API first (no request may use a store while it closes), then the runtime. What
differs — where Home Assistant is, what is printed — is a :class:`Session`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets
import signal
import socket
import sys
import time
from typing import TYPE_CHECKING

from homeiq.errors import HomeIQError
from homeiq.lockfile import DataDirLock
from homeiq.settings import Settings

if TYPE_CHECKING:
    from homeiq.api.server import ApiServer
    from homeiq.ha.simulator import Simulator
    from homeiq.runtime import Runtime

log = logging.getLogger("homeiq")

RUN_EPILOG = """\
settings it needs (environment variables, or keys of the TOML file in HOMEIQ_CONFIG):
  HOMEIQ_HA_URL         Home Assistant's URL, e.g. http://homeassistant.local:8123
  HOMEIQ_HA_TOKEN       a long-lived access token (or HOMEIQ_HA_TOKEN_FILE naming a file)
  HOMEIQ_DATA_DIR       where the data lives (default ./homeiq-data)
  HOMEIQ_STORE          sqlite (default) or influxdb (then HOMEIQ_INFLUXDB_URL, ...)
  HOMEIQ_API_PORT       port of the HTTP API (default 8642; HOMEIQ_API_ENABLED=false: none)
every setting: docs/settings.md, or `homeiq config show` for the effective values"""


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


class Session:
    """What one serving command adds to the loop; these defaults are ``run``'s."""

    tick_s: float | None = None  # seconds between tick() calls; None: no ticks

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def open(self) -> tuple[str, str]:
        """Home Assistant's URL and token."""
        from homeiq.runtime import ha_source

        return ha_source(self.settings)

    def banner(self, runtime: Runtime, sock: socket.socket | None) -> None:
        """Say where things are, once the data directory is ours."""
        log.info("storing events in %s", self.settings.data_dir.resolve())

    async def connected(self, runtime: Runtime, waiter: asyncio.Task[None]) -> None:
        """Called once the runtime started, before the API serves."""

    def tick(self, runtime: Runtime) -> None:
        """Called every ``tick_s`` seconds while serving."""

    async def stopping(self, runtime: Runtime) -> None:
        """Called when asked to stop, before the source stops."""

    async def close(self) -> None:
        """Release what :meth:`open` made (always called)."""

    def summary(self, runtime: Runtime) -> None:
        """Report once everything stopped."""
        stats = runtime.stats()
        log.info("stopped: %d stored, %d rejected", stats.stored, stats.rejected)


async def serve(settings: Settings, session: Session, api_socket: socket.socket | None) -> None:
    """Run the runtime (and the API on ``api_socket``) until a signal or a failure."""
    stop = asyncio.Event()
    _install_signal_handlers(stop)
    # The lock before anything else: a second HomeIQ on this data directory is refused
    # before it starts a simulator, prints a banner or opens a store.
    lock = DataDirLock(settings.data_dir)
    lock.acquire()
    try:
        url, token = await session.open()
        from homeiq.runtime import Runtime  # the whole pipeline: only serving needs it

        runtime = Runtime(settings)
        runtime.lock = lock  # held already: start() finds it taken by this process
        if api_socket is not None:
            from homeiq.api.auth import ensure_admin_key

            ensure_admin_key(runtime.metadata, settings.data_dir)
        runtime.connect_to(url, token)
        session.banner(runtime, api_socket)
        await runtime.start()
        await _serve_started(runtime, session, api_socket, stop)
    finally:
        lock.release()  # a no-op when runtime.stop() released it
        await session.close()
    session.summary(runtime)


async def _serve_started(
    runtime: Runtime, session: Session, api_socket: socket.socket | None, stop: asyncio.Event
) -> None:
    api: ApiServer | None = None
    waiter = asyncio.create_task(runtime.wait())
    stopper = asyncio.create_task(stop.wait())
    try:
        await session.connected(runtime, waiter)
        if api_socket is not None:  # its socket already queues clients
            from homeiq.api.server import serve as serve_api

            api = await serve_api(runtime, api_socket)
        while not stopper.done() and not waiter.done():
            await asyncio.wait(
                {waiter, stopper}, timeout=session.tick_s, return_when=asyncio.FIRST_COMPLETED
            )
            if session.tick_s is not None:  # also when stopping: a last live line
                session.tick(runtime)
        if waiter.done():
            waiter.result()  # a component failed: its error is the command's
    finally:
        stopper.cancel()
        await session.stopping(runtime)
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError, HomeIQError):
            await waiter
        if api is not None:
            await api.stop()  # first: no request may use a store while it closes
        log.info("stopping: flushing queued events")
        await runtime.stop()


def _serve_command(settings: Settings, session: Session) -> int:
    """Bind the API's socket, then serve; the socket is closed whatever happens."""
    sock = None
    if settings.api.enabled:
        # Imported here, not in the event loop: FastAPI takes half a second to import,
        # and the loop would stall for it while Home Assistant is already streaming.
        from homeiq.api.server import api_socket

        sock = api_socket(settings)
    try:
        asyncio.run(serve(settings, session, sock))
    finally:
        if sock is not None:
            sock.close()  # already closed when the API ran; not when startup failed
    return 0


def cmd_run(settings: Settings, _args: argparse.Namespace) -> int:
    """Capture Home Assistant state changes until stopped."""
    from homeiq.runtime import ha_source

    ha_source(settings)  # a missing URL or token fails before anything is created on disk
    return _serve_command(settings, Session(settings))


class DemoSession(Session):
    """The demo: a simulated home, a banner, a live line every second, a summary."""

    tick_s = 1.0

    def __init__(self, settings: Settings, args: argparse.Namespace) -> None:
        super().__init__(settings)
        self.args = args
        self.sim: Simulator | None = None
        self.sent = 0
        self._last_stored, self._last_tick = 0, time.monotonic()

    async def open(self) -> tuple[str, str]:
        from homeiq.ha.simulator import Simulator  # the simulator is only needed here

        sim = Simulator(seed=self.args.seed, rate=self.args.rate, token=secrets.token_urlsafe(32))
        await sim.start()
        self.sim = sim
        # The home holds still until HomeIQ is subscribed, so every change it makes is seen.
        sim.pause()
        return sim.url, sim.token

    def banner(self, runtime: Runtime, sock: socket.socket | None) -> None:
        assert self.sim is not None
        data_dir = self.settings.data_dir.resolve()
        print(f"HomeIQ demo: simulated home at {self.sim.url}, storing in {data_dir}")
        if sock is not None:
            print(_api_line(runtime, sock))
        print("Press Ctrl-C to stop.", flush=True)

    async def connected(self, runtime: Runtime, waiter: asyncio.Task[None]) -> None:
        assert runtime.client is not None and self.sim is not None
        connected = asyncio.ensure_future(runtime.client.connected.wait())
        await asyncio.wait({connected, waiter}, return_when=asyncio.FIRST_COMPLETED)
        connected.cancel()
        self.sim.resume()
        self._last_tick = time.monotonic()

    def tick(self, runtime: Runtime) -> None:
        now, stats = time.monotonic(), runtime.stats()
        rate = (stats.stored - self._last_stored) / max(now - self._last_tick, 1e-6)
        self._last_stored, self._last_tick = stats.stored, now
        spooled = _spooled(runtime)
        line = (
            f"{rate:8.0f} events/s | stored {stats.stored:>9} | entities {stats.entities:>4}"
            f" | rejected {stats.rejected:>5} | queue {stats.queue_depth:>6}"
            + (f" | spooled {spooled:>6}" if spooled else "")
            + f" | {'connected' if stats.ha_connected else 'connecting'}"
        )
        print("\r" + line, end="", flush=True) if sys.stdout.isatty() else print(line, flush=True)

    async def stopping(self, runtime: Runtime) -> None:
        print()
        if self.sim is None:
            return
        # Let every event the simulator already sent arrive before the source stops.
        self.sim.pause()
        deadline = time.monotonic() + 3.0
        self.sent = self.sim.stats.delivered
        # Counters have no event to wait on: poll them briefly.
        while runtime.stats().received < self.sent and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        if self.sim is not None:
            await self.sim.stop()

    def summary(self, runtime: Runtime) -> None:
        stats = runtime.stats()
        backfilled = int(
            runtime.metrics.value("homeiq_backfill_events_total", {"outcome": "stored"})
        )
        spooled = _spooled(runtime)
        # Stored beyond what the simulator sent is named: the states recorded as the
        # baseline at connect (ha/snapshot.py) and what backfill fetched after a restart.
        parts = []
        if runtime.snapshot.recorded:
            parts.append(f"{runtime.snapshot.recorded} baseline states")
        if backfilled:
            parts.append(f"{backfilled} backfilled from Home Assistant's history")
        stored = f"stored {stats.stored}" + (f" ({', '.join(parts)})" if parts else "")
        if spooled:
            stored += f", spooled {spooled} (kept on disk; written when the store is back)"
        print(
            f"Stopped. Simulator sent {self.sent} events; {stored},"
            f" duplicates {stats.duplicates}, rejected {stats.rejected}."
        )


def _spooled(runtime: Runtime) -> int:
    """Events waiting in the on-disk spool for the store to come back."""
    return int(runtime.metrics.value("homeiq_spool_events"))


def _api_line(runtime: Runtime, sock: socket.socket) -> str:
    """Where the demo's API is and where its admin key is."""
    from homeiq.api.auth import ADMIN_KEY_FILE
    from homeiq.api.server import url_of

    key_file = (runtime.settings.data_dir / ADMIN_KEY_FILE).resolve()
    where = (
        f"admin key in {key_file}"
        if key_file.exists()
        else "no admin.key (create a key: homeiq keys create --name NAME --scope admin)"
    )
    return f"API at {url_of(sock)}/api/v1 ({where})"


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    """Run a simulated home and ingest it into the embedded store."""
    return _serve_command(settings, DemoSession(settings, args))


def _rate(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 (as fast as possible) or more")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``run`` and ``demo`` to the ``homeiq`` parser."""
    p = sub.add_parser(
        "run",
        help="capture a real Home Assistant (HOMEIQ_HA_URL, _TOKEN)",
        description="Capture every state change of a Home Assistant until stopped (Ctrl-C,\n"
        "SIGTERM), and serve the HTTP API.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=cmd_run, writes_data_dir=True, serves=True)

    p = sub.add_parser("demo", help="ingest a built-in simulated home into the embedded store")
    p.add_argument("--rate", type=_rate, default=50.0, help="events/s (0 = as fast as possible)")
    p.add_argument("--seed", type=int, default=1, help="seed of the simulated home")
    p.set_defaults(func=cmd_demo, writes_data_dir=True, serves=True)
