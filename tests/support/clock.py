"""A clock tests move by hand, for code that takes ``clock: Callable[[], float]`` (the
circuit breaker, and whatever else expires or waits by elapsed time)."""

from __future__ import annotations


class FakeClock:
    """Monotonic seconds that only move when :meth:`advance` is called."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (never backward: it is monotonic)."""
        assert seconds >= 0, "a monotonic clock does not go back"
        self.now += seconds
