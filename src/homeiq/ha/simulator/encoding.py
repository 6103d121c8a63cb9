"""How the simulator spells values on the wire: timestamps, ULIDs and JSON bytes.

Timing is the only thing the simulator takes from the wall clock, and it only ever shows
up in timestamps and the time part of ULIDs; the rest of a ULID comes from the seed.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from homeiq.ulid import DIGIT_PAIRS_BYTES as _PAIRS  # two digits per 10 bits


class Clock:
    """Strictly increasing wall-clock microseconds, formatted like HA's ``isoformat()``."""

    __slots__ = ("_last", "_prefix", "_sec")

    # ".123" and "456+00:00" for every three digits: two lookups beat a format.
    _MS: Final = tuple(b".%03d" % i for i in range(1000))
    _US: Final = tuple(b"%03d+00:00" % i for i in range(1000))

    def __init__(self) -> None:
        self._last = 0
        self._sec = -1
        self._prefix = b""

    def now_us(self) -> int:
        """Now in µs since the epoch, bumped so no two calls return the same value."""
        # Unique times keep (entity_id, last_updated) a usable idempotency key even at
        # 100k events/s, where several events would otherwise share a microsecond.
        now = time.time_ns() // 1000
        if now <= self._last:
            now = self._last + 1
        self._last = now
        return now

    def iso(self, us: int) -> bytes:
        """``2026-11-25T21:22:22.067575+00:00`` as bytes; cached per second."""
        sec, frac = divmod(us, 1_000_000)
        if sec != self._sec:
            self._sec = sec
            self._prefix = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S").encode()
        if frac:
            return self._prefix + self._MS[frac // 1000] + self._US[frac % 1000]
        # datetime.isoformat() leaves out a zero fraction, and so does HA.
        return self._prefix + b"+00:00"


def iso_from_us(us: int) -> str:
    """Format µs since the epoch the way HA does (uncached)."""
    return (
        datetime.fromtimestamp(us / 1_000_000, UTC).replace(microsecond=us % 1_000_000).isoformat()
    )


class UlidMaker:
    """Deterministic, time-ordered ULIDs: 48-bit ms time + 80 bits derived from seed and counter.

    The counter (below ``2**40``) is scrambled by an odd multiplier, split into four
    10-bit chunks, and each chunk picks one of 1024 distinct 4-character groups drawn
    from the seed: an injection, so ids never collide, and four lookups per id keep it
    cheap at 100k+ ids/s.
    """

    __slots__ = ("_groups", "_ms", "_prefix")

    COUNTER_LIMIT: Final = 1 << 40

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed * 7919 + 17)
        self._groups = tuple(
            tuple(_PAIRS[v >> 10] + _PAIRS[v & 1023] for v in rng.sample(range(1 << 20), 1024))
            for _ in range(4)
        )
        self._ms = -1
        self._prefix = b""

    def make(self, ms: int, n: int) -> str:
        """The ULID for context number ``n`` created at ``ms``; same inputs, same id."""
        return self.make_b(ms, n).decode()

    def make_b(self, ms: int, n: int) -> bytes:
        """Like :meth:`make`, as ASCII bytes for building JSON without a round trip."""
        if ms != self._ms:
            self._ms = ms
            self._prefix = (
                _PAIRS[(ms >> 40) & 1023]
                + _PAIRS[(ms >> 30) & 1023]
                + _PAIRS[(ms >> 20) & 1023]
                + _PAIRS[(ms >> 10) & 1023]
                + _PAIRS[ms & 1023]
            )
        r = (n * 0x9E3779B97F) & 0xFFFFFFFFFF
        g0, g1, g2, g3 = self._groups
        return (
            self._prefix + g0[r & 1023] + g1[(r >> 10) & 1023] + g2[(r >> 20) & 1023] + g3[r >> 30]
        )


def dumps(obj: Any) -> bytes:
    """Compact JSON with raw UTF-8, as HA sends it, in a right-sized buffer for keeping.

    orjson hands back its whole output buffer (4 KB for a short string); anything the
    simulator keeps per state or per event must be copied down or memory balloons.
    """
    return bytes(memoryview(orjson.dumps(obj)))
