"""The backup schedule: when it runs, what a run does (backup, prune, the weekly verify
with a test restore) and the overdue alert."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from pathlib import Path

import pytest

from homeiq.maintenance.alerts import Alerts
from homeiq.maintenance.backup.crypto import new_identity
from homeiq.maintenance.backup.schedule import DAY_S, GRACE_S, BackupScheduler, next_run
from homeiq.maintenance.backup.service import OVERDUE_ALERT, BackupService
from homeiq.metadata.store import MetadataStore
from homeiq.observability.metrics import Metrics
from homeiq.settings import Settings
from homeiq.sinks.sqlite.store import SQLiteEventStore
from tests.support.influxdb import event
from tests.support.wait import async_wait_until

HOUR_US = 3600 * 1_000_000


def test_next_run_is_the_next_local_occurrence() -> None:
    assert next_run(datetime(2026, 11, 26, 2, 0), 3, 30) == datetime(2026, 11, 26, 3, 30)
    assert next_run(datetime(2026, 11, 26, 3, 30), 3, 30) == datetime(2026, 11, 27, 3, 30)
    assert next_run(datetime(2026, 12, 31, 23, 59), 0, 0) == datetime(2027, 1, 1, 0, 0)


def test_the_schedule_setting_is_checked() -> None:
    assert Settings(backup_schedule=" OFF ").backup.schedule == "off"
    for bad in ("3:5", "24:00", "noon", "03:30:00"):
        with pytest.raises(ValueError, match="HH:MM"):
            Settings(backup_schedule=bad)


def service(tmp_path: Path, **overrides: object) -> tuple[BackupService, MetadataStore, Alerts]:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    store = SQLiteEventStore.in_dir(data)
    store.write([event("sensor.a", second=i) for i in range(20)])
    store.close()
    secret, public = new_identity()
    identity = tmp_path / "id.txt"
    identity.write_text(secret + "\n")
    values: dict[str, object] = {
        "data_dir": data,
        "backup_recipients": [public],
        "backup_identity_file": identity,
        "backup_targets": [(tmp_path / "nas").as_uri()],
    }
    values.update(overrides)
    metadata = MetadataStore.in_dir(data)
    alerts = Alerts(Metrics())
    return BackupService(Settings(**values), metadata=metadata, alerts=alerts), metadata, alerts


async def test_a_scheduled_run_backs_up_prunes_and_verifies_on_its_weekday(
    tmp_path: Path,
) -> None:
    backups, metadata, _ = service(tmp_path, backup_verify_weekday="thu")
    thursday = datetime(2026, 11, 26, 3, 30)
    scheduler = BackupScheduler(backups, now=lambda: thursday)
    await scheduler.run_once()
    assert len(metadata.backup_runs(kind="create", ok=True)) == 1
    (verified,) = metadata.backup_runs(kind="verify")
    assert verified.ok and "test restore" in verified.detail

    friday = BackupScheduler(backups, now=lambda: datetime(2026, 11, 27, 3, 30))
    await friday.run_once()
    assert len(metadata.backup_runs(kind="create", ok=True)) == 2
    assert len(metadata.backup_runs(kind="verify")) == 1  # not the verify day
    metadata.close()


async def test_the_loop_runs_at_the_scheduled_time(tmp_path: Path) -> None:
    backups, metadata, _ = service(tmp_path, backup_schedule="03:30", backup_verify_weekday="off")
    times = iter([datetime(2026, 11, 26, 3, 29, 59, 990000)])  # just before, then at it

    def now() -> datetime:
        return next(times, datetime(2026, 11, 26, 3, 30, 0, 1))

    scheduler = BackupScheduler(backups, now=now)
    assert scheduler.enabled
    task = asyncio.create_task(scheduler.run())
    await async_wait_until(lambda: metadata.backup_runs(kind="create"), timeout=10, interval=0.05)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert len(metadata.backup_runs(kind="create", ok=True)) == 1
    assert scheduler.next_at == datetime(2026, 11, 27, 3, 30)
    assert scheduler.status().last_success_us is not None
    metadata.close()


async def test_no_schedule_without_encryption_or_when_off(tmp_path: Path) -> None:
    backups, metadata, _ = service(tmp_path, backup_schedule="off")
    assert not BackupScheduler(backups).enabled
    assert BackupScheduler(backups).status().reason == "HOMEIQ_BACKUP_SCHEDULE=off"
    await asyncio.wait_for(BackupScheduler(backups).run(), 1)  # returns at once
    unconfigured = BackupService(Settings(data_dir=tmp_path / "data"), metadata=metadata)
    assert "HOMEIQ_BACKUP_RECIPIENTS" in BackupScheduler(unconfigured).status().reason
    metadata.close()


async def test_overdue_backups_raise_an_alert_until_one_succeeds(tmp_path: Path) -> None:
    backups, metadata, alerts = service(tmp_path)
    clock = [0]
    scheduler = BackupScheduler(backups, wall_us=lambda: clock[0])
    assert not await scheduler.check_overdue()  # just started: give the schedule a day
    clock[0] = (DAY_S + GRACE_S) * 1_000_000 + 1
    assert await scheduler.check_overdue()
    (alert,) = alerts.active()
    assert alert.name == OVERDUE_ALERT and "last success: never" in alert.message

    await backups.create()  # a good backup clears it
    assert alerts.active() == []
    last = scheduler.last_success_us()
    assert last is not None
    clock[0] = last + 3 * HOUR_US
    assert not await scheduler.check_overdue()
    clock[0] = last + (DAY_S + GRACE_S) * 1_000_000 + 1
    assert await scheduler.check_overdue()
    assert "last success: 20" in alerts.active()[0].message
    metadata.close()
