"""A circuit breaker per sink: stop hammering a store that is down, probe it now and then.

After ``failures`` consecutive failed writes the breaker opens; the caller then spools
batches instead of writing them. Once the reset delay has passed, :meth:`allow` lets
exactly one probe through (half-open): its success closes the breaker and the spool
drains; its failure re-opens it with the delay doubled, so a store that stays down for
hours is probed about once a minute rather than once a batch.

The delay is jittered (x0.8..1.2, capped at ``max_reset_s``) so restarts of several
HomeIQs, or of a sink shared by them, do not probe in lockstep. The first delay is
exactly ``reset_s``: that is the setting's promise, and nothing is in lockstep yet.

Outcomes are reported by the caller (:meth:`success`, :meth:`failure`), which also means
a write that was already in flight when the breaker opened may report late: a late
success closes the breaker (the store evidently works), a late failure while open is
ignored (it says nothing new and must not push the probe further away).

The breaker is not thread-safe: it lives in the writer's event loop, where each call
runs to completion. Time comes from an injected clock so tests need no sleeps.
"""

from __future__ import annotations

import enum
import logging
import random
import time
from collections.abc import Callable

from homeiq.observability.metrics import Metrics

log = logging.getLogger(__name__)

JITTER = (0.8, 1.2)


class BreakerState(enum.IntEnum):
    """The breaker's state; values are what ``homeiq_sink_breaker_state`` exports."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    """Consecutive-failure circuit breaker with one probe and jittered exponential reset."""

    def __init__(
        self,
        name: str,
        *,
        failures: int,
        reset_s: float,
        max_reset_s: float = 60.0,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if failures < 1:
            raise ValueError(f"failures must be at least 1, not {failures}")
        if not 0 < reset_s <= max_reset_s:
            raise ValueError(f"need 0 < reset_s <= max_reset_s, not {reset_s}, {max_reset_s}")
        self.name = name
        self.failures = failures
        self.reset_s = reset_s
        self.max_reset_s = max_reset_s
        self.metrics = metrics or Metrics()
        self._clock = clock
        self._rng = rng or random.Random()
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        # Un-jittered delay of the current opening; doubles on each failed probe.
        self._base_s = reset_s
        self._delay_s = 0.0
        self._opened_at = 0.0
        self._set_gauge()

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker({self.name!r}, {self._state.name},"
            f" failures={self._consecutive}/{self.failures}, retry_in={self.retry_in():.1f}s)"
        )

    @property
    def state(self) -> BreakerState:
        """The current state (OPEN turns HALF_OPEN only when :meth:`allow` is called)."""
        return self._state

    @property
    def consecutive_failures(self) -> int:
        """Failures reported since the last success."""
        return self._consecutive

    def retry_in(self) -> float:
        """Seconds until :meth:`allow` lets a probe through; 0 when closed.

        Also 0 when half-open: the probe in flight decides what comes next, and its
        outcome must be reported (a cancelled probe counts as a :meth:`failure`).
        """
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self._delay_s - self._clock())

    def allow(self) -> bool:
        """Whether to try a write now; when open and the delay is over, one probe."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.HALF_OPEN or self.retry_in() > 0:
            return False
        self._state = BreakerState.HALF_OPEN
        self._set_gauge()
        log.info("%s circuit breaker half-open: sending one probe", self.name)
        return True

    def success(self) -> None:
        """A write succeeded: close the breaker and reset the delay."""
        self._consecutive = 0
        self._base_s = self.reset_s
        if self._state is BreakerState.CLOSED:
            return
        self._state = BreakerState.CLOSED
        self._set_gauge()
        log.info("%s circuit breaker closed: writes succeed again", self.name)

    def failure(self) -> None:
        """A write failed: count it, and open (or re-open) the breaker when due."""
        self._consecutive += 1
        if self._state is BreakerState.CLOSED:
            if self._consecutive >= self.failures:
                self._base_s = self.reset_s
                self._open(self.reset_s, f"after {self._consecutive} consecutive failures")
        elif self._state is BreakerState.HALF_OPEN:
            self._base_s = min(self._base_s * 2, self.max_reset_s)
            delay = min(self._base_s * self._rng.uniform(*JITTER), self.max_reset_s)
            self._open(delay, "again, the probe failed")
        # OPEN: a write that was in flight before the opening; it changes nothing.

    def _open(self, delay_s: float, why: str) -> None:
        self._state = BreakerState.OPEN
        self._delay_s = delay_s
        self._opened_at = self._clock()
        self._set_gauge()
        self.metrics.breaker_opens.labels(self.name).inc()
        log.warning("%s circuit breaker opened %s; next probe in %.1fs", self.name, why, delay_s)

    def _set_gauge(self) -> None:
        self.metrics.breaker_state.labels(self.name).set(int(self._state))
