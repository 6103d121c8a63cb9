"""The data lifecycle schedule, run inside ``homeiq run``: once a day at
``HOMEIQ_RETENTION_SCHEDULE`` (local time) the retention purge, then every extra job
it was given (the saved cleanup rules, say), one after the other.

One job failing (a store down, a bug) is logged and the next still runs; the schedule
goes on the next day. The jobs run in the server's process, so the SQLite deletes go
through the one writer like every write (see :mod:`homeiq.sinks.sqlite.erase`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from homeiq.errors import HomeIQError
from homeiq.maintenance.backup.schedule import next_run
from homeiq.maintenance.purge import Purger, PurgeReport
from homeiq.settings import daily_time

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[object]]
"""An extra daily job: an async function taking nothing (its result is only logged)."""


@dataclass(slots=True)
class LifecycleRun:
    """What the last scheduled run did: the purge's report and each job's failure."""

    started: datetime
    purge: PurgeReport | None = None
    failures: dict[str, str] = field(default_factory=dict)


class LifecycleScheduler:
    """Runs the purge and the extra jobs once a day at ``schedule`` (``HH:MM`` or ``off``)."""

    def __init__(
        self,
        schedule: str,
        purger: Purger | None,
        jobs: Sequence[tuple[str, Job]] = (),
        *,
        now: Callable[[], datetime] = datetime.now,
    ) -> None:
        self.schedule = schedule
        self.purger = purger
        self.jobs: list[tuple[str, Job]] = list(jobs)
        self._now = now
        self.next_at: datetime | None = None
        self.last: LifecycleRun | None = None

    @property
    def enabled(self) -> bool:
        """True when a daily time is set."""
        return daily_time(self.schedule) is not None

    def add(self, name: str, job: Job) -> None:
        """Run ``job`` every day after the purge (before :meth:`run` starts)."""
        self.jobs.append((name, job))

    async def run_once(self) -> LifecycleRun:
        """One scheduled run: the purge, then every job; failures logged, never raised."""
        run = LifecycleRun(self._now())
        if self.purger is not None:
            try:
                run.purge = await self.purger.run()
            except Exception as exc:
                run.failures["purge"] = _failure(exc, "the scheduled purge failed")
        for name, job in self.jobs:
            try:
                result = await job()
                log.info("scheduled %s: %s", name, result)
            except Exception as exc:
                run.failures[name] = _failure(exc, f"the scheduled {name} failed")
        self.last = run
        return run

    async def run(self) -> None:
        """Run daily at the scheduled time until cancelled (returns at once when off)."""
        when = daily_time(self.schedule)
        if when is None:
            log.info("scheduled purge and cleanup off: HOMEIQ_RETENTION_SCHEDULE=off")
            return
        self.next_at = next_run(self._now(), *when)
        log.info("next scheduled purge at %s", self.next_at.isoformat(timespec="minutes"))
        while True:
            wait_s = (self.next_at - self._now()).total_seconds()
            if wait_s > 0:
                # Woken now and then: a wall clock changed meanwhile (DST, NTP) counts.
                await asyncio.sleep(min(wait_s, 600.0))
                continue
            await self.run_once()
            self.next_at = next_run(self._now(), *when)


def _failure(exc: Exception, what: str) -> str:
    """Log a job's failure (a traceback only for what is no HomeIQ error: a bug)."""
    log.error("%s: %s", what, exc, exc_info=not isinstance(exc, HomeIQError))
    return str(exc) or type(exc).__name__
