"""Waiting in tests for something to happen: one helper, sync and async, that fails the
test when the time is up (never falls through to the assertions after it).

Use these for what the outside world or another task does in its own time (a store
flushing, a process exiting, a connection coming up). Code that *decides* by elapsed
time (a breaker reset, a schedule, a window) takes a clock instead: see
:mod:`tests.support.clock`.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import pytest

T = TypeVar("T")

TIMEOUT_S = 10.0
INTERVAL_S = 0.02

Message = str | Callable[[], str]


def _fail(message: Message, timeout: float) -> NoReturn:
    text = message() if callable(message) else message
    pytest.fail(f"{text} (still not true after {timeout:g} s)")


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float = TIMEOUT_S,
    interval: float = INTERVAL_S,
    message: Message = "condition not met",
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy,
    and return that; fail the test with ``message`` (a string, or a function giving one
    at the time of failure) after ``timeout`` seconds. An exception from the predicate
    ends the wait at once."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            _fail(message, timeout)
        time.sleep(interval)


async def async_wait_until(
    predicate: Callable[[], T | Awaitable[T]],
    *,
    # Not a cancel scope (what ASYNC109 would have): when it passes, the test fails.
    timeout: float = TIMEOUT_S,  # noqa: ASYNC109
    interval: float = INTERVAL_S,
    message: Message = "condition not met",
) -> T:
    """:func:`wait_until` for a test on an event loop: sleeps with ``asyncio.sleep`` so
    the code under test runs meanwhile; ``predicate`` may be sync or async."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            _fail(message, timeout)
        await asyncio.sleep(interval)
