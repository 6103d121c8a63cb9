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


async def test_a_task_that_ignores_cancellation_is_left_behind_with_its_stack(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from homeiq.observability.logging import stop_task

    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # the bug stop_task must survive: cancellation swallowed

    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    log = logging.getLogger("test.stop")
    with caplog.at_level(logging.ERROR, logger="test.stop"):
        await stop_task(task, log, within_s=0.05)
    assert not task.done()  # left behind, and the caller went on
    (record,) = caplog.records
    assert "stubborn did not stop within 0.05 s" in record.getMessage()
    assert "in stubborn" in record.getMessage()  # where it is stuck, down the await chain
    assert "in wait" in record.getMessage()
    release.set()
    await task
