"""``homeiq purge``: the retention purge by hand, or (``--dry-run``) what it would delete.

The purge needs the event store's one writer (SQLite deletes go through it, between
write batches), so it runs only while no server holds the data directory: a running
``homeiq run`` purges on its own schedule (``HOMEIQ_RETENTION_SCHEDULE``), and this
command refuses, saying so, rather than fight the server's writer for the file.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from homeiq.cli.output import table, when
from homeiq.settings import Settings

if TYPE_CHECKING:
    from homeiq.maintenance.purge import PurgeReport

PURGE_HELP = """\
Deletes raw events and rollup buckets older than their tier's keep period
(HOMEIQ_RETENTION_*), after folding the raw events into the rollups. Refuses while a
HomeIQ server runs on the data directory: the server purges daily at
HOMEIQ_RETENTION_SCHEDULE. See docs/retention.md.

exit codes:
  0    done (or nothing to purge); with --dry-run, nothing was deleted
  1    runtime failure (a HomeIQ server holds the data directory, a store unreachable)
  2    configuration or usage error (a bad retention setting; the message names it)
  130  interrupted (Ctrl-C): chunks already deleted stay deleted, a rerun finishes"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``purge`` to the ``homeiq`` parser."""
    p = sub.add_parser(
        "purge",
        help="delete data older than its retention tier's keep period",
        description=PURGE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="show what would be deleted, per tier; delete nothing",
    )
    p.add_argument(
        "--vacuum",
        action="store_true",
        help=(
            "SQLite: also VACUUM events.db once, so later purges give space back to the"
            " disk (needed once for an events.db made before HomeIQ 0.x; rewrites the file)"
        ),
    )
    p.set_defaults(func=cmd_purge, writes_data_dir=True)


def cmd_purge(settings: Settings, args: argparse.Namespace) -> int:
    """Run the purge (or the dry run) and print what went, per tier."""
    from homeiq.errors import DataDirBusy, PermanentError
    from homeiq.lockfile import DataDirLock

    lock = DataDirLock(settings.data_dir)
    try:
        lock.acquire()
    except DataDirBusy as busy:
        schedule = settings.retention.schedule
        when = "never (it is off)" if schedule == "off" else f"daily at {schedule}"
        raise PermanentError(
            f"{busy}; the server purges by itself {when} (HOMEIQ_RETENTION_SCHEDULE)"
        ) from None
    try:
        report = asyncio.run(_purge(settings, dry_run=args.dry_run, vacuum=args.vacuum))
    finally:
        lock.release()
    print(render(report))
    return 0


async def _purge(settings: Settings, *, dry_run: bool, vacuum: bool) -> PurgeReport:
    from homeiq.maintenance.purge import Purger
    from homeiq.maintenance.rollups import RollupStore
    from homeiq.maintenance.statistics import RollupMaintainer
    from homeiq.pipeline.spool import Spool
    from homeiq.sinks import registry
    from homeiq.sinks.base import SupportsVacuum

    backend = registry.backend(settings)
    sink, reader = backend.open_sink(), backend.open_reader()
    rollups = RollupStore.in_dir(settings.data_dir)
    spool = Spool.in_dir(
        settings.data_dir, max_bytes=settings.spool_max_bytes, policy=settings.spool_full_policy
    )
    try:
        await sink.open()
        maintainer = RollupMaintainer(reader, rollups)
        purger = Purger.for_store(
            settings, sink, reader, folder=maintainer, rollups=rollups, spool=spool
        )
        report = await purger.run(dry_run=dry_run)
        eraser = backend.eraser(sink)
        if vacuum and not dry_run and isinstance(eraser, SupportsVacuum):
            await eraser.vacuum()
        return report
    finally:
        await reader.close()
        await sink.close()
        rollups.close()
        spool.close()


def render(report: PurgeReport) -> str:
    """The report as a table per tier, with what held cutoffs back."""
    title = "Dry run: would delete" if report.dry_run else "Deleted"
    if report.reference is None:
        return f"{title} nothing: the event store is empty."
    rows = []
    for tier in report.tiers:
        rows.append(
            [
                tier.tier,
                tier.keep,
                f"{tier.rows:,}",
                when(tier.oldest) or ("" if not tier.rows else "(oldest)"),
                when(tier.cutoff) or "",
                tier.note,
            ]
        )
    lines = [
        f"{title} (reference time {when(report.reference)} UTC: the newest stored event"
        " or the clock, whichever is earlier)",
        table(["tier", "keep", "rows", "from", "before", "note"], rows),
    ]
    for reason in report.held_back:
        lines.append(f"held back by {reason}: those rows are kept until they are safe to delete")
    if report.dry_run:
        lines.append("Nothing was deleted (dry run).")
    return "\n".join(lines)
