"""Backup operations: create, list, verify, restore, prune (the CLI, the API and the
schedule all go through :class:`BackupService`).

Work happens in a staging folder inside the data directory (same file system, so
finished files move into place by rename) that is removed afterwards, whatever happens.
Every outcome is recorded in metadata.db (``backup_runs``) and in the metrics; a failure
raises the ``backup_failed`` alert and a success clears it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from homeiq.errors import (
    ArchiveInvalid,
    ArchiveMismatch,
    BackupError,
    ConfigError,
    DataDirBusy,
    DecryptionFailed,
    HomeIQError,
    RestoreRefused,
    TargetUnavailable,
)
from homeiq.lockfile import DataDirLock, holder
from homeiq.maintenance.alerts import Alerts
from homeiq.maintenance.backup import influx, influx_native
from homeiq.maintenance.backup.archive import (
    MANIFEST,
    SQLITE_DATABASES,
    Manifest,
    Member,
    Progress,
    backup_settings,
    describe_sqlite,
    integrity_problems,
    no_progress,
    pack,
    sha256_of,
    snapshot_sqlite,
    unpack,
    utc_now,
    walk_files,
    write_manifest_file,
)
from homeiq.maintenance.backup.crypto import Decryption, Encryption
from homeiq.maintenance.backup.influx_lineprotocol import read_export
from homeiq.maintenance.backup.retention import to_prune
from homeiq.maintenance.backup.targets import (
    StoredArchive,
    Target,
    archive_name,
    parse_archive_name,
    parse_targets,
)
from homeiq.metadata.store import MetadataStore
from homeiq.model import BackupRun
from homeiq.observability.metrics import Metrics
from homeiq.settings import Settings
from homeiq.sinks.influxdb import InfluxDBConfig
from homeiq.sinks.sqlite.store import EVENTS_DB

log = logging.getLogger(__name__)


BACKUPS_DIR = "backups"  # the default target, inside the data directory
STOP_WAIT_S = 60.0
FAILED_ALERT = "backup_failed"
VERIFY_ALERT = "backup_verify_failed"
OVERDUE_ALERT = "backup_overdue"


@dataclass(slots=True)
class Copy:
    """The archive's copy on one target."""

    target: str
    ok: bool
    detail: str = ""


@dataclass(slots=True)
class BackupResult:
    """What ``create`` made and where it went."""

    name: str
    manifest: Manifest
    bytes: int
    sha256: str
    seconds: float
    copies: list[Copy]

    @property
    def ok(self) -> bool:
        """True when every target holds a verified copy."""
        return bool(self.copies) and all(c.ok for c in self.copies)


@dataclass(slots=True)
class VerifyReport:
    """What ``verify`` checked and found."""

    archive: str
    manifest: Manifest | None
    problems: list[str]
    checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return self.manifest is not None and not self.problems


@dataclass(slots=True)
class RestoreReport:
    """What ``restore`` did (or, with ``dry_run``, would do)."""

    archive: str
    manifest: Manifest
    dry_run: bool
    restored: list[str]
    kept_aside: Path | None


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
        default = [(self.data_dir / BACKUPS_DIR).resolve().as_uri()]
        self.targets = (
            list(targets)
            if targets is not None
            else parse_targets(settings.backup_targets or default)
        )
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
        return parse_targets(settings.backup_targets or default)

    @property
    def configured(self) -> bool:
        """True when archives can be encrypted (recipients or a passphrase are set)."""
        s = self.settings
        return bool(s.backup_recipients) or s.backup_passphrase is not None

    def encryption(self) -> Encryption:
        """How archives are encrypted; ConfigError naming the settings when unset."""
        s = self.settings
        if s.backup_passphrase is not None:
            return Encryption(passphrase=s.backup_passphrase.get_secret_value())
        if not s.backup_recipients:
            raise ConfigError(
                "HOMEIQ_BACKUP_RECIPIENTS",
                "backups are encrypted: set HOMEIQ_BACKUP_RECIPIENTS (age public keys) or"
                " HOMEIQ_BACKUP_PASSPHRASE_FILE",
            )
        return Encryption(recipients=tuple(s.backup_recipients))

    def decryption(self, identity: Path | None = None) -> Decryption:
        """What opens archives: ``identity``, else the configured identity file or passphrase."""
        s = self.settings
        path = identity or s.backup_identity_file
        if path is not None:
            return Decryption.from_identity_file(path)
        if s.backup_passphrase is not None:
            return Decryption(passphrase=s.backup_passphrase.get_secret_value())
        raise ConfigError(
            "HOMEIQ_BACKUP_IDENTITY_FILE",
            "decrypting an archive needs the age identity file (--identity FILE or"
            " HOMEIQ_BACKUP_IDENTITY_FILE) or the passphrase (HOMEIQ_BACKUP_PASSPHRASE_FILE)",
        )

    def influx_config(self) -> InfluxDBConfig | None:
        """The InfluxDB store's configuration, when the store is InfluxDB."""
        if self.settings.store != "influxdb":
            return None
        return InfluxDBConfig.from_settings(self.settings)

    # -- create --------------------------------------------------------------------------

    async def create(
        self, *, targets: Sequence[str] | None = None, progress: Progress = no_progress
    ) -> BackupResult:
        """Snapshot every store into a new encrypted archive and copy it to the targets
        (all, or those whose label is in ``targets``); a failure is recorded and raised
        as an alert, and the result says which copies failed."""
        chosen = self._targets(targets)
        encryption = self.encryption()
        async with self._running:
            started = time.time_ns() // 1000
            clock = time.perf_counter()
            created = utc_now()
            name = archive_name(created)
            staging = self._staging("create")
            try:
                try:
                    manifest = await self._collect(staging / "content", created, progress)
                    packed = staging / "archive.tar.gz"
                    await asyncio.to_thread(pack, staging / "content", packed, progress)
                    # The disk space back before encrypting (in a thread: gigabytes).
                    await asyncio.to_thread(shutil.rmtree, staging / "content")
                    sealed = staging / name
                    progress("encrypt", 0, None)
                    await asyncio.to_thread(encryption.encrypt_file, packed, sealed)
                    await asyncio.to_thread(packed.unlink)
                    digest = await asyncio.to_thread(sha256_of, sealed)
                    size = (await asyncio.to_thread(sealed.stat)).st_size
                except Exception as exc:
                    await self._record_failure(
                        started, name, chosen, f"{type(exc).__name__}: {exc}"
                    )
                    raise
                copies = []
                for target in chosen:
                    progress(f"copy to {target.label}", 0, size)
                    try:
                        await asyncio.to_thread(target.put, sealed, sha256=digest)
                        copies.append(Copy(target.label, True))
                    except Exception as exc:
                        log.error("backup %s not copied to %s: %s", name, target.label, exc)
                        copies.append(Copy(target.label, False, f"{type(exc).__name__}: {exc}"))
                    progress(f"copy to {target.label}", size, size)
            finally:
                await _remove(staging)
            seconds = time.perf_counter() - clock
            result = BackupResult(name, manifest, size, digest, seconds, copies)
            await self._record_created(started, result)
            return result

    async def _collect(self, content: Path, created: datetime, progress: Progress) -> Manifest:
        """Snapshots (and the InfluxDB export) into ``content``, and their manifest."""
        members: list[Member] = []
        (content / "sqlite").mkdir(parents=True)
        for db in SQLITE_DATABASES:
            source = self.data_dir / db
            if not source.exists():
                continue
            dest = content / "sqlite" / db
            await asyncio.to_thread(snapshot_sqlite, source, dest, progress)
            info = await asyncio.to_thread(describe_sqlite, dest)
            members.append(await self._member(content, dest, "sqlite", info))
        events: dict[str, Any] = {}
        events_member = next((m for m in members if m.path == f"sqlite/{EVENTS_DB}"), None)
        if events_member is not None and self.settings.store == "sqlite":
            info = events_member.info
            events = {
                "count": info["rows"].get("events", 0),
                "first_time_us": info.get("first_time_us"),
                "last_time_us": info.get("last_time_us"),
            }
        config = self.influx_config()
        if config is not None:
            (content / "influxdb").mkdir()
            dest = content / "influxdb" / f"{config.database}.lp.gz"

            def exported(points: int) -> None:
                progress("export InfluxDB", points, None)

            export = await influx.export_database(config, dest, progress=exported)
            members.append(
                await self._member(content, dest, "influxdb-lineprotocol", export.to_json())
            )
            events = {
                "count": export.measurements.get(config.measurement, 0),
                "first_time_us": None
                if export.first_time_ns is None
                else export.first_time_ns // 1000,
                "last_time_us": None
                if export.last_time_ns is None
                else export.last_time_ns // 1000,
            }
            if self.settings.backup_influxdb_native:
                native = content / "influxdb" / "native"
                native.mkdir()
                await influx_native.native_backup(
                    config, native, rpc_address=self.settings.backup_influxdb_rpc
                )
                for path in sorted(walk_files(native)):
                    members.append(await self._member(content, path, "influxdb-native", {}))
        manifest = Manifest(
            created_at=created,
            store=self.settings.store,
            members=members,
            settings=backup_settings(self.settings),
            events=events,
        )
        write_manifest_file(manifest, content / MANIFEST)
        return manifest

    @staticmethod
    async def _member(content: Path, path: Path, kind: str, info: dict[str, Any]) -> Member:
        digest = await asyncio.to_thread(sha256_of, path)
        size = (await asyncio.to_thread(path.stat)).st_size
        return Member(path.relative_to(content).as_posix(), kind, size, digest, info)

    def _targets(self, labels: Sequence[str] | None) -> list[Target]:
        if not labels:
            return self.targets
        chosen = [t for t in self.targets if t.label in labels or t.label.rstrip("/") in labels]
        unknown = set(labels) - {t.label for t in chosen} - {t.label.rstrip("/") for t in chosen}
        if unknown:
            known = ", ".join(t.label for t in self.targets)
            raise BackupError(f"no backup target {', '.join(sorted(unknown))} (targets: {known})")
        return chosen

    def _staging(self, what: str) -> Path:
        path = self.data_dir / f".backup-{what}-{os.getpid()}-{time.time_ns()}"
        path.mkdir(parents=True)
        path.chmod(0o700)
        return path

    async def _record_created(self, started: int, result: BackupResult) -> None:
        finished = time.time_ns() // 1000
        for copy in result.copies:
            run = BackupRun(
                "create", started, finished, copy.ok, result.name, copy.target,
                result.bytes, copy.detail or f"{result.bytes} bytes, sha256 {result.sha256}",
            )  # fmt: skip
            await self._record(run)
            if self.metrics is not None:
                m = self.metrics
                m.backup_runs.labels(copy.target, "ok" if copy.ok else "failed").inc()
                if copy.ok:
                    m.backup_last_success.labels(copy.target).set(finished / 1e6)
                    m.backup_last_duration.labels(copy.target).set(result.seconds)
                    m.backup_last_size.labels(copy.target).set(result.bytes)
        if self.alerts is None:
            return
        failed = [c for c in result.copies if not c.ok]
        if failed:
            detail = "; ".join(f"{c.target}: {c.detail}" for c in failed)
            await self.alerts.raise_alert(FAILED_ALERT, f"backup {result.name} failed on {detail}")
        else:
            await self.alerts.clear(FAILED_ALERT, f"backup {result.name} written")
            await self.alerts.clear(OVERDUE_ALERT, f"backup {result.name} written")

    async def _record_failure(
        self, started: int, name: str, targets: Sequence[Target], detail: str
    ) -> None:
        finished = time.time_ns() // 1000
        for target in targets:
            await self._record(
                BackupRun("create", started, finished, False, name, target.label, None, detail)
            )
            if self.metrics is not None:
                self.metrics.backup_runs.labels(target.label, "failed").inc()
        if self.alerts is not None:
            await self.alerts.raise_alert(FAILED_ALERT, f"backup {name} failed: {detail}")

    async def _record(self, run: BackupRun) -> None:
        if self.metadata is not None:
            try:
                await asyncio.to_thread(self.metadata.add_backup_run, run)
            except Exception:  # the outcome is logged anyway; never hide the backup's own
                log.exception("could not record a backup run in metadata.db")

    # -- list and prune ------------------------------------------------------------------

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
                stored, daily=s.backup_keep_daily, weekly=s.backup_keep_weekly,
                monthly=s.backup_keep_monthly,
            )  # fmt: skip
            for archive in doomed:
                if not dry_run:
                    await asyncio.to_thread(target.delete, archive.name)
                    log.info("pruned %s from %s", archive.name, target.label)
            removed[target.label] = [a.name for a in doomed]
        return removed

    # -- verify --------------------------------------------------------------------------

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
        started = time.time_ns() // 1000
        decryption = self.decryption(identity)
        staging = self._staging("verify")
        report = VerifyReport(archive, None, [])
        try:
            try:
                manifest = await self._open(archive, decryption, staging, progress)
            except (HomeIQError, ArchiveInvalid, DecryptionFailed) as exc:
                report.problems.append(str(exc))
            else:
                report.manifest = manifest
                report.checked.append(
                    f"decrypted; {len(manifest.members)} files match their sha256"
                )
                await self._check_content(manifest, staging / "content", report, progress)
                if test_restore and not report.problems:
                    await self._test_restore(manifest, staging, report, progress)
        finally:
            await _remove(staging)
        await self._record_verify(started, report)
        return report

    async def _open(
        self, archive: str, decryption: Decryption, staging: Path, progress: Progress
    ) -> Manifest:
        """Fetch (if needed), decrypt and unpack ``archive`` into ``staging/content``."""
        sealed = await self.locate(archive, staging)
        packed = staging / "archive.tar.gz"
        progress("decrypt", 0, None)
        await asyncio.to_thread(decryption.decrypt_file, sealed, packed)
        manifest = await asyncio.to_thread(unpack, packed, staging / "content", progress)
        await asyncio.to_thread(packed.unlink)
        return manifest

    async def _check_content(
        self, manifest: Manifest, content: Path, report: VerifyReport, progress: Progress
    ) -> None:
        for member in manifest.members:
            path = content / member.path
            if member.kind == "sqlite":
                progress(f"check {member.path}", 0, None)
                problems = await asyncio.to_thread(integrity_problems, path)
                report.problems += problems
                if problems:
                    continue
                found = (await asyncio.to_thread(describe_sqlite, path))["rows"]
                if found != member.info.get("rows"):
                    report.problems.append(
                        f"{member.path}: rows {found} differ from the manifest's"
                        f" {member.info.get('rows')}"
                    )
                else:
                    total = sum(found.values())
                    report.checked.append(f"{member.path}: integrity ok, {total:,} rows as listed")
            elif member.kind == "influxdb-lineprotocol":
                progress(f"check {member.path}", 0, None)
                try:
                    counts = await asyncio.to_thread(read_export, path)
                except ValueError as exc:
                    report.problems.append(f"{member.path}: {exc}")
                    continue
                expected = member.info.get("measurements")
                if counts != expected:
                    report.problems.append(
                        f"{member.path}: points {counts} differ from the manifest's {expected}"
                    )
                else:
                    report.checked.append(
                        f"{member.path}: {sum(counts.values()):,} points parse, as listed"
                    )

    async def _test_restore(
        self, manifest: Manifest, staging: Path, report: VerifyReport, progress: Progress
    ) -> None:
        """Restore into a scratch data directory (and a scratch InfluxDB database), open it
        as HomeIQ would, and compare counts with the manifest."""
        scratch = staging / "restore"
        scratch.mkdir()
        await asyncio.to_thread(_place_sqlite, manifest, staging / "content", scratch)
        try:
            counts = await asyncio.to_thread(_open_restored, scratch)
        except Exception as exc:  # an old or foreign schema, a store that will not open
            report.problems.append(f"test restore: HomeIQ cannot open the restored data: {exc}")
            return
        expected_events = manifest.events.get("count")
        if (
            manifest.store == "sqlite"
            and expected_events is not None
            and counts.get("events") != expected_events
        ):
            report.problems.append(
                f"test restore: {counts.get('events')} events, the manifest says {expected_events}"
            )
        report.checked.append(
            "test restore: HomeIQ opens the restored databases ("
            + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()))
            + ")"
        )
        for member in manifest.member("influxdb-lineprotocol"):
            config = self.influx_config()
            if config is None:
                report.problems.append(
                    "test restore: the archive holds an InfluxDB export, but HOMEIQ_STORE is"
                    " not influxdb, so there is no server to restore it into"
                )
                continue
            scratch_db = f"{config.database}_verify_{int(time.time())}"
            try:
                written = await influx.import_lineprotocol(
                    config, staging / "content" / member.path, database=scratch_db
                )
                expected = member.info.get("measurements")
                if written != expected:
                    report.problems.append(
                        f"test restore into {scratch_db}: points {written} differ from {expected}"
                    )
                else:
                    report.checked.append(
                        f"test restore: {sum(written.values()):,} points written to InfluxDB"
                        f" database {scratch_db} (dropped afterwards)"
                    )
            except Exception as exc:
                report.problems.append(f"test restore into InfluxDB ({scratch_db}): {exc}")
            finally:
                await influx.drop_database(config, scratch_db)

    async def _record_verify(self, started: int, report: VerifyReport) -> None:
        finished = time.time_ns() // 1000
        detail = "; ".join(report.problems) if report.problems else "; ".join(report.checked)
        await self._record(
            BackupRun(
                "verify",
                started,
                finished,
                report.ok,
                Path(report.archive).name,
                None,
                None,
                detail[:2000],
            )
        )
        if self.metrics is not None:
            self.metrics.backup_verifies.labels("ok" if report.ok else "failed").inc()
        if self.alerts is not None:
            if report.ok:
                await self.alerts.clear(VERIFY_ALERT, f"{report.archive} verified")
            else:
                await self.alerts.raise_alert(
                    VERIFY_ALERT, f"{Path(report.archive).name} failed verification: {detail}"
                )

    # -- restore -------------------------------------------------------------------------

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
        before touching anything."""
        decryption = self.decryption(identity)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock = DataDirLock(self.data_dir)
        running = holder(self.data_dir)
        if running is not None and not dry_run:
            if not stop_running:
                raise RestoreRefused(
                    f"HomeIQ (pid {running or '?'}) is running against {self.data_dir}: stop it"
                    " first, or pass --stop to have restore stop it"
                )
            await _stop_process(running, self.data_dir)
        staging = self._staging("restore")
        try:
            if not dry_run:
                lock.acquire()  # nothing starts against the data while it is replaced
            try:
                manifest = await self._open(archive, decryption, staging, progress)
            except (TargetUnavailable, ArchiveMismatch, ArchiveInvalid, DecryptionFailed) as exc:
                raise RestoreRefused(f"{exc}; nothing was restored") from None
            check = VerifyReport(archive, manifest, [])
            await self._check_content(manifest, staging / "content", check, progress)
            if check.problems:
                raise RestoreRefused("; ".join(check.problems) + "; nothing was restored")
            influx_members = manifest.member("influxdb-lineprotocol")
            config = self.influx_config()
            if influx_members and config is None:
                raise RestoreRefused(
                    "the archive holds an InfluxDB export: set HOMEIQ_STORE=influxdb and"
                    " HOMEIQ_INFLUXDB_URL to restore it; nothing was restored"
                )
            database = influxdb_database or (config.database if config else None)
            plan = [
                f"{m.path} -> {self.data_dir / Path(m.path).name}"
                for m in manifest.member("sqlite")
            ]
            plan += [f"{m.path} -> InfluxDB database {database}" for m in influx_members]
            if dry_run:
                return RestoreReport(archive, manifest, True, plan, None)
            aside = _new_folder(self.data_dir, f"pre-restore-{utc_now():%Y%m%dT%H%M%SZ}")
            await asyncio.to_thread(_move_live_aside, self.data_dir, aside)
            await asyncio.to_thread(_place_sqlite, manifest, staging / "content", self.data_dir)
            if config is not None and database is not None:
                for member in influx_members:
                    await self._restore_influx(
                        config, database, staging / "content" / member.path, aside, progress
                    )
            return RestoreReport(archive, manifest, False, plan, aside)
        finally:
            lock.release()
            await _remove(staging)

    async def _restore_influx(
        self, config: InfluxDBConfig, database: str, export: Path, aside: Path, progress: Progress
    ) -> None:
        """Write the export into ``database``; points already there are exported aside first."""
        if await influx.holds_points(config, database):
            kept = aside / f"influxdb-{database}.lp.gz"
            progress(f"keep InfluxDB {database} aside", 0, None)
            target = InfluxDBConfig(**{**_config_fields(config), "database": database})
            await influx.export_database(target, kept)
            log.info("the points of InfluxDB database %s were exported to %s", database, kept)

        def written(points: int) -> None:
            progress(f"restore InfluxDB {database}", points, None)

        await influx.import_lineprotocol(config, export, database=database, progress=written)


async def _remove(staging: Path) -> None:
    """Remove a staging folder (gigabytes: not on the event loop's thread)."""
    await asyncio.to_thread(shutil.rmtree, staging, ignore_errors=True)


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


def _config_fields(config: InfluxDBConfig) -> dict[str, Any]:
    return {f: getattr(config, f) for f in config.__dataclass_fields__}


def _place_sqlite(manifest: Manifest, content: Path, data_dir: Path) -> None:
    """Move the archive's database snapshots into ``data_dir`` (no WAL files beside them)."""
    for member in manifest.member("sqlite"):
        source = content / member.path
        dest = data_dir / Path(member.path).name
        for suffix in ("-wal", "-shm"):
            Path(f"{dest}{suffix}").unlink(missing_ok=True)
        shutil.move(source, dest)
        dest.chmod(0o600)


def _move_live_aside(data_dir: Path, aside: Path) -> None:
    """Every database file HomeIQ owns (with its WAL) into ``aside``."""
    for db in SQLITE_DATABASES:
        for suffix in ("", "-wal", "-shm"):
            path = data_dir / f"{db}{suffix}"
            if path.exists():
                shutil.move(path, aside / path.name)


def _open_restored(data_dir: Path) -> dict[str, int]:
    """Open restored databases with HomeIQ's own stores (checking their schema versions)
    and count what they hold: proof that the restore gives a working installation."""
    from homeiq.maintenance.rollups import ROLLUPS_DB, RollupStore
    from homeiq.sinks.sqlite.store import SQLiteEventStore

    counts: dict[str, int] = {}
    metadata = MetadataStore.in_dir(data_dir)
    try:
        snapshot = metadata.load_registry()
        counts["entities in the registry"] = len(snapshot.entities)
        counts["api keys"] = len(metadata.api_keys())
    finally:
        metadata.close()
    if (data_dir / EVENTS_DB).exists():
        store = SQLiteEventStore.in_dir(data_dir, readonly=True)
        try:
            counts["events"] = store.summary().total
        finally:
            store.close()
    if (data_dir / ROLLUPS_DB).exists():  # absent until the first rollup is kept
        RollupStore.in_dir(data_dir, readonly=True).close()
    return counts


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


__all__ = [
    "BackupError",
    "BackupResult",
    "BackupService",
    "Copy",
    "DataDirBusy",
    "RestoreRefused",
    "RestoreReport",
    "VerifyReport",
]
