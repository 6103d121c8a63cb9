"""``homeiq cleanup``: delete stored test data (or what the ingest rules now exclude), with
a dry run, and the history of every deletion.

The work is :mod:`homeiq.maintenance.cleanup`'s; this module parses, opens the store and
prints. Like ``homeiq purge``, a cleanup (and its dry run, which counts through the same
store writer) takes the data directory's lock: while a HomeIQ server runs it is refused
(DataDirBusy names its pid), and saved rules (``HOMEIQ_CLEANUP_RULES``) run inside the
server on its daily schedule instead. ``--history`` only reads metadata.db and runs
beside a server.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from homeiq.cli.failures import EXIT_USAGE
from homeiq.cli.output import parse_since, positive_int, table, when
from homeiq.selectors import check_glob
from homeiq.settings import Settings
from homeiq.settings.cleanup import SOURCES

if TYPE_CHECKING:
    from homeiq.metadata.store import MetadataStore
    from homeiq.sinks.base import Eraser, EventReader

T = TypeVar("T")
EXAMPLE = "homeiq cleanup --entity 'sensor.test_*' --source simulator --before 7d --dry-run"


def entity_pattern(text: str) -> str:
    """An argparse type: an entity id or glob (``sensor.test_*``), checked."""
    try:
        return check_glob(text.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


Work = Callable[["Eraser", "EventReader", "MetadataStore"], Coroutine[Any, Any, T]]


def _with_store(settings: Settings, work: Work[T]) -> T:
    """Run ``work`` with the store's eraser and reader and metadata.db, then close them."""
    from homeiq.metadata.store import MetadataStore
    from homeiq.sinks import registry

    async def run() -> T:
        backend = registry.backend(settings)
        sink = backend.open_sink()
        await sink.open()
        reader = backend.open_reader()
        metadata = MetadataStore.in_dir(settings.data_dir)
        try:
            return await work(backend.eraser(sink), reader, metadata)
        finally:
            metadata.close()
            await reader.close()
            await sink.close()

    return asyncio.run(run())


def _request(settings: Settings, args: argparse.Namespace) -> Any:
    from homeiq.maintenance.cleanup import CleanupRequest

    return CleanupRequest(tuple(args.entity or ()), args.source, args.before, args.excluded)


def cmd_cleanup(settings: Settings, args: argparse.Namespace) -> int:
    """Delete (or, with --dry-run, count) the stored events a request names."""
    if args.history:
        return _history(settings, args.limit)
    if not (args.entity or args.excluded or args.source == "simulator"):
        print(
            "homeiq: cleanup: say what to delete: --entity (ids or globs, '*' for all),"
            " --excluded, or --source simulator",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from homeiq.pipeline.filter import IngestFilter

    rules = IngestFilter.of(settings.ingest)
    if args.excluded and rules is None:
        print("no include/exclude rules are set (HOMEIQ_INGEST_*): nothing is excluded")
        return 0
    request = _request(settings, args)
    from homeiq.lockfile import DataDirLock

    lock = DataDirLock(settings.data_dir)
    lock.acquire()  # DataDirBusy (exit 1) names the running server, as homeiq purge does
    try:
        if args.dry_run:
            return _dry_run(settings, request, rules)
        return _delete(settings, request, rules)
    finally:
        lock.release()


def _dry_run(settings: Settings, request: Any, rules: Any) -> int:
    from homeiq.maintenance.cleanup import count_by_entity, plan

    async def work(eraser: Eraser, reader: EventReader, metadata: MetadataStore) -> Any:
        deletion = await plan(request, eraser, metadata, rules=rules, reader=reader)
        return await count_by_entity(eraser, deletion)

    counts = _with_store(settings, work)
    total = sum(counts.values())
    print(f"would delete {total} events of {len(counts)} entities ({request.describe()});")
    print("dry run: nothing was deleted")
    if counts:
        print(table(("entity_id", "events"), sorted(counts.items())))
    return 0


def _delete(settings: Settings, request: Any, rules: Any) -> int:
    from homeiq.maintenance.cleanup import CleanupHistory, execute, plan, resume_interrupted
    from homeiq.maintenance.cleanup.runner import who_am_i
    from homeiq.observability.metrics import Metrics

    async def work(eraser: Eraser, reader: EventReader, metadata: MetadataStore) -> Any:
        history = CleanupHistory(metadata)
        chunk_rows = settings.retention.chunk_rows
        resumed = await resume_interrupted(eraser, history, chunk_rows=chunk_rows)
        deletion = await plan(request, eraser, metadata, rules=rules, reader=reader)
        run = await execute(
            deletion,
            request.describe(),
            who_am_i(),
            eraser,
            history,
            chunk_rows=chunk_rows,
            metrics=Metrics(),
        )
        return resumed, run, len(deletion.entity_ids)

    resumed, run, entities = _with_store(settings, work)
    for old in resumed:
        print(f"finished interrupted cleanup #{old.id} ({old.rule}): {old.deleted} events in all")
    print(f"deleted {run.deleted} events of {entities} entities ({run.rule}); cleanup #{run.id}")
    return 0


def _history(settings: Settings, limit: int) -> int:
    from homeiq.maintenance.cleanup import CleanupHistory
    from homeiq.metadata.store import METADATA_DB, MetadataStore

    if not (settings.data_dir / METADATA_DB).exists():
        print("no cleanups yet")
        return 0
    metadata = MetadataStore.in_dir(settings.data_dir)
    try:
        runs = CleanupHistory(metadata).runs(limit)
    finally:
        metadata.close()
    if not runs:
        print("no cleanups yet")
        return 0
    rows = [
        (r.id, when(r.started_at), r.who, r.shown_status, r.deleted, r.planned, r.rule, r.detail)
        for r in runs
    ]
    headers = ("id", "started (UTC)", "who", "status", "deleted", "planned", "rule", "detail")
    print(table(headers, rows))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``cleanup`` to the ``homeiq`` parser."""
    p = sub.add_parser(
        "cleanup",
        help="delete stored test data (dry-run-able) and show every deletion",
        description=(
            "Delete the stored events of entities named by id or glob, optionally only"
            " those of one source and older than a time. --source simulator means the"
            " entities HomeIQ only ever saw from its simulator. Every deletion is recorded"
            " (--history); a run interrupted by a crash is finished by the next one."
        ),
        epilog=f"example: {EXAMPLE}",
    )
    p.add_argument(
        "--entity",
        action="append",
        type=entity_pattern,
        metavar="GLOB",
        help="entity id or glob, e.g. 'sensor.test_*' (repeatable; '*' for every entity)",
    )
    p.add_argument("--source", choices=SOURCES, help="only events of this source")
    p.add_argument("--before", type=parse_since, help="only events older than 7d, 12h or ISO time")
    p.add_argument(
        "--excluded",
        action="store_true",
        help="the events the current HOMEIQ_INGEST_* rules would have left out",
    )
    p.add_argument("--dry-run", action="store_true", help="show per entity what would go")
    p.add_argument("--history", action="store_true", help="list the recorded deletions")
    p.add_argument("--limit", type=positive_int, default=50, help="history rows (≥ 1)")
    p.set_defaults(func=cmd_cleanup, writes_data_dir=True)
