"""Backup operations: create, list, verify, restore, prune (the CLI, the API and the
schedule all go through :class:`BackupService`, a small facade over :mod:`.create`,
:mod:`.verify` and :mod:`.restore`).

Work happens in a staging folder inside the data directory (same file system, so
finished files move into place by rename) that is removed afterwards, whatever happens.
Every outcome is recorded in metadata.db (``backup_runs``) and in the metrics; a failure
raises the ``backup_failed`` alert and a success clears it. What a backup holds of the
event store beyond the data directory (an InfluxDB export) comes from the store's
backend (:mod:`homeiq.sinks.registry`), never from a test of the store's name.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from homeiq.errors import BackupError, ConfigError, DataDirBusy, RestoreRefused
from homeiq.maintenance.alerts import Alerts
from homeiq.maintenance.backup.archive import Progress, no_progress
from homeiq.maintenance.backup.create import (
    FAILED_ALERT,
    OVERDUE_ALERT,
    BackupResult,
    Copy,
    create_archive,
)
from homeiq.maintenance.backup.crypto import Decryption, Encryption
from homeiq.maintenance.backup.restore import RestoreReport, restore_archive
from homeiq.maintenance.backup.retention import to_prune
from homeiq.maintenance.backup.targets import (
    StoredArchive,
    Target,
    parse_archive_name,
    parse_targets,
)
from homeiq.maintenance.backup.verify import VERIFY_ALERT, VerifyReport, verify_archive
from homeiq.metadata.store import MetadataStore
from homeiq.model import BackupRun
from homeiq.observability.metrics import Metrics
from homeiq.settings import Settings

log = logging.getLogger(__name__)

BACKUPS_DIR = "backups"  # the default target, inside the data directory


class BackupService:
    """Backups of one HomeIQ installation, as its settings describe them."""

    def __init__(
        self,
        settings: Settings,
        *,
        metadata: MetadataStore | None = None,
        metrics: Metrics | None = None,
        alerts: Alerts | None = None,
        targets: Sequence[Target] | None = None,
    ) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir
        self.metadata = metadata
        self.metrics = metrics
        self.alerts = alerts
        self.targets = list(targets) if targets is not None else self.targets_of(settings)
        self._running = asyncio.Lock()  # one backup at a time per process
        self._job: tuple[str, asyncio.Task[object]] | None = None

    @property
    def busy(self) -> str | None:
        """``create`` or ``verify`` while one runs in this process, else None."""
        if self._job is not None and not self._job[1].done():
            return self._job[0]
        return "create" if self._running.locked() else None

    def start_job(self, kind: str, job: Coroutine[Any, Any, object]) -> None:
        """Run ``job`` (a create or verify of this service) in the background; its outcome
        is recorded like any other. BackupError if one is already running."""
        if self.busy is not None:
            job.close()
            raise BackupError(f"a backup {self.busy} is already running")

        async def run() -> object:
            try:
                return await job
            except Exception:  # recorded and alerted by the operation itself
                log.exception("background backup %s failed", kind)
                return None

        self._job = (kind, asyncio.create_task(run(), name=f"backup-{kind}"))

    # -- configuration -------------------------------------------------------------------

    @staticmethod
    def targets_of(settings: Settings) -> list[Target]:
        """The configured targets (default: the backups folder of the data directory);
        ConfigError naming HOMEIQ_BACKUP_TARGETS for a bad one."""
        default = [(settings.data_dir / BACKUPS_DIR).resolve().as_uri()]
        return parse_targets(settings.backup.targets or default)

    @property
    def configured(self) -> bool:
        """True when archives can be encrypted (recipients or a passphrase are set)."""
        s = self.settings
        return bool(s.backup.recipients) or s.backup.passphrase is not None

    def encryption(self) -> Encryption:
        """How archives are encrypted; ConfigError naming the settings when unset."""
        s = self.settings
        if s.backup.passphrase is not None:
            return Encryption(passphrase=s.backup.passphrase.get_secret_value())
        if not s.backup.recipients:
            raise ConfigError(
                "HOMEIQ_BACKUP_RECIPIENTS",
                "backups are encrypted: set HOMEIQ_BACKUP_RECIPIENTS (age public keys) or"
                " HOMEIQ_BACKUP_PASSPHRASE_FILE",
            )
        return Encryption(recipients=tuple(s.backup.recipients))

    def decryption(self, identity: Path | None = None) -> Decryption:
        """What opens archives: ``identity``, else the configured identity file or passphrase."""
        s = self.settings
        path = identity or s.backup.identity_file
        if path is not None:
            return Decryption.from_identity_file(path)
        if s.backup.passphrase is not None:
            return Decryption(passphrase=s.backup.passphrase.get_secret_value())
        raise ConfigError(
            "HOMEIQ_BACKUP_IDENTITY_FILE",
            "decrypting an archive needs the age identity file (--identity FILE or"
            " HOMEIQ_BACKUP_IDENTITY_FILE) or the passphrase (HOMEIQ_BACKUP_PASSPHRASE_FILE)",
        )

    # -- the operations ------------------------------------------------------------------

    async def create(
        self, *, targets: Sequence[str] | None = None, progress: Progress = no_progress
    ) -> BackupResult:
        """Snapshot every store into a new encrypted archive and copy it to the targets
        (all, or those whose label is in ``targets``); a failure is recorded and raised
        as an alert, and the result says which copies failed."""
        chosen = self._targets(targets)
        self.encryption()  # a missing key fails before anything is snapshotted
        async with self._running:
            return await create_archive(self, chosen, progress)

    async def verify(
        self,
        archive: str,
        *,
        identity: Path | None = None,
        test_restore: bool = True,
        progress: Progress = no_progress,
    ) -> VerifyReport:
        """Decrypt, check every checksum and count, open every database, and (by default)
        restore into a scratch place and compare counts. Never touches live data."""
        decryption = self.decryption(identity)
        return await verify_archive(self, archive, decryption, test_restore, progress)

    async def restore(
        self,
        archive: str,
        *,
        identity: Path | None = None,
        dry_run: bool = False,
        stop_running: bool = False,
        influxdb_database: str | None = None,
        progress: Progress = no_progress,
    ) -> RestoreReport:
        """Replace this installation's data with the archive's, the current data moved
        aside first (``pre-restore-<time>`` in the data directory). Refuses while HomeIQ
        runs against the data directory unless ``stop_running``; checks the whole archive
        before touching anything; keeps this installation's backup history.
        ``influxdb_database``: restore the store's data into another database than the
        configured one."""
        decryption = self.decryption(identity)
        return await restore_archive(
            self,
            archive,
            decryption,
            dry_run=dry_run,
            stop_running=stop_running,
            database=influxdb_database,
            progress=progress,
        )

    async def archives(self) -> dict[str, list[StoredArchive]]:
        """The archives on every target, oldest first, by target label."""
        found: dict[str, list[StoredArchive]] = {}
        for target in self.targets:
            found[target.label] = await asyncio.to_thread(target.list)
        return found

    async def prune(self, *, dry_run: bool = False) -> dict[str, list[str]]:
        """Delete what the retention settings do not keep, per target; the names deleted."""
        s = self.settings
        removed: dict[str, list[str]] = {}
        for target in self.targets:
            stored = await asyncio.to_thread(target.list)
            doomed = to_prune(
                stored, daily=s.backup.keep_daily, weekly=s.backup.keep_weekly,
                monthly=s.backup.keep_monthly,
            )  # fmt: skip
            for archive in doomed:
                if not dry_run:
                    await asyncio.to_thread(target.delete, archive.name)
                    log.info("pruned %s from %s", archive.name, target.label)
            removed[target.label] = [a.name for a in doomed]
        return removed

    async def locate(self, archive: str, dest_dir: Path) -> Path:
        """A local copy of ``archive``: a file path as given, else the archive of that name
        on the first target holding it (its checksum verified by the fetch)."""
        path = Path(archive)  # the shell has expanded any ~
        if await asyncio.to_thread(path.is_file):
            return path
        if parse_archive_name(path.name) is None or path.name != archive:
            raise BackupError(f"{archive}: no such file, and not an archive name")
        for target in self.targets:
            stored = await asyncio.to_thread(target.list)
            if any(a.name == archive for a in stored):
                return await asyncio.to_thread(target.fetch, archive, dest_dir / archive)
        raise BackupError(f"no target holds {archive}")

    # -- shared by the operations --------------------------------------------------------

    def staging(self, what: str) -> Path:
        """A new private folder in the data directory for one operation's work."""
        path = self.data_dir / f".backup-{what}-{os.getpid()}-{time.time_ns()}"
        path.mkdir(parents=True)
        path.chmod(0o700)
        return path

    async def record(self, run: BackupRun) -> None:
        """Record an outcome in metadata.db (when the service has it); never raises."""
        if self.metadata is not None:
            try:
                await asyncio.to_thread(self.metadata.add_backup_run, run)
            except Exception:  # the outcome is logged anyway; never hide the backup's own
                log.exception("could not record a backup run in metadata.db")

    def _targets(self, labels: Sequence[str] | None) -> list[Target]:
        if not labels:
            return self.targets
        chosen = [t for t in self.targets if t.label in labels or t.label.rstrip("/") in labels]
        unknown = set(labels) - {t.label for t in chosen} - {t.label.rstrip("/") for t in chosen}
        if unknown:
            known = ", ".join(t.label for t in self.targets)
            raise BackupError(f"no backup target {', '.join(sorted(unknown))} (targets: {known})")
        return chosen


__all__ = [
    "FAILED_ALERT",
    "OVERDUE_ALERT",
    "VERIFY_ALERT",
    "BackupError",
    "BackupResult",
    "BackupService",
    "Copy",
    "DataDirBusy",
    "RestoreRefused",
    "RestoreReport",
    "VerifyReport",
]
