"""The daily lifecycle schedule: the purge and the extra jobs at the set time, a failing
job never stopping the others, and nothing at all when the schedule is off."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

import pytest

from homeiq.errors import SinkUnavailable
from homeiq.maintenance.lifecycle import LifecycleScheduler
from tests.support.wait import async_wait_until


async def test_every_job_runs_even_when_one_fails(caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []

    async def cleanup() -> int:
        ran.append("cleanup")
        return 3

    async def broken() -> None:
        ran.append("broken")
        raise SinkUnavailable("store down")

    async def last() -> None:
        ran.append("last")

    scheduler = LifecycleScheduler("04:15", None, [("broken", broken), ("cleanup", cleanup)])
    scheduler.add("last", last)
    with caplog.at_level(logging.ERROR):
        run = await scheduler.run_once()
    assert ran == ["broken", "cleanup", "last"]
    assert run.failures == {"broken": "store down"}
    assert scheduler.last is run
    assert "the scheduled broken failed: store down" in caplog.text


async def test_the_loop_runs_at_the_scheduled_time() -> None:
    times = iter([datetime(2026, 11, 26, 4, 14, 59, 990000)])  # just before, then at it

    def now() -> datetime:
        return next(times, datetime(2026, 11, 26, 4, 15, 0, 1))

    ran: list[str] = []

    async def job() -> None:
        ran.append("job")

    scheduler = LifecycleScheduler("04:15", None, [("job", job)], now=now)
    assert scheduler.enabled
    task = asyncio.create_task(scheduler.run())
    await async_wait_until(lambda: ran, timeout=10, interval=0.02)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert ran == ["job"]
    assert scheduler.next_at == datetime(2026, 11, 27, 4, 15)


async def test_off_runs_nothing() -> None:
    async def job() -> None:
        raise AssertionError("must not run")

    scheduler = LifecycleScheduler("off", None, [("job", job)])
    assert not scheduler.enabled
    await asyncio.wait_for(scheduler.run(), 1)  # returns at once
    assert scheduler.next_at is None
