"""The test helpers tests lean on: waiting fails the test when the time is up (it never
falls through to the assertions after it), and the fake clock moves only when told."""

from __future__ import annotations

import itertools

import pytest

from tests.support.clock import FakeClock
from tests.support.wait import async_wait_until, wait_until


def test_wait_until_returns_the_first_truthy_value() -> None:
    calls = itertools.count()
    assert wait_until(lambda: [n] if (n := next(calls)) >= 3 else [], interval=0) == [3]


def test_wait_until_fails_the_test_with_the_message_when_time_is_up() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"never \(still not true after 0.05 s\)"):
        wait_until(lambda: False, timeout=0.05, interval=0.01, message="never")


def test_the_message_is_computed_when_the_wait_fails() -> None:
    state = {"left": 3}
    with pytest.raises(pytest.fail.Exception, match="2 left"):
        wait_until(
            lambda: state.update(left=2),  # None: never true, but it changed the state
            timeout=0,
            message=lambda: f"{state['left']} left",
        )


def test_an_error_in_the_predicate_ends_the_wait_at_once() -> None:
    def broken() -> bool:
        raise ValueError("the check itself is wrong")

    with pytest.raises(ValueError, match="itself"):
        wait_until(broken, timeout=60)


async def test_async_wait_until_takes_sync_and_async_predicates() -> None:
    calls = itertools.count()

    async def ready() -> int:
        return next(calls) >= 2 and 42

    assert await async_wait_until(ready, interval=0) == 42
    assert await async_wait_until(lambda: "yes") == "yes"


async def test_async_wait_until_fails_the_test_when_time_is_up() -> None:
    async def never() -> bool:
        return False

    with pytest.raises(pytest.fail.Exception, match="the thing"):
        await async_wait_until(never, timeout=0.05, interval=0.01, message="the thing")


def test_the_fake_clock_moves_only_forward_and_only_when_told() -> None:
    clock = FakeClock(start=5.0)
    assert clock() == clock() == 5.0
    clock.advance(2.5)
    assert clock() == 7.5
    with pytest.raises(AssertionError, match="monotonic"):
        clock.advance(-1)
