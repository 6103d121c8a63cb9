"""What data quality is made of, per entity: counters for the day, and the little state
that survives days (the newest live event and the entity's usual interval).

Everything here is O(1) per entity and per event: no list of events or intervals is
kept. The judgements (is it stale, what is its score, which flags does it raise) are
pure functions of these counters, the registry's expectations and "now", so the live
tracker and ``homeiq quality`` (reading what was persisted) answer the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Final

from homeiq.metadata.registry import Registry
from homeiq.model import EventRecord, Source

# The critical fields whose NULLs the plan forbids where Home Assistant has them.
FIELDS: Final = ("context_id", "device_id", "area_id")
NOT_AVAILABLE: Final = frozenset({"unavailable", "unknown"})

# The usual interval: an exponentially weighted mean of the gaps between consecutive live
# events (about the last 1/ALPHA = 10 gaps), each gap clipped to CLIP x the current mean
# so one outage (or the stale spell itself) does not teach the entity to be slow. A mean
# rather than a median: bursty entities (an automation's three states in one run) have
# near-zero medians, and would look stale between runs.
INTERVAL_ALPHA: Final = 0.1
INTERVAL_CLIP: Final = 20.0
# Stale: silent longer than STALE_FACTOR usual intervals (and at least the tracker's
# floor), judged only after STALE_MIN_INTERVALS gaps were seen. For an entity reporting
# at random (Poisson) times, a silence of 20 mean intervals has probability e^-20: a
# flag means something stopped.
STALE_FACTOR: Final = 20.0
STALE_MIN_INTERVALS: Final = 10

# Flags: the thresholds above which a measure is worth a user's attention.
MISSING_SHARE_FLAG: Final = 0.01  # > 1 % of events lack a field the registry has
UNAVAILABLE_SHARE_FLAG: Final = 0.10  # > 10 % unavailable/unknown ...
UNAVAILABLE_MIN_EVENTS: Final = 10  # ... over at least this many events
LATE_SHARE_FLAG: Final = 0.01  # > 1 % of live events stored late

# The score's weights (points out of 100); see docs/quality.md for why these.
W_COMPLETE: Final = 40.0
W_AVAILABLE: Final = 25.0
W_FRESH: Final = 20.0
W_ORDER: Final = 15.0


@dataclass(slots=True)
class DayCounts:
    """One entity's counters since the start of the (UTC) day."""

    events: int = 0
    live: int = 0
    backfilled: int = 0
    context_id: int = 0  # events carrying each critical field
    device_id: int = 0
    area_id: int = 0
    unavailable: int = 0  # unavailable or unknown states
    late: int = 0
    out_of_order: int = 0

    def add(self, other: DayCounts) -> None:
        """Add ``other``'s counters to these (spelled out: reports add thousands)."""
        self.events += other.events
        self.live += other.live
        self.backfilled += other.backfilled
        self.context_id += other.context_id
        self.device_id += other.device_id
        self.area_id += other.area_id
        self.unavailable += other.unavailable
        self.late += other.late
        self.out_of_order += other.out_of_order


DAY_FIELDS: Final = tuple(f.name for f in fields(DayCounts))


@dataclass(slots=True)
class EntityState:
    """An entity's day counters and what the stale check needs."""

    day: DayCounts = field(default_factory=DayCounts)
    newest_us: int | None = None  # newest live event time
    interval_s: float | None = None  # usual interval (see INTERVAL_ALPHA)
    intervals: int = 0  # gaps folded into interval_s
    removed: bool = False  # Home Assistant removed it: silence is expected

    def observe(self, record: EventRecord, now_us: int, late_after_us: int) -> None:
        """Count one stored record."""
        day = self.day
        day.events += 1
        if record.context_id:
            day.context_id += 1
        if record.device_id:
            day.device_id += 1
        if record.area_id:
            day.area_id += 1
        if record.state in NOT_AVAILABLE:
            day.unavailable += 1
        if record.source is Source.BACKFILL:
            day.backfilled += 1
        if record.source is not Source.LIVE:
            # Backfill, imports and (re)connect baselines are late and out of order by
            # nature: only live events say something about timeliness and intervals.
            return
        day.live += 1
        self.removed = record.state is None
        if now_us - record.time > late_after_us:
            day.late += 1
        newest = self.newest_us
        if newest is None:
            self.newest_us = record.time
        elif record.time < newest:
            day.out_of_order += 1
        elif record.time > newest:
            self._interval((record.time - newest) / 1e6)
            self.newest_us = record.time

    def _interval(self, gap_s: float) -> None:
        mean = self.interval_s
        if mean is None:
            self.interval_s = gap_s
        else:
            gap_s = min(gap_s, INTERVAL_CLIP * mean)
            self.interval_s = mean + INTERVAL_ALPHA * (gap_s - mean)
        self.intervals += 1

    def silent_s(self, now_us: int) -> float | None:
        """Seconds since the newest live event (None before the first)."""
        return None if self.newest_us is None else max(0.0, (now_us - self.newest_us) / 1e6)

    def stale(self, now_us: int, min_silence_s: float) -> bool:
        """Silent for far longer than usual (see STALE_FACTOR), and not removed."""
        silent = self.silent_s(now_us)
        if self.removed or silent is None or self.interval_s is None:
            return False
        if self.intervals < STALE_MIN_INTERVALS:
            return False
        return silent > max(STALE_FACTOR * self.interval_s, min_silence_s)

    def to_json(self) -> dict[str, Any]:
        """A plain dict for metadata.db (what :meth:`from_json` reads back)."""
        day = self.day
        return {
            "day": {f: getattr(day, f) for f in DAY_FIELDS},
            "newest_us": self.newest_us,
            "interval_s": self.interval_s,
            "intervals": self.intervals,
            "removed": self.removed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EntityState:
        """The state :meth:`to_json` wrote; unknown keys are ignored (newer versions)."""
        raw = dict(data.get("day") or {})
        day = DayCounts(**{k: int(v) for k, v in raw.items() if k in DAY_FIELDS})
        interval = data.get("interval_s")
        newest = data.get("newest_us")
        return cls(
            day=day,
            newest_us=None if newest is None else int(newest),
            interval_s=None if interval is None else float(interval),
            intervals=int(data.get("intervals") or 0),
            removed=bool(data.get("removed")),
        )


@dataclass(slots=True, frozen=True)
class Expected:
    """Which critical fields the registry says the entity has (context always)."""

    device_id: bool
    area_id: bool


def expected_in(registry: Registry, entity_id: str) -> Expected:
    """What ``registry`` says the entity has: no device (or area) there, none expected."""
    placement = registry.placement_of(entity_id)
    return Expected(placement.device_id is not None, placement.area_id is not None)


def share(part: int, whole: int) -> float | None:
    """``part / whole``, None when there is nothing to divide."""
    return None if whole <= 0 else part / whole


def completeness(day: DayCounts, expected: Expected) -> dict[str, float | None]:
    """Share of events carrying each field the registry expects (None: not expected, or
    no events)."""
    events = day.events
    if events <= 0:
        return {"context_id": None, "device_id": None, "area_id": None}
    return {
        "context_id": day.context_id / events,
        "device_id": day.device_id / events if expected.device_id else None,
        "area_id": day.area_id / events if expected.area_id else None,
    }


Completeness = dict[str, float | None]


def entity_flags(state: EntityState, complete: Completeness, stale: bool) -> tuple[str, ...]:
    """The defects worth a user's attention, by name (docs/quality.md lists them);
    ``complete`` is the entity's :func:`completeness`."""
    day = state.day
    flags: list[str] = []
    for name, value in complete.items():
        if value is not None and 1.0 - value > MISSING_SHARE_FLAG:
            flags.append(f"missing_{name.removesuffix('_id')}")
    bad = share(day.unavailable, day.events)
    if bad is not None and day.events >= UNAVAILABLE_MIN_EVENTS and bad > UNAVAILABLE_SHARE_FLAG:
        flags.append("often_unavailable")
    if stale:
        flags.append("stale")
    late = share(day.late, day.live)
    if late is not None and late > LATE_SHARE_FLAG:
        flags.append("late")
    if day.out_of_order:
        flags.append("out_of_order")
    return tuple(flags)


def entity_score(state: EntityState, complete: Completeness, stale: bool) -> float | None:
    """0..100: 100 minus weighted penalties (docs/quality.md); None with nothing to judge."""
    day = state.day
    if day.events == 0 and not stale:
        return None
    shares = [v for v in complete.values() if v is not None]
    worst = min(shares) if shares else 1.0
    unavailable = share(day.unavailable, day.events) or 0.0
    disorder = share(day.late + day.out_of_order, day.live) or 0.0
    penalty = (
        W_COMPLETE * (1.0 - worst)
        + W_AVAILABLE * unavailable
        + W_FRESH * (1.0 if stale else 0.0)
        + W_ORDER * min(1.0, disorder)
    )
    return round(max(0.0, 100.0 - penalty), 2)
