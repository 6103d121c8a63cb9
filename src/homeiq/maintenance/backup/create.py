"""``backup create``: snapshot every store into one encrypted archive and copy it to the
targets, recording each copy's outcome (metadata.db, metrics, the ``backup_failed``
alert)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from homeiq.maintenance.backup.archive import (
    MANIFEST,
    SQLITE_DATABASES,
    SQLITE_KIND,
    Manifest,
    Member,
    Progress,
    backup_settings,
    describe_sqlite,
    pack,
    sha256_of,
    snapshot_sqlite,
    utc_now,
    write_manifest_file,
)
from homeiq.maintenance.backup.targets import Target, archive_name
from homeiq.model import BackupRun
from homeiq.sinks import registry

if TYPE_CHECKING:
    from homeiq.maintenance.backup.service import BackupService

log = logging.getLogger(__name__)

FAILED_ALERT = "backup_failed"
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


async def create_archive(
    service: BackupService, chosen: Sequence[Target], progress: Progress
) -> BackupResult:
    """Make the archive in a staging folder, copy it to ``chosen``, record the outcome."""
    encryption = service.encryption()
    started = time.time_ns() // 1000
    clock = time.perf_counter()
    created = utc_now()
    name = archive_name(created)
    staging = service.staging("create")
    try:
        try:
            manifest = await collect(service, staging / "content", created, progress)
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
            await _record_failure(service, started, name, chosen, f"{type(exc).__name__}: {exc}")
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
        await remove(staging)
    seconds = time.perf_counter() - clock
    result = BackupResult(name, manifest, size, digest, seconds, copies)
    await _record_created(service, started, result)
    return result


async def collect(
    service: BackupService, content: Path, created: datetime, progress: Progress
) -> Manifest:
    """Snapshots of the data directory's databases, the store's own part (an InfluxDB
    export, say) into ``content``, and their manifest."""
    members: list[Member] = []
    (content / "sqlite").mkdir(parents=True)
    for db in SQLITE_DATABASES:
        source = service.data_dir / db
        if not source.exists():
            continue
        dest = content / "sqlite" / db
        await asyncio.to_thread(snapshot_sqlite, source, dest, progress)
        info = await asyncio.to_thread(describe_sqlite, dest)
        members.append(await member(content, dest, SQLITE_KIND, info))
    backend = registry.backend(service.settings)
    events: dict[str, Any] = {}
    if backend.events_db is not None:
        found = next((m for m in members if m.path == f"sqlite/{backend.events_db}"), None)
        if found is not None:
            events = {
                "count": found.info["rows"].get("events", 0),
                "first_time_us": found.info.get("first_time_us"),
                "last_time_us": found.info.get("last_time_us"),
            }
    part = backend.backup_part()
    if part is not None:
        files, events = await part.export(content, progress)
        for file in files:
            members.append(await member(content, file.path, file.kind, file.info))
    manifest = Manifest(
        created_at=created,
        store=service.settings.store,
        members=members,
        settings=backup_settings(service.settings),
        events=events,
    )
    write_manifest_file(manifest, content / MANIFEST)
    return manifest


async def member(content: Path, path: Path, kind: str, info: dict[str, Any]) -> Member:
    """The manifest entry of a file under ``content``: its size and sha256 (in a thread)."""
    digest = await asyncio.to_thread(sha256_of, path)
    size = (await asyncio.to_thread(path.stat)).st_size
    return Member(path.relative_to(content).as_posix(), kind, size, digest, info)


async def remove(staging: Path) -> None:
    """Remove a staging folder (gigabytes: not on the event loop's thread)."""
    await asyncio.to_thread(shutil.rmtree, staging, ignore_errors=True)


async def _record_created(service: BackupService, started: int, result: BackupResult) -> None:
    finished = time.time_ns() // 1000
    for copy in result.copies:
        run = BackupRun(
            "create", started, finished, copy.ok, result.name, copy.target,
            result.bytes, copy.detail or f"{result.bytes} bytes, sha256 {result.sha256}",
        )  # fmt: skip
        await service.record(run)
        if service.metrics is not None:
            m = service.metrics
            m.backup_runs.labels(copy.target, "ok" if copy.ok else "failed").inc()
            if copy.ok:
                m.backup_last_success.labels(copy.target).set(finished / 1e6)
                m.backup_last_duration.labels(copy.target).set(result.seconds)
                m.backup_last_size.labels(copy.target).set(result.bytes)
    if service.alerts is None:
        return
    failed = [c for c in result.copies if not c.ok]
    if failed:
        detail = "; ".join(f"{c.target}: {c.detail}" for c in failed)
        await service.alerts.raise_alert(FAILED_ALERT, f"backup {result.name} failed on {detail}")
    else:
        await service.alerts.clear(FAILED_ALERT, f"backup {result.name} written")
        await service.alerts.clear(OVERDUE_ALERT, f"backup {result.name} written")


async def _record_failure(
    service: BackupService, started: int, name: str, targets: Sequence[Target], detail: str
) -> None:
    finished = time.time_ns() // 1000
    for target in targets:
        await service.record(
            BackupRun("create", started, finished, False, name, target.label, None, detail)
        )
        if service.metrics is not None:
            service.metrics.backup_runs.labels(target.label, "failed").inc()
    if service.alerts is not None:
        await service.alerts.raise_alert(FAILED_ALERT, f"backup {name} failed: {detail}")
