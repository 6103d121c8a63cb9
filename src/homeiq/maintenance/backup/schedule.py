"""The backup schedule, run inside ``homeiq run``: a daily backup at
``HOMEIQ_BACKUP_SCHEDULE`` (local time), then pruning by generations, and on
``HOMEIQ_BACKUP_VERIFY_WEEKDAY`` a full verify of the new archive with a test restore.

Between runs it watches for overdue backups: when the last archive that reached a
target is older than ``HOMEIQ_ALERT_BACKUP_STALE_HOURS`` (default a day plus
:data:`GRACE_S`; or none has been made that long since start), the ``backup_overdue``
alert is raised on the alert engine; the next good backup clears it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from homeiq.maintenance.backup.service import OVERDUE_ALERT, VERIFY_ALERT, BackupService
from homeiq.settings import daily_time

log = logging.getLogger(__name__)

DAY_S = 86_400
GRACE_S = 2 * 3600  # a slow or retried backup is not yet an overdue one
CHECK_EVERY_S = 600.0
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def next_run(after: datetime, hour: int, minute: int) -> datetime:
    """The first local ``hour:minute`` strictly after ``after`` (a naive local time)."""
    candidate = after.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if candidate <= after:
        candidate += timedelta(days=1)
    return candidate


@dataclass(slots=True)
class ScheduleStatus:
    """What ``/api/v1/health`` shows of the schedule."""

    enabled: bool
    reason: str
    next_run: datetime | None
    last_success_us: int | None


class BackupScheduler:
    """Runs the scheduled backups of one :class:`BackupService`."""

    def __init__(
        self,
        service: BackupService,
        *,
        now: Callable[[], datetime] = datetime.now,
        wall_us: Callable[[], int] = lambda: time.time_ns() // 1000,
    ) -> None:
        self.service = service
        self.settings = service.settings
        self._now = now
        self._wall_us = wall_us
        self._started_us = wall_us()
        self.next_at: datetime | None = None

    @property
    def enabled(self) -> bool:
        """True when a schedule is set and archives can be encrypted."""
        return self.settings.backup.schedule != "off" and self.service.configured

    def status(self) -> ScheduleStatus:
        """The schedule as it stands."""
        if self.settings.backup.schedule == "off":
            reason = "HOMEIQ_BACKUP_SCHEDULE=off"
        elif not self.service.configured:
            reason = "no HOMEIQ_BACKUP_RECIPIENTS or HOMEIQ_BACKUP_PASSPHRASE_FILE set"
        else:
            reason = f"daily at {self.settings.backup.schedule} local time"
        return ScheduleStatus(self.enabled, reason, self.next_at, self.last_success_us())

    def last_success_us(self) -> int | None:
        """When the last archive reached its target (any target), from metadata.db."""
        metadata = self.service.metadata
        if metadata is None:
            return None
        runs = metadata.backup_runs(kind="create", ok=True, limit=1)
        return runs[0].finished_at if runs else None

    async def check_overdue(self) -> bool:
        """Raise the overdue alert when the last good backup is too old; True if overdue."""
        allowed_us = int(self.settings.alert.backup_stale_hours * 3600 * 1_000_000)
        last = self.last_success_us()
        reference = last if last is not None else self._started_us
        if self._wall_us() - reference <= allowed_us:
            return False
        alerts = self.service.alerts
        if alerts is not None:
            when = "never" if last is None else _iso(last)
            await alerts.raise_alert(
                OVERDUE_ALERT,
                f"no backup has completed for more than"
                f" {self.settings.alert.backup_stale_hours:g} hours (last success: {when};"
                f" schedule {self.settings.backup.schedule})",
            )
        return True

    async def run_once(self) -> None:
        """One scheduled run: backup, prune, and the weekly verify when it is the day."""
        today = WEEKDAYS[self._now().weekday()]
        try:
            result = await self.service.create()
        except Exception:
            log.exception("scheduled backup failed")
            return
        if not result.ok:
            return  # recorded and alerted by the service
        try:
            removed = await self.service.prune()
            log.info("scheduled backup %s written; pruned %s", result.name, removed)
        except Exception:
            log.exception("pruning old backups failed")
        if self.settings.backup.verify_weekday == today:
            try:
                report = await self.service.verify(result.name, test_restore=True)
                if report.ok:
                    log.info("weekly verify of %s: ok", result.name)
            except Exception:  # no identity to decrypt with, say: alert, do not crash
                log.exception("weekly verify of %s could not run", result.name)
                alerts = self.service.alerts
                if alerts is not None:
                    await alerts.raise_alert(
                        VERIFY_ALERT, f"weekly verify of {result.name} could not run"
                    )

    async def run(self) -> None:
        """Run backups at the scheduled time until cancelled."""
        if not self.enabled:
            log.info("scheduled backups off: %s", self.status().reason)
            return
        when = daily_time(self.settings.backup.schedule)
        assert when is not None  # settings validated it
        self.next_at = next_run(self._now(), *when)
        log.info("next scheduled backup at %s", self.next_at.isoformat(timespec="minutes"))
        while True:
            wait_s = (self.next_at - self._now()).total_seconds()
            if wait_s > 0:
                await self.check_overdue()
                await asyncio.sleep(min(wait_s, CHECK_EVERY_S))
                continue
            await self.run_once()
            self.next_at = next_run(self._now(), *when)


def _iso(time_us: int) -> str:
    return datetime.fromtimestamp(time_us / 1e6).astimezone().isoformat(timespec="seconds")
