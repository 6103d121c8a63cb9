"""Backups of the embedded store, end to end through :class:`BackupService`: create
(snapshots while writes go on), the manifest, verify with a test restore, restore with
the current data kept aside, refusals (a running HomeIQ, damaged archives, wrong keys)
that leave live data untouched, the standard ``age`` tool, prune, and the records and
metrics every outcome leaves."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import sqlite3
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import pytest

from homeiq.api.auth import create_key
from homeiq.errors import BackupError, DataDirBusy, RestoreRefused
from homeiq.lockfile import DataDirLock
from homeiq.maintenance.alerts import Alerts
from homeiq.maintenance.backup.archive import FORMAT
from homeiq.maintenance.backup.crypto import age_cli, new_identity
from homeiq.maintenance.backup.service import (
    FAILED_ALERT,
    BackupService,
)
from homeiq.maintenance.backup.targets import FileTarget, archive_name
from homeiq.maintenance.rollups import RollupStore
from homeiq.metadata.store import MetadataStore
from homeiq.model import Area, BackupRun, Entity, RegistrySnapshot
from homeiq.observability.metrics import Metrics
from homeiq.settings import Settings
from homeiq.sinks.sqlite.store import SQLiteEventStore
from tests.support.influxdb import T0, event
from tests.support.s3 import MotoServer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ENTITIES = ("sensor.temp", "light.kitchen", "switch.heater")
REGISTRY = RegistrySnapshot(
    areas=(Area("kitchen", "Kitchen", None),),
    entities=tuple(Entity(e, area_id="kitchen") for e in sorted(ENTITIES)),
)


@dataclass
class Home:
    """A data directory with every database, and the service that backs it up."""

    settings: Settings
    identity_file: Path
    targets: Path
    metadata: MetadataStore
    metrics: Metrics
    alerts: Alerts
    service: BackupService

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir


def write_events(data_dir: Path, first: int, count: int) -> None:
    store = SQLiteEventStore.in_dir(data_dir)
    try:
        store.write([event(ENTITIES[i % 3], second=first + i, state=str(i)) for i in range(count)])
    finally:
        store.close()


def stored_events(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "events.db") as conn:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])


def fingerprint(data_dir: Path) -> dict[str, str]:
    """sha256 of the event and rollup databases (live data, untouched?). metadata.db is
    left out: every verify records its outcome there, by design."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(data_dir.glob("*.db*"))
        if p.is_file() and not p.name.startswith("metadata.db")
    }


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    write_events(data_dir, 0, 300)
    RollupStore.in_dir(data_dir).close()
    secret, public = new_identity()
    identity_file = tmp_path / "identity.txt"
    identity_file.write_text(f"# test key\n{secret}\n")
    targets = tmp_path / "nas"
    settings = Settings(
        data_dir=data_dir,
        ha_token="secret-ha-token-123",
        backup_recipients=[public],
        backup_identity_file=identity_file,
        backup_targets=[targets.as_uri()],
    )
    metadata = MetadataStore.in_dir(data_dir)
    metadata.replace_registry(REGISTRY)
    create_key(metadata, "grafana", ["read"])
    metrics = Metrics()
    alerts = Alerts(metrics)
    service = BackupService(settings, metadata=metadata, metrics=metrics, alerts=alerts)
    yield Home(settings, identity_file, targets, metadata, metrics, alerts, service)
    metadata.close()


async def test_create_writes_an_encrypted_archive_with_its_manifest(home: Home) -> None:
    result = await home.service.create()
    assert result.ok
    assert [c.target for c in result.copies] == [home.targets.as_uri()]
    stored = home.targets / result.name
    assert stored.read_bytes().startswith(b"age-encryption.org/v1\n")
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == result.sha256
    assert b"sensor.temp" not in stored.read_bytes()  # encrypted, not merely compressed

    m = result.manifest
    assert m.format == FORMAT and m.store == "sqlite"
    assert m.events["count"] == 300
    assert m.events["first_time_us"] == T0 and m.events["last_time_us"] == T0 + 299_000_000
    by_path = {member.path: member for member in m.members}
    assert set(by_path) == {"sqlite/metadata.db", "sqlite/events.db", "sqlite/rollups.db"}
    assert by_path["sqlite/events.db"].info["rows"]["events"] == 300
    assert by_path["sqlite/metadata.db"].info["rows"]["api_keys"] == 1
    assert by_path["sqlite/metadata.db"].info["schema_version"] >= 4
    assert "ha_token" not in m.settings  # secrets removed, not masked
    assert "secret-ha-token-123" not in orjson.dumps(m.to_json()).decode()
    assert m.settings["backup_recipients"] == home.settings.backup.recipients

    runs = home.metadata.backup_runs(kind="create")
    assert [(r.ok, r.archive, r.target, r.bytes) for r in runs] == [
        (True, result.name, home.targets.as_uri(), result.bytes)
    ]
    labels = {"target": home.targets.as_uri()}
    assert home.metrics.value("homeiq_backup_last_size_bytes", labels) == result.bytes
    assert home.metrics.value("homeiq_backup_runs_total", {**labels, "outcome": "ok"}) == 1
    assert home.metrics.value("homeiq_backup_last_success_timestamp_seconds", labels) > 0
    assert not list(home.data_dir.glob(".backup-*"))  # staging removed


@pytest.mark.skipif(age_cli() is None, reason="the age command is not installed")
def test_the_standard_age_tool_opens_an_archive(home: Home, tmp_path: Path) -> None:
    result = asyncio.run(home.service.create())
    age = age_cli()
    assert age is not None
    plain = subprocess.run(
        [age, "-d", "-i", str(home.identity_file), str(home.targets / result.name)],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(plain), mode="r:gz") as tar:
        names = tar.getnames()
        manifest = orjson.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        tar.extract("sqlite/events.db", tmp_path, filter="data")
    assert names[0] == "manifest.json"
    assert manifest["events"]["count"] == 300
    with sqlite3.connect(tmp_path / "sqlite" / "events.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 300


async def test_verify_checks_everything_and_restores_into_a_scratch_place(home: Home) -> None:
    result = await home.service.create()
    before = fingerprint(home.data_dir)
    report = await home.service.verify(result.name)
    assert report.ok, report.problems
    text = "\n".join(report.checked)
    assert "sqlite/events.db: integrity ok" in text
    assert "test restore: HomeIQ opens the restored databases" in text
    assert "events 300" in text and "api keys 1" in text
    assert fingerprint(home.data_dir) == before
    runs = home.metadata.backup_runs(kind="verify")
    assert runs[0].ok and runs[0].archive == result.name
    assert home.metrics.value("homeiq_backup_verifies_total", {"outcome": "ok"}) == 1


async def test_snapshots_are_consistent_while_events_are_written(home: Home) -> None:
    stop = threading.Event()
    written = [300]

    def keep_writing() -> None:
        while not stop.is_set():
            write_events(home.data_dir, written[0], 50)
            written[0] += 50

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        result = await home.service.create()
    finally:
        stop.set()
        writer.join()
    counted = result.manifest.events["count"]
    assert 300 <= counted <= written[0]
    report = await home.service.verify(result.name)
    assert report.ok, report.problems
    assert f"events {counted:,}" in "\n".join(report.checked)


def damaged_copies(archive: Path) -> dict[str, bytes]:
    data = archive.read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x01
    return {"flipped byte": bytes(flipped), "truncated": data[: len(data) * 2 // 3]}


async def test_damaged_archives_and_wrong_keys_are_rejected_without_touching_data(
    home: Home, tmp_path: Path
) -> None:
    result = await home.service.create()
    write_events(home.data_dir, 1000, 10)  # live data moved on since the backup
    before = fingerprint(home.data_dir)
    for what, content in damaged_copies(home.targets / result.name).items():
        bad = tmp_path / f"bad-{what.replace(' ', '-')}.tar.age"
        bad.write_bytes(content)
        report = await home.service.verify(str(bad))
        assert not report.ok
        assert "cannot decrypt" in report.problems[0], (what, report.problems)
        with pytest.raises(RestoreRefused, match="nothing was restored"):
            await home.service.restore(str(bad))
        assert fingerprint(home.data_dir) == before, what

    other_secret, _ = new_identity()
    wrong = tmp_path / "wrong.txt"
    wrong.write_text(other_secret + "\n")
    report = await home.service.verify(result.name, identity=wrong)
    assert not report.ok and "wrong key" in report.problems[0]
    with pytest.raises(RestoreRefused, match="wrong key or passphrase"):
        await home.service.restore(result.name, identity=wrong)
    not_age = tmp_path / "homeiq-20260101T000000Z.tar.age"
    not_age.write_bytes(b"PK\x03\x04 not an archive")
    report = await home.service.verify(str(not_age))
    assert report.problems == [f"{not_age.name} is not an age-encrypted file"]
    assert fingerprint(home.data_dir) == before
    assert home.metrics.value("homeiq_backup_verifies_total", {"outcome": "failed"}) == 4


async def test_a_tampered_copy_on_the_target_is_caught_by_its_checksum(home: Home) -> None:
    result = await home.service.create()
    stored = home.targets / result.name
    stored.write_bytes(damaged_copies(stored)["flipped byte"])
    report = await home.service.verify(result.name)
    assert not report.ok
    assert "sha256" in report.problems[0] or "checksum" in report.problems[0].lower()


async def test_restore_replaces_the_data_and_keeps_the_old_aside(home: Home) -> None:
    result = await home.service.create()
    write_events(home.data_dir, 1000, 25)
    home.metadata.replace_registry(RegistrySnapshot())
    assert stored_events(home.data_dir) == 325
    home.metadata.close()  # the installation is stopped for a restore

    dry = await home.service.restore(result.name, dry_run=True)
    assert dry.dry_run and dry.kept_aside is None
    assert any("sqlite/events.db ->" in line for line in dry.restored)
    assert stored_events(home.data_dir) == 325

    report = await home.service.restore(result.name)
    assert stored_events(home.data_dir) == 300
    assert report.kept_aside is not None
    assert report.kept_aside.parent == home.data_dir
    with sqlite3.connect(report.kept_aside / "events.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 325
    restored = MetadataStore.in_dir(home.data_dir)
    try:
        assert restored.load_registry() == REGISTRY
        assert [k.name for k in restored.api_keys()] == ["grafana"]
    finally:
        restored.close()
    home.metadata = MetadataStore.in_dir(home.data_dir)  # for the fixture's teardown


async def test_restore_keeps_the_live_backup_history(home: Home) -> None:
    before = BackupRun("verify", 1, 2, True, "older.tar.age", None, None, "before the archive")
    home.metadata.add_backup_run(before)  # in the archive's snapshot, and live
    result = await home.service.create()
    assert (await home.service.verify(result.name, test_restore=False)).ok
    home.metadata.replace_registry(RegistrySnapshot())  # live data the restore replaces
    live = list(reversed(home.metadata.backup_runs()))
    assert [(r.kind, r.archive) for r in live] == [
        ("verify", "older.tar.age"),
        ("create", result.name),
        ("verify", result.name),
    ]
    home.metadata.close()

    await home.service.restore(result.name)

    restored = MetadataStore.in_dir(home.data_dir)
    try:
        assert restored.load_registry() == REGISTRY  # the archive's metadata.db...
        runs = list(reversed(restored.backup_runs()))  # ...with the live history, once
    finally:
        restored.close()
    assert runs[:-1] == live
    restore = runs[-1]
    assert (restore.kind, restore.ok, restore.archive) == ("restore", True, result.name)
    assert restore.detail.startswith(f"restored {result.name}")
    assert restore.started_at <= restore.finished_at
    home.metadata = MetadataStore.in_dir(home.data_dir)  # for the fixture's teardown


async def test_restore_refuses_while_homeiq_runs_and_can_stop_it(home: Home) -> None:
    result = await home.service.create()
    lock = DataDirLock(home.data_dir)
    lock.acquire()
    try:
        with pytest.raises(DataDirBusy):
            DataDirLock(home.data_dir).acquire()  # one HomeIQ per data directory
        with pytest.raises(RestoreRefused, match=f"pid {os.getpid()}.*--stop"):
            await home.service.restore(result.name)
    finally:
        lock.release()

    # A HomeIQ in another process: restore --stop sends it SIGTERM and waits.
    holder = subprocess.Popen(  # noqa: ASYNC220 (started before anything awaits it)
        [
            sys.executable,
            "-c",
            "import sys, time, signal; from pathlib import Path;"
            "from homeiq.lockfile import DataDirLock;"
            "lock = DataDirLock(Path(sys.argv[1])); lock.acquire();"
            "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0));"
            "print('locked', flush=True); time.sleep(60)",
            str(home.data_dir),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        with pytest.raises(RestoreRefused, match=f"pid {holder.pid}"):
            await home.service.restore(result.name)
        report = await home.service.restore(result.name, stop_running=True)
        assert holder.wait(10) == 0
        assert not report.dry_run
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()


async def test_passphrase_archives_round_trip(home: Home, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=home.data_dir,
        backup_passphrase="correct horse battery staple",
        backup_targets=[home.targets.as_uri()],
    )
    service = BackupService(settings, metadata=home.metadata)
    result = await service.create()
    report = await service.verify(result.name)
    assert report.ok, report.problems
    wrong = BackupService(
        Settings(
            data_dir=home.data_dir,
            backup_passphrase="wrong",
            backup_targets=[home.targets.as_uri()],
        )
    )
    failed = await wrong.verify(result.name)
    assert not failed.ok and "cannot decrypt" in failed.problems[0]


async def test_without_recipients_or_passphrase_nothing_is_written(tmp_path: Path) -> None:
    service = BackupService(Settings(data_dir=tmp_path, backup_targets=[(tmp_path / "t").as_uri()]))
    assert not service.configured
    with pytest.raises(Exception, match="HOMEIQ_BACKUP_RECIPIENTS"):
        await service.create()
    assert not (tmp_path / "t").exists() or not list((tmp_path / "t").iterdir())


async def test_a_failed_copy_is_recorded_and_raises_the_alert(home: Home, tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the target directory should be")
    good = FileTarget(tmp_path / "good")
    service = BackupService(
        home.settings,
        metadata=home.metadata,
        metrics=home.metrics,
        alerts=home.alerts,
        targets=[good, FileTarget(blocked)],
    )
    result = await service.create()
    assert not result.ok
    assert [c.ok for c in result.copies] == [True, False]
    assert [a.name for a in home.alerts.active()] == [FAILED_ALERT]
    assert blocked.as_uri() in home.alerts.active()[0].message
    failed = home.metadata.backup_runs(kind="create", ok=False)
    assert failed[0].target == FileTarget(blocked).label
    # The next good backup clears the alert.
    fixed = BackupService(
        home.settings, metadata=home.metadata, metrics=home.metrics, alerts=home.alerts,
        targets=[good],
    )  # fmt: skip
    assert (await fixed.create()).ok
    assert home.alerts.active() == []


async def test_only_the_chosen_target_and_unknown_targets_are_refused(home: Home) -> None:
    with pytest.raises(BackupError, match="no backup target s3://nope"):
        await home.service.create(targets=["s3://nope"])
    result = await home.service.create(targets=[home.targets.as_uri()])
    assert result.ok


async def test_prune_keeps_generations(home: Home) -> None:
    result = await home.service.create()
    source = home.targets / result.name
    sidecar = (home.targets / f"{result.name}.sha256").read_text().split()[0]
    newest = datetime.now(UTC).replace(microsecond=0)
    for days in range(1, 60):  # one archive a day for two months
        name = archive_name(newest - timedelta(days=days))
        (home.targets / name).write_bytes(source.read_bytes())
        (home.targets / f"{name}.sha256").write_text(f"{sidecar}  {name}\n")
    before = {a.name for a in (await home.service.archives())[home.targets.as_uri()]}
    assert len(before) == 60
    planned = await home.service.prune(dry_run=True)
    assert len(list(home.targets.glob("*.tar.age"))) == 60
    removed = await home.service.prune()
    assert removed == planned
    kept = {a.name for a in (await home.service.archives())[home.targets.as_uri()]}
    assert result.name in kept
    assert kept | set(removed[home.targets.as_uri()]) == before
    assert 7 <= len(kept) <= 7 + 4 + 6
    assert await home.service.prune() == {home.targets.as_uri(): []}


@pytest.mark.s3
async def test_an_s3_target_and_a_folder_together(
    home: Home,
    s3_server: MotoServer,
    s3_bucket: tuple[S3Client, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both targets get a verified copy; the S3 one is found by name, fetched (its checksum
    checked), verified and restored, with credentials the usual boto3 ways (env)."""
    client, bucket = s3_bucket
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    s3 = f"s3://{bucket}/homeiq"
    backup = home.settings.backup.model_copy(update={"targets": [s3, home.targets.as_uri()]})
    settings = home.settings.model_copy(update={"backup": backup})
    service = BackupService(settings, metadata=home.metadata, metrics=home.metrics)
    result = await service.create()
    assert [(c.target, c.ok) for c in result.copies] == [(s3, True), (home.targets.as_uri(), True)]
    stored = client.head_object(Bucket=bucket, Key=f"homeiq/{result.name}")
    assert stored["ContentLength"] == result.bytes
    assert stored["Metadata"]["sha256"] == result.sha256

    (home.targets / result.name).unlink()  # only S3 holds it now
    report = await service.verify(result.name)
    assert report.ok, report.problems
    write_events(home.data_dir, 5000, 7)
    home.metadata.close()
    await service.restore(result.name)
    assert stored_events(home.data_dir) == 300
    home.metadata = MetadataStore.in_dir(home.data_dir)


async def test_a_second_homeiq_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    from homeiq.runtime import Runtime

    settings = Settings(data_dir=tmp_path, sqlite_writer="thread", backfill=False)
    first = Runtime(settings)
    await first.start()
    try:
        second = Runtime(settings)
        with pytest.raises(DataDirBusy, match=f"pid {os.getpid()}"):
            await second.start()
        await second.stop()
    finally:
        await first.stop()
    again = Runtime(settings)  # released on stop
    await again.start()
    await again.stop()
