"""Rate limits per API key (by its scope) and per client IP, with the ``limits`` library:
in-memory storage, moving windows.

Each limit setting is a list, e.g. ``100/minute;20/second``: a sustained rate and a
burst. A request passes only when every window of the list has room, and only then is it
counted in all of them, so a refused request costs nothing and cannot push a client
further into refusal. The event loop runs each check to completion, so test-then-hit
cannot race.

Responses carry ``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset``
(seconds) for the tightest window the request was counted in; a 429 adds ``Retry-After``.
The edge middleware writes the headers from what the checks leave in the request scope.

The state is bounded: at most ``max_clients`` identities (client addresses and keys) are
remembered, the least recently seen forgotten first. Without a bound, every distinct
address (trivially many over IPv6, or forged behind a trusted proxy) would keep an entry
until its window passed, and ``limits`` frees expired entries only when hit again.
Forgetting a quiet client early only gives it a fresh window; the busy ones, which the
limit is for, stay remembered.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import limits
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from homeiq.api.metrics import ApiMetrics
from homeiq.api.scopes import highest
from homeiq.settings import Settings

# Identities remembered at most: an entry costs well under 1 KB, so this bounds the
# limiter's memory to a few MB however many addresses knock.
MAX_CLIENTS = 10_000


@dataclass(slots=True, frozen=True)
class Window:
    """One limit's state after a check."""

    limit: int
    remaining: int
    reset_s: float  # until the oldest counted request leaves the window (a slot frees)

    def headers(self) -> dict[str, str]:
        """The ``RateLimit-*`` headers describing this window."""
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(max(1, math.ceil(self.reset_s))),
        }


@dataclass(slots=True, frozen=True)
class Verdict:
    """The outcome of a check: allowed or not, and the window to report."""

    allowed: bool
    window: Window

    def retry_after(self) -> str:
        """``Retry-After`` seconds for a refusal (at least 1)."""
        return str(max(1, math.ceil(self.window.reset_s)))


class RateLimiter:
    """Moving-window limits per key scope and per client IP, held in memory."""

    def __init__(
        self,
        *,
        per_scope: dict[str, Sequence[limits.RateLimitItem]],
        per_ip: Sequence[limits.RateLimitItem],
        metrics: ApiMetrics,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        self.per_scope = per_scope
        self.per_ip = per_ip
        self.metrics = metrics
        self.max_clients = max_clients
        self.storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(self.storage)
        # identity -> the limits it was counted in, least recently seen first
        self._seen: OrderedDict[tuple[str, ...], Sequence[limits.RateLimitItem]] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings, metrics: ApiMetrics) -> RateLimiter:
        """Limits as configured by ``HOMEIQ_API_RATE_LIMIT_*``."""
        return cls(
            per_scope={
                "read": limits.parse_many(settings.api.rate_limit_read),
                "write": limits.parse_many(settings.api.rate_limit_write),
                "admin": limits.parse_many(settings.api.rate_limit_admin),
            },
            per_ip=limits.parse_many(settings.api.rate_limit_ip),
            metrics=metrics,
        )

    def check_ip(self, ip: str) -> Verdict:
        """Count a request from ``ip`` if every per-IP window has room."""
        verdict = self._check(self.per_ip, "ip", ip)
        if not verdict.allowed:
            self.metrics.rate_limited.labels("ip").inc()
        return verdict

    def check_key(self, key_id: int, scopes: Sequence[str]) -> Verdict:
        """Count a request with key ``key_id``, limited by its highest scope."""
        verdict = self._check(self.per_scope[highest(scopes)], "key", str(key_id))
        if not verdict.allowed:
            self.metrics.rate_limited.labels("key").inc()
        return verdict

    @property
    def tracked(self) -> int:
        """How many identities the limiter remembers now (at most ``max_clients``)."""
        return len(self._seen)

    def _remember(self, items: Sequence[limits.RateLimitItem], identity: tuple[str, ...]) -> None:
        self._seen[identity] = items
        self._seen.move_to_end(identity)
        while len(self._seen) > self.max_clients:
            old, old_items = self._seen.popitem(last=False)
            for item in old_items:
                self.storage.clear(item.key_for(*old))

    def _check(self, items: Sequence[limits.RateLimitItem], *identity: str) -> Verdict:
        self._remember(items, identity)
        for item in items:
            if not self._limiter.test(item, *identity):
                return Verdict(False, self._window(item, identity))
        for item in items:
            self._limiter.hit(item, *identity)
        windows = [self._window(item, identity) for item in items]
        return Verdict(True, min(windows, key=lambda w: (w.remaining, -w.reset_s)))

    def _window(self, item: limits.RateLimitItem, identity: tuple[str, ...]) -> Window:
        stats = self._limiter.get_window_stats(item, *identity)
        # Clamped: the clock moved on between the hit and now, by a hair either way.
        reset_s = min(max(stats.reset_time - time.time(), 0.0), item.get_expiry())
        return Window(item.amount, stats.remaining, reset_s)


STATE_KEY = "ratelimit"


def remember(state: MutableMapping[str, Any], verdict: Verdict) -> None:
    """Keep the tightest window seen for this request (IP and key) for its headers."""
    current = state.get(STATE_KEY)
    if not isinstance(current, Window) or verdict.window.remaining <= current.remaining:
        state[STATE_KEY] = verdict.window


def remembered(state: MutableMapping[str, Any]) -> Window | None:
    """The window to report in this response's headers, if a limit applied."""
    found = state.get(STATE_KEY)
    return found if isinstance(found, Window) else None
