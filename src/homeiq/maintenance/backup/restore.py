"""``backup restore``: replace an installation's data with an archive's, the current data
moved aside first (``pre-restore-<time>`` in the data directory).

The whole archive is checked before anything is touched. The live installation's backup
history (metadata.db's ``backup_runs``) is kept across the restore, with a row for the
restore itself: the archive's copy of that table describes the past of the snapshot,
while the archives on the targets, their verifies and the overdue check belong to the
installation that goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from homeiq.errors import (
    ArchiveInvalid,
    ArchiveMismatch,
    BackupError,
    DecryptionFailed,
    RestoreRefused,
    TargetUnavailable,
)
from homeiq.lockfile import DataDirLock, holder
from homeiq.maintenance.backup.archive import (
    SQLITE_DATABASES,
    SQLITE_KIND,
    Manifest,
    Progress,
    utc_now,
)
from homeiq.maintenance.backup.create import remove
from homeiq.maintenance.backup.crypto import Decryption
from homeiq.maintenance.backup.verify import (
    VerifyReport,
    check_content,
    open_archive,
    place_sqlite,
    store_refusal,
)
from homeiq.metadata.store import METADATA_DB, MetadataStore
from homeiq.model import BackupRun
from homeiq.sinks import registry

if TYPE_CHECKING:
    from homeiq.maintenance.backup.service import BackupService

log = logging.getLogger(__name__)

STOP_WAIT_S = 60.0
ALL_RUNS = 2**62  # backup_runs() takes a limit; a restore keeps every row


@dataclass(slots=True)
class RestoreReport:
    """What ``restore`` did (or, with ``dry_run``, would do)."""

    archive: str
    manifest: Manifest
    dry_run: bool
    restored: list[str]
    kept_aside: Path | None


async def restore_archive(
    service: BackupService,
    archive: str,
    decryption: Decryption,
    *,
    dry_run: bool,
    stop_running: bool,
    database: str | None,
    progress: Progress,
) -> RestoreReport:
    """See :meth:`BackupService.restore`."""
    data_dir = service.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = DataDirLock(data_dir)
    running = holder(data_dir)
    if running is not None and not dry_run:
        if not stop_running:
            raise RestoreRefused(
                f"HomeIQ (pid {running or '?'}) is running against {data_dir}: stop it"
                " first, or pass --stop to have restore stop it"
            )
        await _stop_process(running, data_dir)
    started = time.time_ns() // 1000
    staging = service.staging("restore")
    try:
        if not dry_run:
            lock.acquire()  # nothing starts against the data while it is replaced
        try:
            manifest = await open_archive(service, archive, decryption, staging, progress)
        except (TargetUnavailable, ArchiveMismatch, ArchiveInvalid, DecryptionFailed) as exc:
            raise RestoreRefused(f"{exc}; nothing was restored") from None
        check = VerifyReport(archive, manifest, [])
        await check_content(manifest, staging / "content", check, progress)
        if check.problems:
            raise RestoreRefused("; ".join(check.problems) + "; nothing was restored")
        backend = registry.backend(service.settings)
        refused = store_refusal(manifest, backend)
        if refused is not None:
            raise RestoreRefused(f"{refused}; nothing was restored")
        part = backend.backup_part()
        store_members = [m for m in manifest.members if m.kind in backend.archive_kinds]
        plan = [f"{m.path} -> {data_dir / Path(m.path).name}" for m in manifest.member(SQLITE_KIND)]
        if part is not None:
            plan += [f"{m.path} -> {part.destination(database)}" for m in store_members]
        if dry_run:
            return RestoreReport(archive, manifest, True, plan, None)
        history = await asyncio.to_thread(_live_history, data_dir)
        aside = _new_folder(data_dir, f"pre-restore-{utc_now():%Y%m%dT%H%M%SZ}")
        await asyncio.to_thread(_move_live_aside, data_dir, aside)
        await asyncio.to_thread(place_sqlite, manifest, staging / "content", data_dir)
        outcome = f"restored {Path(archive).name}; the previous data is in {aside}"
        try:
            if part is not None:
                for member in store_members:
                    path = staging / "content" / member.path
                    await part.restore(path, database, aside, progress)
        except BaseException as exc:
            outcome = f"{Path(archive).name}: the store's data was not restored: {exc}"
            raise
        finally:
            run = BackupRun(
                "restore", started, time.time_ns() // 1000, outcome.startswith("restored"),
                Path(archive).name, None, None, outcome[:2000],
            )  # fmt: skip
            await asyncio.to_thread(_keep_history, data_dir, history, run)
        return RestoreReport(archive, manifest, False, plan, aside)
    finally:
        lock.release()
        await remove(staging)


def _live_history(data_dir: Path) -> list[BackupRun] | None:
    """The live installation's backup runs, oldest first; None when it has no metadata.db
    (a new machine: the archive's history is then the only one there is)."""
    if not (data_dir / METADATA_DB).exists():
        return None
    metadata = MetadataStore.in_dir(data_dir, readonly=True)
    try:
        return list(reversed(metadata.backup_runs(limit=ALL_RUNS)))
    finally:
        metadata.close()


def _keep_history(data_dir: Path, history: list[BackupRun] | None, run: BackupRun) -> None:
    """Put the live backup runs (and ``run``) into the restored metadata.db in place of
    the archive's. Opening it with MetadataStore first brings an older schema up to date."""
    metadata = MetadataStore.in_dir(data_dir)
    metadata.close()
    rows = [
        (r.kind, r.started_at, r.finished_at, int(r.ok), r.archive, r.target, r.bytes, r.detail)
        for r in [*(history or []), run]
    ]
    conn = sqlite3.connect(data_dir / METADATA_DB)
    try:
        with conn:
            if history is not None:
                conn.execute("DELETE FROM backup_runs")
            conn.executemany(
                "INSERT INTO backup_runs (kind, started_at, finished_at, ok, archive, target,"
                " bytes, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
    except sqlite3.Error as exc:  # the data is restored; only its history could not be kept
        log.error("could not keep the backup history across the restore: %s", exc)
    finally:
        conn.close()


def _new_folder(parent: Path, name: str) -> Path:
    """``parent/name``, or ``name-2``, ``name-3``... when a restore in the same second
    already made it (nothing kept aside is ever overwritten)."""
    for attempt in range(1, 1000):
        path = parent / (name if attempt == 1 else f"{name}-{attempt}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise BackupError(f"cannot make a folder {name} in {parent}")


def _move_live_aside(data_dir: Path, aside: Path) -> None:
    """Every database file HomeIQ owns (with its WAL) into ``aside``."""
    for db in SQLITE_DATABASES:
        for suffix in ("", "-wal", "-shm"):
            path = data_dir / f"{db}{suffix}"
            if path.exists():
                shutil.move(path, aside / path.name)


async def _stop_process(pid: int, data_dir: Path) -> None:
    """SIGTERM the HomeIQ holding ``data_dir`` and wait for it to let go."""
    if pid <= 0:
        raise RestoreRefused(f"the process holding {data_dir} is unknown; stop it by hand")
    log.warning("stopping HomeIQ (pid %d) to restore %s", pid, data_dir)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_S
    while holder(data_dir) is not None:
        if time.monotonic() > deadline:
            raise RestoreRefused(f"HomeIQ (pid {pid}) did not stop within {STOP_WAIT_S:.0f} s")
        await asyncio.sleep(0.2)
