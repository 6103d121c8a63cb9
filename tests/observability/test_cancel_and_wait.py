"""cancel_and_wait: the task's own cancellation is quiet, the caller's is not lost."""

from __future__ import annotations

import asyncio

import pytest

from homeiq.observability.logging import cancel_and_wait


async def test_the_tasks_own_cancellation_is_quiet() -> None:
    task = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert task.cancelled()


async def test_a_caller_cancelled_while_it_waits_stays_cancelled() -> None:
    release = asyncio.Event()
    went_on = False

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await release.wait()  # cleanup that takes a while
            raise

    async def caller() -> None:
        nonlocal went_on
        child = asyncio.create_task(slow_to_stop())
        await asyncio.sleep(0)
        await cancel_and_wait(child)
        went_on = True  # what suppress(CancelledError) let happen: a stopped caller goes on

    outer = asyncio.create_task(caller())
    for _ in range(3):
        await asyncio.sleep(0)
    outer.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert not went_on
