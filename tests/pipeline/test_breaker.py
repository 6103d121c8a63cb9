"""The sink circuit breaker, on a fake clock and a seeded rng: opening after N failures,
one probe after the delay, doubling (jittered, capped) re-opens, closing, metrics, logs."""

from __future__ import annotations

import logging
import random

import pytest

from homeiq.observability.metrics import Metrics
from homeiq.pipeline.breaker import JITTER, BreakerState, CircuitBreaker
from tests.support.clock import FakeClock

SEED = 1234
STATE = "homeiq_sink_breaker_state"
OPENS = "homeiq_sink_breaker_opens_total"
SINK = {"sink": "sqlite"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def make(clock: FakeClock, metrics: Metrics, **kw: float) -> CircuitBreaker:
    return CircuitBreaker(
        "sqlite",
        failures=int(kw.pop("failures", 3)),
        reset_s=kw.pop("reset_s", 5.0),
        max_reset_s=kw.pop("max_reset_s", 60.0),
        metrics=metrics,
        clock=clock,
        rng=random.Random(SEED),
    )


def state_of(breaker: CircuitBreaker) -> BreakerState:
    # A call, not the property: mypy would keep a narrowed `breaker.state` across calls.
    return breaker.state


def open_breaker(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failures):
        breaker.failure()
    assert state_of(breaker) is BreakerState.OPEN


def test_closed_until_n_consecutive_failures(clock: FakeClock, metrics: Metrics) -> None:
    breaker = make(clock, metrics)
    assert state_of(breaker) is BreakerState.CLOSED and breaker.allow()
    assert metrics.value(STATE, SINK) == 0
    breaker.failure()
    breaker.failure()
    breaker.success()  # resets the count: failures must be consecutive
    breaker.failure()
    breaker.failure()
    assert state_of(breaker) is BreakerState.CLOSED and breaker.consecutive_failures == 2
    assert breaker.retry_in() == 0
    breaker.failure()
    assert state_of(breaker) is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_in() == 5.0  # the first delay is exactly reset_s
    assert metrics.value(STATE, SINK) == 1
    assert [int(s) for s in BreakerState] == [0, 1, 2]  # what the gauge documents
    assert metrics.value(OPENS, SINK) == 1


def test_one_probe_after_the_delay(clock: FakeClock, metrics: Metrics) -> None:
    breaker = make(clock, metrics)
    open_breaker(breaker)
    clock.advance(4.999)
    assert not breaker.allow()
    assert breaker.retry_in() == pytest.approx(0.001)
    clock.advance(0.001)
    assert breaker.retry_in() == 0
    assert breaker.allow()  # the probe
    assert state_of(breaker) is BreakerState.HALF_OPEN
    assert metrics.value(STATE, SINK) == 2
    clock.advance(1000)
    assert not breaker.allow() and not breaker.allow()  # only one probe at a time
    assert breaker.retry_in() == 0


def test_a_successful_probe_closes_and_resets_the_delay(
    clock: FakeClock, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = make(clock, metrics)
    open_breaker(breaker)
    clock.advance(5)
    assert breaker.allow()
    breaker.failure()  # re-open with a doubled delay
    clock.advance(breaker.retry_in())
    assert breaker.allow()
    with caplog.at_level(logging.INFO, logger="homeiq.pipeline.breaker"):
        breaker.success()
    assert state_of(breaker) is BreakerState.CLOSED and breaker.allow()
    assert breaker.retry_in() == 0 and breaker.consecutive_failures == 0
    assert metrics.value(STATE, SINK) == 0
    assert any(
        r.levelno == logging.INFO and "sqlite circuit breaker closed" in r.getMessage()
        for r in caplog.records
    )
    open_breaker(breaker)
    assert breaker.retry_in() == 5.0
    assert metrics.value(OPENS, SINK) == 3


def test_a_failed_probe_reopens_with_a_doubled_jittered_delay(
    clock: FakeClock, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = make(clock, metrics)
    open_breaker(breaker)
    expected = random.Random(SEED)
    clock.advance(5)
    assert breaker.allow()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="homeiq.pipeline.breaker"):
        breaker.failure()
    assert state_of(breaker) is BreakerState.OPEN and not breaker.allow()
    delay = breaker.retry_in()
    assert delay == pytest.approx(10 * expected.uniform(*JITTER))
    assert 10 * JITTER[0] <= delay <= 10 * JITTER[1]
    assert metrics.value(STATE, SINK) == 1
    assert metrics.value(OPENS, SINK) == 2
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "opened again, the probe failed" in warning and f"next probe in {delay:.1f}s" in warning


def test_the_delay_doubles_up_to_the_cap(clock: FakeClock, metrics: Metrics) -> None:
    breaker = make(clock, metrics, reset_s=1.0, max_reset_s=20.0)
    open_breaker(breaker)
    delays = []
    for _ in range(10):
        clock.advance(breaker.retry_in())
        assert breaker.allow()
        breaker.failure()
        delays.append(breaker.retry_in())
    bases = [2.0, 4.0, 8.0, 16.0] + [20.0] * 6
    for delay, base in zip(delays, bases, strict=True):
        assert base * JITTER[0] <= delay <= min(base * JITTER[1], 20.0)
    assert max(delays) <= 20.0
    assert metrics.value(OPENS, SINK) == 11


def test_late_outcomes_while_open(clock: FakeClock, metrics: Metrics) -> None:
    breaker = make(clock, metrics)
    open_breaker(breaker)
    clock.advance(2)
    breaker.failure()  # a write that was in flight: changes nothing
    assert state_of(breaker) is BreakerState.OPEN and breaker.retry_in() == 3.0
    assert metrics.value(OPENS, SINK) == 1
    breaker.success()  # ...but a late success shows the store works
    assert state_of(breaker) is BreakerState.CLOSED and breaker.allow()


def test_the_opening_is_logged_with_its_delay(
    clock: FakeClock, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = make(clock, metrics, failures=1, reset_s=7.5)
    with caplog.at_level(logging.WARNING, logger="homeiq.pipeline.breaker"):
        breaker.failure()
    [warning] = caplog.records
    assert warning.levelno == logging.WARNING
    assert warning.getMessage() == (
        "sqlite circuit breaker opened after 1 consecutive failures; next probe in 7.5s"
    )


def test_breakers_are_labelled_by_sink(clock: FakeClock, metrics: Metrics) -> None:
    one = CircuitBreaker("sqlite", failures=1, reset_s=1, metrics=metrics, clock=clock)
    two = CircuitBreaker("influxdb", failures=1, reset_s=1, metrics=metrics, clock=clock)
    two.failure()
    assert one.state is BreakerState.CLOSED
    assert metrics.value(STATE, {"sink": "sqlite"}) == 0
    assert metrics.value(STATE, {"sink": "influxdb"}) == 1
    assert metrics.value(OPENS, {"sink": "influxdb"}) == 1


def test_works_without_injected_metrics_clock_or_rng() -> None:
    breaker = CircuitBreaker("x", failures=1, reset_s=30)
    breaker.failure()
    assert not breaker.allow() and 0 < breaker.retry_in() <= 30
    assert repr(breaker).startswith("CircuitBreaker('x', OPEN, failures=1/1, retry_in=")


@pytest.mark.parametrize(
    ("failures", "reset_s", "max_reset_s"), [(0, 1.0, 60.0), (1, 0.0, 60.0), (1, 61.0, 60.0)]
)
def test_bad_parameters_are_refused(failures: int, reset_s: float, max_reset_s: float) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker("x", failures=failures, reset_s=reset_s, max_reset_s=max_reset_s)
