"""The reading commands: ``query``, ``status`` (with the resource watch's part: files,
free space, a running server's CPU and memory) and ``rollups rebuild``.

They open the configured store read-only, run one query and print a table; they never
create a store, so they can run beside a ``homeiq run`` writing the same data.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import sys
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from homeiq.cli.output import parse_since, positive_int, table
from homeiq.settings import Settings

if TYPE_CHECKING:
    from homeiq.sinks.base import EventReader

# The stores are imported by the functions that use them: building the parser (every
# command, --help, a usage error) stays fast.

T = TypeVar("T")

# An entity the demo's simulated home always has (the README and --help use it).
EXAMPLE_ENTITY = "sensor.living_room_multisensor_temperature"
_YEAR_US = 366 * 86_400_000_000


def _read(settings: Settings, query: Callable[[EventReader], Coroutine[Any, Any, T]]) -> T:
    """Run one query against the configured store, read-only."""
    from homeiq.sinks import registry

    async def run() -> T:
        reader = registry.backend(settings).open_reader_readonly()
        try:
            return await query(reader)
        finally:
            await reader.close()

    return asyncio.run(run())


async def known_entities(reader: EventReader) -> list[str]:
    """Every entity id the store holds events of (for "did you mean")."""
    # From 1970 to a year ahead (InfluxDB counts time in int64 ns: no wider), in one or
    # two buckets: only the per-entity counts are wanted.
    end = int(time.time() * 1_000_000) + _YEAR_US
    activity = await reader.activity(0, end, bucket_s=end // 1_000_000, top=1_000_000)
    return [entity_id for entity_id, _ in activity.top_entities]


def no_such_entity(entity_id: str, known: list[str]) -> str:
    """The message for an entity the store has never seen, with the closest known ids."""
    close = difflib.get_close_matches(entity_id, known, n=3, cutoff=0.6)
    if not close:  # a bare object id ("living_room_temperature") matches on its suffix
        close = [k for k in known if k.partition(".")[2] == entity_id][:3]
    hint = f"; did you mean {', '.join(close)}?" if close else " (homeiq status lists the domains)"
    return f"no such entity: {entity_id}{hint}"


def cmd_query(settings: Settings, args: argparse.Namespace) -> int:
    """Print an entity's stored history as a table."""
    from homeiq.ha.snapshot import with_start_states
    from homeiq.pipeline.normalize import format_time_us

    async def run(reader: EventReader) -> tuple[list[Any], list[str] | None]:
        records = await reader.history(args.entity_id, args.since, args.until, args.limit)
        if args.since is not None:
            # The state at the range start, as Home Assistant's history shows it: the last
            # row before it, at its own time (it says since when the state held).
            starts = await reader.last_states([args.entity_id], before=args.since)
            records = with_start_states({args.entity_id: records}, starts)[args.entity_id]
        if records:
            return list(records), None
        return [], await known_entities(reader)

    records, known = _read(settings, run)
    if known is not None and args.entity_id not in known:
        print(f"homeiq: {no_such_entity(args.entity_id, known)}", file=sys.stderr)
        return 1
    if not records:
        ranged = args.since is not None or args.until is not None
        print(f"no events for {args.entity_id}{' in that range' if ranged else ''}")
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
    print(table(headers, rows))
    return 0


def cmd_status(settings: Settings, _args: argparse.Namespace) -> int:
    """Print counts per domain and area, the last event time and the dead letters."""
    from homeiq.metadata.store import METADATA_DB, MetadataStore
    from homeiq.pipeline.normalize import format_time_us

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
    print(table(("domain", "events"), sorted(summary.by_domain.items())))
    print()
    print(table(("area", "events"), sorted(summary.by_area.items())))
    print()
    print(table(("source", "events"), sorted(summary.by_source.items())))
    print()
    if rejected:
        print(table(("dead-letter reason", "messages"), sorted(rejected.items())))
    else:
        print("dead letters: none")
    print()
    print_resources(settings)
    return 0


def print_resources(settings: Settings) -> None:
    """The data directory's files and free space (read offline), and the CPU and memory
    of the HomeIQ holding the data directory's lock, if one runs."""
    from homeiq.lockfile import holder
    from homeiq.observability.resources import disk_usage, measure_process

    disk = disk_usage(settings.data_dir)
    rows = [(name, _mib(size)) for name, size in sorted(disk.files.items())]
    rows.append(("total", _mib(disk.data_bytes)))
    print(table(("file", "MiB"), rows))
    free = disk.free_percent
    print(
        f"disk free: {_mib(disk.free_bytes)} MiB of {_mib(disk.total_bytes)} MiB"
        + ("" if free is None else f" ({free:.1f} %)")
    )
    pid = holder(settings.data_dir)
    usage = None if pid is None else measure_process(pid)
    if usage is None:
        print("server: not running")
        return
    cpu, process = usage
    print(
        f"server: pid {pid}, {process.processes} processes, CPU {cpu:.1f} % of every core,"
        f" memory {_mib(process.rss_bytes)} MiB"
    )


def _mib(size: int) -> str:
    return f"{size / 1048576:.1f}"


def cmd_rollups_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    """Recompute the statistics rollups from the stored events."""
    from homeiq.maintenance.rollups import RollupStore
    from homeiq.maintenance.statistics import RollupMaintainer, rebuild_range
    from homeiq.pipeline.normalize import format_time_us

    end = int(time.time() * 1_000_000)
    start = args.since

    clamped: dict[str, int] = {}

    async def rebuild(reader: EventReader) -> tuple[int, int]:
        store = RollupStore.in_dir(settings.data_dir)
        try:
            maintainer = RollupMaintainer(reader, store)
            done = await rebuild_range(maintainer, start, end, args.entity or None)
            clamped.update(maintainer.clamped)
            return done
        finally:
            store.close()

    entities, buckets = _read(settings, rebuild)
    print(f"rebuilt {buckets} buckets of {entities} entities since {format_time_us(start)}")
    if clamped:  # their older buckets stay: the raw events that made them are gone
        latest = format_time_us(max(clamped.values()))
        print(
            f"{len(clamped)} entities from later (up to {latest}): their raw events before"
            " were purged, their buckets there are kept as they were"
        )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add query and status to the ``homeiq`` parser."""
    p = sub.add_parser(
        "query",
        help="print an entity's stored history",
        epilog=f"example: homeiq query {EXAMPLE_ENTITY} --since 1h",
    )
    p.add_argument("entity_id", help=f"e.g. {EXAMPLE_ENTITY}")
    p.add_argument("--since", type=parse_since, default=None, help="1h, 30m, 2d or ISO time")
    p.add_argument("--until", type=parse_since, default=None, help="1h, 30m, 2d or ISO time")
    p.add_argument("--limit", type=positive_int, default=1000, help="at most this many rows (≥ 1)")
    p.set_defaults(func=cmd_query)

    p = sub.add_parser(
        "status",
        help="counts per domain and area, last event time, dead letters, disk and server use",
    )
    p.set_defaults(func=cmd_status)


def register_rollups(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``rollups rebuild`` to the ``homeiq`` parser."""
    p = sub.add_parser("rollups", help="statistics rollups: rebuild a range")
    rollups_sub = p.add_subparsers(dest="rollups_command", required=True, metavar="ACTION")
    rebuild = rollups_sub.add_parser("rebuild", help="recompute rollups from stored events")
    rebuild.add_argument("--since", type=parse_since, required=True, help="30d, 1w or ISO time")
    rebuild.add_argument(
        "--entity", action="append", help="only this entity (repeatable; default: all)"
    )
    rebuild.set_defaults(func=cmd_rollups_rebuild, writes_data_dir=True)
