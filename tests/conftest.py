"""Test-wide guards: no test may leave threads or asyncio tasks behind."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

import pytest
from pytest_asyncio import is_async_test

from tests.support.wait import wait_until

# How long a thread or task may take to end after its test (a store closing its writer,
# a cancelled task running its cleanup) before it counts as left behind.
LEAK_GRACE_S = 2.0


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a thread running (an unclosed store or executor)."""
    before = set(threading.enumerate())

    def leaked() -> list[threading.Thread]:
        return [
            t
            for t in set(threading.enumerate()) - before
            if t.is_alive() and not t.name.startswith(("asyncio_", "ThreadPoolExecutor"))
        ]

    yield
    wait_until(
        lambda: not leaked(),
        timeout=LEAK_GRACE_S,
        message=lambda: f"test left threads running: {[t.name for t in leaked()]}",
    )


@pytest.fixture(autouse=True)
def no_leaked_tasks(request: pytest.FixtureRequest) -> None:
    """Fail an async test that leaves asyncio tasks pending on its loop (a service
    started and never stopped). The check runs on the test's loop, after every other
    fixture of the test has been torn down, before pytest-asyncio closes the loop
    (which would cancel the leftovers silently)."""
    if is_async_test(request.node):
        request.getfixturevalue("_tasks_left_on_the_loop")


@pytest.fixture
async def _tasks_left_on_the_loop() -> AsyncIterator[None]:
    yield
    me = asyncio.current_task()
    left = {t for t in asyncio.all_tasks() if t is not me}
    if not left:
        return
    _, pending = await asyncio.wait(left, timeout=LEAK_GRACE_S)
    if pending:
        names = sorted(t.get_name() + ": " + repr(t.get_coro()) for t in pending)
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=LEAK_GRACE_S)
        pytest.fail(f"test left asyncio tasks running: {names}")


from tests.support.influxdb import influxdb, influxdb_database  # noqa: E402, F401
from tests.support.s3 import s3_bucket, s3_server  # noqa: E402, F401
