"""``backup verify``: decrypt an archive, check every checksum and count, open every
database as HomeIQ would, and (by default) restore it into a scratch place: the data
directory's databases into a scratch folder, the store's own part (an InfluxDB export)
into a scratch database. Never touches live data."""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from homeiq.errors import ArchiveInvalid, BackupError, DecryptionFailed, HomeIQError
from homeiq.maintenance.backup.archive import (
    SQLITE_KIND,
    Manifest,
    Progress,
    describe_sqlite,
    integrity_problems,
    unpack,
)
from homeiq.maintenance.backup.create import remove
from homeiq.maintenance.backup.crypto import Decryption
from homeiq.maintenance.backup.influx_lineprotocol import read_export
from homeiq.metadata.store import MetadataStore
from homeiq.model import BackupRun
from homeiq.sinks import registry
from homeiq.sinks.influxdb.backend import LINE_PROTOCOL_KIND
from homeiq.sinks.sqlite.store import EVENTS_DB

if TYPE_CHECKING:
    from homeiq.maintenance.backup.service import BackupService

VERIFY_ALERT = "backup_verify_failed"


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


async def verify_archive(
    service: BackupService,
    archive: str,
    decryption: Decryption,
    test_restore: bool,
    progress: Progress,
) -> VerifyReport:
    """Verify ``archive`` in a staging folder; the outcome is recorded and alerted."""
    started = time.time_ns() // 1000
    staging = service.staging("verify")
    report = VerifyReport(archive, None, [])
    try:
        try:
            manifest = await open_archive(service, archive, decryption, staging, progress)
        except (HomeIQError, ArchiveInvalid, DecryptionFailed) as exc:
            report.problems.append(str(exc))
        else:
            report.manifest = manifest
            report.checked.append(f"decrypted; {len(manifest.members)} files match their sha256")
            await check_content(manifest, staging / "content", report, progress)
            if test_restore and not report.problems:
                await _test_restore(service, manifest, staging, report)
    finally:
        await remove(staging)
    await _record_verify(service, started, report)
    return report


async def open_archive(
    service: BackupService,
    archive: str,
    decryption: Decryption,
    staging: Path,
    progress: Progress,
) -> Manifest:
    """Fetch (if needed), decrypt and unpack ``archive`` into ``staging/content``."""
    sealed = await service.locate(archive, staging)
    packed = staging / "archive.tar.gz"
    progress("decrypt", 0, None)
    await asyncio.to_thread(decryption.decrypt_file, sealed, packed)
    manifest = await asyncio.to_thread(unpack, packed, staging / "content", progress)
    await asyncio.to_thread(packed.unlink)
    return manifest


async def check_content(
    manifest: Manifest, content: Path, report: VerifyReport, progress: Progress
) -> None:
    """Every database's integrity and row counts, every export's lines and point counts,
    against the manifest; what is wrong goes into ``report.problems``."""
    for member in manifest.members:
        path = content / member.path
        if member.kind == SQLITE_KIND:
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
        elif member.kind == LINE_PROTOCOL_KIND:  # its format, whatever the store is now
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


def place_sqlite(manifest: Manifest, content: Path, data_dir: Path) -> None:
    """Move the archive's database snapshots into ``data_dir`` (no WAL files beside them)."""
    for member in manifest.member(SQLITE_KIND):
        source = content / member.path
        dest = data_dir / Path(member.path).name
        for suffix in ("-wal", "-shm"):
            Path(f"{dest}{suffix}").unlink(missing_ok=True)
        shutil.move(source, dest)
        dest.chmod(0o600)


def store_refusal(manifest: Manifest, backend: registry.Backend) -> str | None:
    """Why the configured store cannot take the archive's store data, or None if it can."""
    for member in manifest.members:
        owner = registry.store_of_kind(member.kind)
        if owner is not None and member.kind not in backend.archive_kinds:
            return (
                f"the archive holds {member.kind} data of the {owner} store, but HOMEIQ_STORE"
                f" is {backend.name}: set HOMEIQ_STORE={owner} (and its settings) to restore it"
            )
    return None


async def _test_restore(
    service: BackupService, manifest: Manifest, staging: Path, report: VerifyReport
) -> None:
    """Restore into a scratch data directory (and the store's scratch place), open it as
    HomeIQ would, and compare counts with the manifest."""
    scratch = staging / "restore"
    scratch.mkdir()
    await asyncio.to_thread(place_sqlite, manifest, staging / "content", scratch)
    try:
        counts = await asyncio.to_thread(_open_restored, scratch)
    except Exception as exc:  # an old or foreign schema, a store that will not open
        report.problems.append(f"test restore: HomeIQ cannot open the restored data: {exc}")
        return
    expected_events = manifest.events.get("count")
    events_db = registry.backend_class(manifest.store).events_db
    if (
        events_db is not None
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
    backend = registry.backend(service.settings)
    refused = store_refusal(manifest, backend)
    if refused is not None:
        report.problems.append(f"test restore: {refused}")
        return
    part = backend.backup_part()
    for member in manifest.members:
        if part is None or member.kind not in backend.archive_kinds:
            continue
        try:
            report.checked.append(
                await part.test_restore(staging / "content" / member.path, member.info)
            )
        except BackupError as exc:
            report.problems.append(str(exc))


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


async def _record_verify(service: BackupService, started: int, report: VerifyReport) -> None:
    finished = time.time_ns() // 1000
    detail = "; ".join(report.problems) if report.problems else "; ".join(report.checked)
    name = Path(report.archive).name
    await service.record(
        BackupRun("verify", started, finished, report.ok, name, None, None, detail[:2000])
    )
    if service.metrics is not None:
        service.metrics.backup_verifies.labels("ok" if report.ok else "failed").inc()
    if service.alerts is not None:
        if report.ok:
            await service.alerts.clear(VERIFY_ALERT, f"{report.archive} verified")
        else:
            await service.alerts.raise_alert(VERIFY_ALERT, f"{name} failed verification: {detail}")
