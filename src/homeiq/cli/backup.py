"""``homeiq backup``: create, list, verify, restore and prune encrypted archives, keygen.

The work is the backup service's; these commands add progress bars and print results.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from homeiq.settings import Settings

if TYPE_CHECKING:
    from homeiq.maintenance.backup.service import BackupService
    from homeiq.metadata.store import MetadataStore


class _Bars:
    """Progress bars on stderr for the long steps of a backup (one bar per step); quiet
    when stderr is not a terminal, as in cron jobs and logs."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self._bars: dict[str, Any] = {}  # tqdm bars (its stubs type the iterable)
        # No monitor thread: it only tames bars updated too rarely, and would outlive us.
        tqdm.monitor_interval = 0

    def __call__(self, step: str, done: int, total: int | None) -> None:
        bar = self._bars.get(step)
        if bar is None:
            for other in self._bars.values():
                other.close()
            unit = "B" if step.startswith(("snapshot", "pack", "checksum", "copy")) else "it"
            bar = self._bars[step] = self._tqdm(
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
    from homeiq.maintenance.backup.service import BackupService
    from homeiq.metadata.store import METADATA_DB, MetadataStore
    from homeiq.observability.metrics import Metrics

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
    from homeiq.maintenance.backup.crypto import new_identity

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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``backup`` and its actions to the ``homeiq`` parser."""
    p = sub.add_parser("backup", help="encrypted backups: create, list, verify, restore, prune")
    backup_sub = p.add_subparsers(dest="backup_command", required=True, metavar="ACTION")
    b = backup_sub.add_parser("create", help="make an archive now and copy it to the targets")
    b.add_argument(
        "--target", action="append", metavar="NAME",
        help="only this target (as listed by `backup list`); repeat for several",
    )  # fmt: skip
    b.set_defaults(func=cmd_backup_create, writes_data_dir=True)
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
    b.set_defaults(func=cmd_backup_restore, writes_data_dir=True)
    b = backup_sub.add_parser("prune", help="delete archives the retention settings do not keep")
    b.add_argument("--dry-run", action="store_true", help="show what would be deleted")
    b.set_defaults(func=cmd_backup_prune)
    b = backup_sub.add_parser("keygen", help="make an age key pair for HOMEIQ_BACKUP_RECIPIENTS")
    b.add_argument("output", type=Path, help="file for the secret identity (created, 0600)")
    b.set_defaults(func=cmd_backup_keygen, uses_data_dir=False)
