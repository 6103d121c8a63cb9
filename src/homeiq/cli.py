"""The ``homeiq`` command: run, demo, simulate, query, status, keys, config show.

Each command is a small function over the runtime or the stores; exit codes are 0 for
success, 1 for a runtime failure, 2 for bad configuration or usage. ``run`` and ``demo``
also serve the HTTP API; the API modules are imported only by the commands that need
them, so the reading commands start fast.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import secrets
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from tqdm import tqdm

from homeiq.api.scopes import SCOPES
from homeiq.errors import AuthenticationFailed, ConfigError, HomeIQError
from homeiq.maintenance.backup.crypto import new_identity
from homeiq.maintenance.backup.service import BackupService
from homeiq.maintenance.rollups import RollupStore
from homeiq.maintenance.statistics import RollupMaintainer, rebuild_range
from homeiq.metadata.store import METADATA_DB, MetadataStore
from homeiq.observability.logging import setup_logging
from homeiq.observability.metrics import Metrics
from homeiq.pipeline.normalize import format_time_us
from homeiq.runtime import Runtime, ha_source
from homeiq.settings import Settings, load_settings, redacted, secret_fields
from homeiq.sinks.base import EventReader
from homeiq.sinks.influxdb import InfluxDBReader
from homeiq.sinks.sqlite import EVENTS_DB, AsyncStore, SQLiteEventStore

if TYPE_CHECKING:
    from homeiq.api.server import ApiServer

T = TypeVar("T")

log = logging.getLogger("homeiq")

_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_SPAN_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: float | None = None) -> int:
    """``1h``/``30m``/``2d``/``1w``/``45s`` ago, or an ISO 8601 time -> microseconds."""
    now = time.time() if now is None else now
    match = _SPAN.fullmatch(text.strip())
    if match:
        return int((now - float(match[1]) * _SPAN_S[match[2]]) * 1_000_000)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a span like 1h/30m/2d nor an ISO 8601 time"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1_000_000)


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


def _api_socket(settings: Settings) -> socket.socket | None:
    """The API's socket, bound before anything starts (a port in use: exit 2 at once)."""
    if not settings.api_enabled:
        return None
    # Imported here, not in the event loop: FastAPI takes half a second to import, and
    # the loop would stall for it while Home Assistant is already streaming.
    from homeiq.api.server import api_socket

    return api_socket(settings)


def _first_admin_key(runtime: Runtime) -> None:
    from homeiq.api.auth import ensure_admin_key

    ensure_admin_key(runtime.metadata, runtime.settings.data_dir)


async def _start_api(runtime: Runtime, sock: socket.socket | None) -> ApiServer | None:
    if sock is None:
        return None
    from homeiq.api.server import serve

    return await serve(runtime, sock)


async def _run_until_signal(runtime: Runtime, api_socket: socket.socket | None = None) -> None:
    stop = asyncio.Event()
    _install_signal_handlers(stop)
    await runtime.start()
    api: ApiServer | None = None
    waiter = asyncio.create_task(runtime.wait())
    stopper = asyncio.create_task(stop.wait())
    try:
        api = await _start_api(runtime, api_socket)
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if waiter.done():
            waiter.result()
    finally:
        stopper.cancel()
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError, HomeIQError):
            await waiter
        if api is not None:
            await api.stop()  # first: no request may use a store while it closes
        log.info("stopping: flushing queued events")
        await runtime.stop()
        stats = runtime.stats()
        log.info("stopped: %d stored, %d rejected", stats.stored, stats.rejected)


def cmd_run(settings: Settings, _args: argparse.Namespace) -> int:
    """Capture Home Assistant state changes until stopped."""
    url, token = ha_source(settings)  # before anything is created on disk
    sock = _api_socket(settings)
    try:
        runtime = Runtime(settings)
        if sock is not None:
            _first_admin_key(runtime)
        runtime.connect_to(url, token)
        log.info("storing events in %s", settings.data_dir.resolve())
        asyncio.run(_run_until_signal(runtime, sock))
    finally:
        if sock is not None:
            sock.close()  # already closed when the API ran; not when startup failed
    return 0


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


async def _demo(
    settings: Settings, args: argparse.Namespace, api_socket: socket.socket | None = None
) -> None:
    from homeiq.ha.simulator import Simulator  # the simulator is only needed here

    stop = asyncio.Event()
    _install_signal_handlers(stop)
    sim = Simulator(seed=args.seed, rate=args.rate, token=secrets.token_urlsafe(32))
    await sim.start()
    # The home holds still until HomeIQ is subscribed, so every change it makes is seen.
    sim.pause()
    runtime = Runtime(settings)
    if api_socket is not None:
        _first_admin_key(runtime)
    runtime.connect_to(sim.url, sim.token)
    print(f"HomeIQ demo: simulated home at {sim.url}, storing in {settings.data_dir.resolve()}")
    if api_socket is not None:
        print(_api_line(runtime, api_socket))
    print("Press Ctrl-C to stop.")
    await runtime.start()
    api: ApiServer | None = None
    waiter = asyncio.create_task(runtime.wait())
    last_stored, last_tick = 0, time.monotonic()
    try:
        assert runtime.client is not None
        connected = asyncio.ensure_future(runtime.client.connected.wait())
        await asyncio.wait({connected, waiter}, return_when=asyncio.FIRST_COMPLETED)
        connected.cancel()
        sim.resume()
        api = await _start_api(runtime, api_socket)  # its socket already queues clients
        while not stop.is_set() and not waiter.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            now, stats = time.monotonic(), runtime.stats()
            rate = (stats.stored - last_stored) / max(now - last_tick, 1e-6)
            last_stored, last_tick = stats.stored, now
            line = (
                f"{rate:8.0f} events/s | stored {stats.stored:>9} | entities {stats.entities:>4}"
                f" | rejected {stats.rejected:>5} | queue {stats.queue_depth:>6}"
                f" | {'connected' if stats.ha_connected else 'connecting'}"
            )
            print("\r" + line, end="", flush=True) if sys.stdout.isatty() else print(line)
    finally:
        print()
        # Let every event the simulator already sent arrive before the source stops.
        sim.pause()
        deadline = time.monotonic() + 3.0
        # Counters have no event to wait on: poll them briefly.
        sent = sim.stats.delivered
        while runtime.stats().received < sent and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError, HomeIQError):
            await waiter
        if api is not None:
            await api.stop()
        await runtime.stop()
        await sim.stop()
        stats = runtime.stats()
        print(
            f"Stopped. Simulator sent {sent} events; stored {stats.stored},"
            f" duplicates {stats.duplicates}, rejected {stats.rejected}."
        )


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    """Run a simulated home and ingest it into the embedded store."""
    sock = _api_socket(settings)
    try:
        asyncio.run(_demo(settings, args, sock))
    finally:
        if sock is not None:
            sock.close()
    return 0


def cmd_simulate(_settings: Settings, args: argparse.Namespace) -> int:
    """Run the simulated Home Assistant on its own."""
    from homeiq.ha.simulator import serve

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve(
                seed=args.seed,
                token=args.token,
                rate=args.rate,
                count=args.count,
                host=args.host,
                port=args.port,
            )
        )
    return 0


def _read(settings: Settings, query: Callable[[EventReader], Coroutine[Any, Any, T]]) -> T:
    """Run one query against the configured store, read-only."""
    if settings.store == "influxdb":

        async def over_http() -> T:
            reader = InfluxDBReader.from_settings(settings)
            try:
                return await query(reader)
            finally:
                await reader.close()

        return asyncio.run(over_http())
    path = settings.data_dir / EVENTS_DB
    if not path.exists():
        raise ConfigError("HOMEIQ_DATA_DIR", f"no event store at {path} (run homeiq first)")
    store = SQLiteEventStore(path, readonly=True)
    try:
        return asyncio.run(query(AsyncStore(store)))
    finally:
        store.close()


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def cmd_query(settings: Settings, args: argparse.Namespace) -> int:
    """Print an entity's stored history as a table."""
    records = _read(
        settings, lambda reader: reader.history(args.entity_id, args.since, args.until, args.limit)
    )
    if not records:
        print(f"no events for {args.entity_id} in that range")
        return 0
    rows = [
        (
            format_time_us(r.time),
            "(removed)" if r.state is None else r.state,
            r.previous_state,
            None if r.duration_in_state_s is None else f"{r.duration_in_state_s:.1f}",
            r.area_id,
            r.context_id,
            r.source.name.lower(),
        )
        for r in records
    ]
    headers = ("time", "state", "previous", "prev_s", "area", "context_id", "source")
    print(_table(headers, rows))
    return 0


def cmd_status(settings: Settings, _args: argparse.Namespace) -> int:
    """Print counts per domain and area and the last event time."""
    summary = _read(settings, lambda reader: reader.summary())
    rejected: dict[str, int] = {}
    if (settings.data_dir / METADATA_DB).exists():
        meta = MetadataStore.in_dir(settings.data_dir, readonly=True)
        try:
            rejected = meta.dead_letter_counts()
        finally:
            meta.close()
    last = format_time_us(summary.last_time) if summary.last_time is not None else "never"
    print(f"events stored: {summary.total}  entities: {summary.entities}  last event: {last}")
    print()
    print(_table(("domain", "events"), sorted(summary.by_domain.items())))
    print()
    print(_table(("area", "events"), sorted(summary.by_area.items())))
    print()
    print(_table(("source", "events"), sorted(summary.by_source.items())))
    if rejected:
        print()
        print(_table(("dead-letter reason", "messages"), sorted(rejected.items())))
    return 0


def _when(time_us: int | None) -> str | None:
    if time_us is None:
        return None
    return datetime.fromtimestamp(time_us / 1_000_000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def cmd_keys_create(settings: Settings, args: argparse.Namespace) -> int:
    """Create an API key and print it (the only time it is shown)."""
    from homeiq.api.auth import create_key

    metadata = MetadataStore.in_dir(settings.data_dir)
    try:
        key, stored = create_key(metadata, args.name, args.scope)
    except ValueError as exc:
        print(f"homeiq: {exc}", file=sys.stderr)
        return 2
    finally:
        metadata.close()
    print(key)  # alone on stdout: KEY=$(homeiq keys create ...) works
    print(
        f"key {stored.id} ({stored.name}, scopes {' '.join(stored.scopes)}) created;"
        " store it now, it is not shown again",
        file=sys.stderr,
    )
    return 0


def _existing_metadata(settings: Settings) -> MetadataStore:
    path = settings.data_dir / METADATA_DB
    if not path.exists():
        raise ConfigError("HOMEIQ_DATA_DIR", f"no metadata at {path} (run homeiq first)")
    return MetadataStore.in_dir(settings.data_dir)


def cmd_keys_list(settings: Settings, _args: argparse.Namespace) -> int:
    """Print every API key's record (never the keys)."""
    metadata = _existing_metadata(settings)
    try:
        keys = metadata.api_keys()
    finally:
        metadata.close()
    if not keys:
        print("no API keys")
        return 0
    rows = [
        (
            k.id,
            k.name,
            " ".join(k.scopes),
            _when(k.created_at),
            _when(k.last_used_at),
            _when(k.revoked_at) or "",
        )
        for k in keys
    ]
    print(_table(("id", "name", "scopes", "created", "last used", "revoked"), rows))
    return 0


def cmd_keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    """Revoke an API key at once."""
    metadata = _existing_metadata(settings)
    try:
        before = metadata.api_key(args.key_id)
        revoked = metadata.revoke_api_key(args.key_id, time.time_ns() // 1000)
    finally:
        metadata.close()
    if before is None or revoked is None:
        print(f"homeiq: no API key with id {args.key_id}", file=sys.stderr)
        return 1
    if before.revoked:
        print(f"key {revoked.id} ({revoked.name}) was already revoked")
    else:
        print(f"revoked key {revoked.id} ({revoked.name})")
    return 0


def cmd_rollups_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    """Recompute the statistics rollups from the stored events."""
    end = int(time.time() * 1_000_000)
    start = args.since

    async def rebuild(reader: EventReader) -> tuple[int, int]:
        store = RollupStore.in_dir(settings.data_dir)
        try:
            maintainer = RollupMaintainer(reader, store)
            return await rebuild_range(maintainer, start, end, args.entity or None)
        finally:
            store.close()

    entities, buckets = _read(settings, rebuild)
    print(f"rebuilt {buckets} buckets of {entities} entities since {format_time_us(start)}")
    return 0


def cmd_config_show(settings: Settings, _args: argparse.Namespace) -> int:
    """Print the effective settings, secrets redacted."""
    print(orjson.dumps(redacted(settings), option=orjson.OPT_INDENT_2).decode())
    return 0


class _Bars:
    """Progress bars on stderr for the long steps of a backup (one bar per step); quiet
    when stderr is not a terminal, as in cron jobs and logs."""

    def __init__(self) -> None:
        self._bars: dict[str, Any] = {}  # tqdm bars (its stubs type the iterable)
        # No monitor thread: it only tames bars updated too rarely, and would outlive us.
        tqdm.monitor_interval = 0

    def __call__(self, step: str, done: int, total: int | None) -> None:
        bar = self._bars.get(step)
        if bar is None:
            for other in self._bars.values():
                other.close()
            unit = "B" if step.startswith(("snapshot", "pack", "checksum", "copy")) else "it"
            bar = self._bars[step] = tqdm(
                total=total, desc=step, unit=unit, unit_scale=True, leave=False,
                file=sys.stderr, disable=None,
            )  # fmt: skip
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()


def _backup_service(settings: Settings) -> tuple[BackupService, MetadataStore | None]:
    metadata = None
    if (settings.data_dir / METADATA_DB).exists():
        metadata = MetadataStore.in_dir(settings.data_dir)
    return BackupService(settings, metadata=metadata, metrics=Metrics()), metadata


def _with_backups(
    settings: Settings, work: Callable[[BackupService, _Bars], Coroutine[Any, Any, int]]
) -> int:
    service, metadata = _backup_service(settings)
    bars = _Bars()
    try:
        return asyncio.run(work(service, bars))
    finally:
        bars.close()
        if metadata is not None:
            metadata.close()


def cmd_backup_create(settings: Settings, args: argparse.Namespace) -> int:
    """Make an archive now and copy it to the targets."""

    async def work(service: BackupService, bars: _Bars) -> int:
        result = await service.create(targets=args.target or None, progress=bars)
        bars.close()
        print(
            f"{result.name}: {result.bytes:,} bytes, sha256 {result.sha256}, {result.seconds:.1f} s"
        )
        for copy in result.copies:
            print(f"  {copy.target}: {'ok' if copy.ok else 'FAILED: ' + copy.detail}")
        return 0 if result.ok else 1

    return _with_backups(settings, work)


def cmd_backup_list(settings: Settings, _args: argparse.Namespace) -> int:
    """List the archives on every target."""

    async def work(service: BackupService, _bars: _Bars) -> int:
        for label, archives in (await service.archives()).items():
            print(f"{label}: {len(archives)} archive(s)")
            for a in archives:
                print(f"  {a.name}  {a.size:>14,} bytes  sha256 {a.sha256 or '?'}")
        return 0

    return _with_backups(settings, work)


def cmd_backup_verify(settings: Settings, args: argparse.Namespace) -> int:
    """Decrypt an archive, check it whole, and restore it into a scratch place."""

    async def work(service: BackupService, bars: _Bars) -> int:
        report = await service.verify(
            args.archive, identity=args.identity, test_restore=not args.no_test_restore,
            progress=bars,
        )  # fmt: skip
        bars.close()
        for line in report.checked:
            print(f"ok: {line}")
        for problem in report.problems:
            print(f"PROBLEM: {problem}")
        print(f"{args.archive}: {'verified' if report.ok else 'FAILED verification'}")
        return 0 if report.ok else 1

    return _with_backups(settings, work)


def cmd_backup_restore(settings: Settings, args: argparse.Namespace) -> int:
    """Replace this installation's data with an archive's (current data kept aside)."""

    async def work(service: BackupService, bars: _Bars) -> int:
        report = await service.restore(
            args.archive, identity=args.identity, dry_run=args.dry_run, stop_running=args.stop,
            influxdb_database=args.influxdb_database, progress=bars,
        )  # fmt: skip
        bars.close()
        m = report.manifest
        print(
            f"archive {args.archive}: made {m.created_at.isoformat()} by HomeIQ"
            f" {m.homeiq_version}, store {m.store}, {m.events.get('count', '?')} events"
        )
        for line in report.restored:
            print(f"  {'would restore' if report.dry_run else 'restored'} {line}")
        if report.kept_aside is not None:
            print(f"the previous data is kept in {report.kept_aside}")
        return 0

    return _with_backups(settings, work)


def cmd_backup_prune(settings: Settings, args: argparse.Namespace) -> int:
    """Delete archives the retention settings do not keep."""

    async def work(service: BackupService, _bars: _Bars) -> int:
        removed = await service.prune(dry_run=args.dry_run)
        verb = "would delete" if args.dry_run else "deleted"
        for label, names in removed.items():
            print(f"{label}: {verb} {len(names)} archive(s)")
            for name in names:
                print(f"  {name}")
        return 0

    return _with_backups(settings, work)


def cmd_backup_keygen(_settings: Settings, args: argparse.Namespace) -> int:
    """Write a new age identity to a file (mode 0600) and print its public key."""
    identity, recipient = new_identity()
    path: Path = args.output
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        print(f"homeiq: {path} exists; not overwriting a key", file=sys.stderr)
        return 1
    with os.fdopen(fd, "w") as f:
        f.write(f"# public key: {recipient}\n{identity}\n")
    print(recipient)
    print(
        f"identity written to {path}: keep it off this machine (verify and restore need it);"
        f" set HOMEIQ_BACKUP_RECIPIENTS={recipient}",
        file=sys.stderr,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to generate docs/cli.md)."""
    parser = argparse.ArgumentParser(
        prog="homeiq",
        description="Home Assistant history and analytics: capture, enrich, store, query.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="capture a real Home Assistant (HOMEIQ_HA_URL, _TOKEN)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="ingest a built-in simulated home into the embedded store")
    p.add_argument("--rate", type=float, default=50.0, help="events/s (0 = as fast as possible)")
    p.add_argument("--seed", type=int, default=1, help="seed of the simulated home")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("simulate", help="run the simulated Home Assistant on its own")
    p.add_argument("--host", default="127.0.0.1", help="address to bind")
    p.add_argument("--port", type=int, default=8123, help="port to bind")
    p.add_argument("--token", default="sim-token", help="access token clients must present")
    p.add_argument("--rate", type=float, default=10.0, help="events/s (0 = as fast as possible)")
    p.add_argument("--count", type=int, default=None, help="stop the stream after N events")
    p.add_argument("--seed", type=int, default=1, help="seed of the simulated home")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("query", help="print an entity's stored history")
    p.add_argument("entity_id", help="e.g. sensor.living_room_temperature")
    p.add_argument("--since", type=parse_since, default=None, help="1h, 30m, 2d or ISO time")
    p.add_argument("--until", type=parse_since, default=None, help="1h, 30m, 2d or ISO time")
    p.add_argument("--limit", type=int, default=1000, help="at most this many rows")
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("status", help="counts per domain and area, last event time")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("keys", help="manage API keys: create, list, revoke")
    keys_sub = p.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = keys_sub.add_parser("create", help="create a key and print it (shown only once)")
    create.add_argument("--name", required=True, help="what the key is for, e.g. grafana")
    create.add_argument(
        "--scope",
        required=True,
        action="append",
        choices=SCOPES,
        help="read, write or admin (admin includes write, write includes read)",
    )
    create.set_defaults(func=cmd_keys_create)
    listing = keys_sub.add_parser("list", help="list keys with their scopes and last use")
    listing.set_defaults(func=cmd_keys_list)
    revoke = keys_sub.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("key_id", type=int, help="the key's id, from keys list")
    revoke.set_defaults(func=cmd_keys_revoke)

    p = sub.add_parser("rollups", help="statistics rollups: rebuild a range")
    rollups_sub = p.add_subparsers(dest="rollups_command", required=True, metavar="ACTION")
    rebuild = rollups_sub.add_parser("rebuild", help="recompute rollups from stored events")
    rebuild.add_argument("--since", type=parse_since, required=True, help="30d, 1w or ISO time")
    rebuild.add_argument(
        "--entity", action="append", help="only this entity (repeatable; default: all)"
    )
    rebuild.set_defaults(func=cmd_rollups_rebuild)

    p = sub.add_parser("backup", help="encrypted backups: create, list, verify, restore, prune")
    backup_sub = p.add_subparsers(dest="backup_command", required=True, metavar="ACTION")
    b = backup_sub.add_parser("create", help="make an archive now and copy it to the targets")
    b.add_argument(
        "--target", action="append", metavar="NAME",
        help="only this target (as listed by `backup list`); repeat for several",
    )  # fmt: skip
    b.set_defaults(func=cmd_backup_create)
    b = backup_sub.add_parser("list", help="list the archives on every target")
    b.set_defaults(func=cmd_backup_list)
    identity_help = "age identity file (default HOMEIQ_BACKUP_IDENTITY_FILE)"
    b = backup_sub.add_parser(
        "verify", help="decrypt, check checksums and counts, test-restore into a scratch place"
    )
    b.add_argument("archive", help="an archive file, or an archive name on a target")
    b.add_argument("--identity", type=Path, metavar="FILE", help=identity_help)
    b.add_argument("--no-test-restore", action="store_true", help="skip the test restore")
    b.set_defaults(func=cmd_backup_verify)
    b = backup_sub.add_parser(
        "restore", help="replace the data with an archive's (the current data is kept aside)"
    )
    b.add_argument("archive", help="an archive file, or an archive name on a target")
    b.add_argument("--identity", type=Path, metavar="FILE", help=identity_help)
    b.add_argument("--dry-run", action="store_true", help="check and show, change nothing")
    b.add_argument("--stop", action="store_true", help="stop a HomeIQ running on the data dir")
    b.add_argument(
        "--influxdb-database", metavar="NAME",
        help="restore InfluxDB data into this database (default HOMEIQ_INFLUXDB_DATABASE)",
    )  # fmt: skip
    b.set_defaults(func=cmd_backup_restore)
    b = backup_sub.add_parser("prune", help="delete archives the retention settings do not keep")
    b.add_argument("--dry-run", action="store_true", help="show what would be deleted")
    b.set_defaults(func=cmd_backup_prune)
    b = backup_sub.add_parser("keygen", help="make an age key pair for HOMEIQ_BACKUP_RECIPIENTS")
    b.add_argument("output", type=Path, help="file for the secret identity (created, 0600)")
    b.set_defaults(func=cmd_backup_keygen)

    p = sub.add_parser("config", help="inspect the configuration")
    config_sub = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = config_sub.add_parser("show", help="print effective settings, secrets redacted")
    show.set_defaults(func=cmd_config_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``homeiq`` console script."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"homeiq: configuration error: {exc}", file=sys.stderr)
        return 2
    hidden = [getattr(settings, name) for name in secret_fields()]
    setup_logging(
        settings.log_level,
        settings.log_format,
        [value.get_secret_value() for value in hidden if value is not None],
    )
    try:
        return int(args.func(settings, args))
    except ConfigError as exc:
        print(f"homeiq: configuration error: {exc}", file=sys.stderr)
        return 2
    except AuthenticationFailed as exc:
        print(f"homeiq: {exc}", file=sys.stderr)
        return 1
    except HomeIQError as exc:
        print(f"homeiq: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
