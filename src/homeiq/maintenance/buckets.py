"""Bucket arithmetic, pure: folding one entity's events into buckets of a period
(:class:`Accumulator`), merging fine buckets into coarser ones, reconstructing the
quiet buckets between stored ones (:func:`fill`) and finishing a bucket whose time was
credited only part of the way (:func:`complete`).

A bucket's time-weighted parts start from the state the entity was in when the bucket
began, so they are exact, not sampled. :mod:`homeiq.maintenance.rollups` keeps them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from homeiq.model import EventRecord

PERIODS = {"5m": 300, "1h": 3600, "1d": 86400}
US = 1_000_000


@dataclass(slots=True)
class Bucket:
    """Aggregates of one entity over ``[start, start + period_s)`` (start in µs)."""

    entity_id: str
    period_s: int
    start: int
    count: int = 0
    num_count: int = 0
    sum: float = 0.0
    min: float | None = None
    max: float | None = None
    last_value: float | None = None
    last_state: str | None = None
    tw_sum: float = 0.0  # ∫ value dt over the seconds with a numeric state
    tw_seconds: float = 0.0
    state_seconds: dict[str, float] = field(default_factory=dict)
    # Where folding stopped: time credited up to, and the last event's time. With them a
    # restarted process continues an open bucket without reading the events again.
    credited_to: int | None = None
    last_time: int | None = None

    @property
    def mean(self) -> float | None:
        """Mean of the numeric values reported in the bucket."""
        return self.sum / self.num_count if self.num_count else None

    @property
    def time_weighted_mean(self) -> float | None:
        """Mean of the value over the time it was numeric."""
        return self.tw_sum / self.tw_seconds if self.tw_seconds else None


def align(time_us: int, period_s: int) -> int:
    """Start of the bucket holding ``time_us``."""
    step = period_s * US
    return time_us - time_us % step


def align_up(time_us: int, period_s: int) -> int:
    """Start of the first bucket at or after ``time_us``."""
    start = align(time_us, period_s)
    return start if start == time_us else start + period_s * US


def _credit(bucket: Bucket, state: str | None, value: float | None, seconds: float) -> None:
    """Credit ``seconds`` in ``state`` (and at ``value``) to the bucket."""
    if seconds <= 0:
        return
    if value is not None:
        bucket.tw_sum += value * seconds
        bucket.tw_seconds += seconds
    elif state is not None:
        # Time in state for what is not a number (on/off, modes, unavailable): a numeric
        # sensor would otherwise get one key per value it ever had.
        bucket.state_seconds[state] = bucket.state_seconds.get(state, 0.0) + seconds


class Accumulator:
    """Folds one entity's events, in time order, into buckets of one period: O(1) per
    event, so rollups follow live events without reading them back."""

    __slots__ = (
        "closed",
        "current",
        "cursor",
        "entity_id",
        "last_time",
        "period_s",
        "state",
        "value",
    )

    def __init__(self, entity_id: str, period_s: int, before: EventRecord | None) -> None:
        self.entity_id = entity_id
        self.period_s = period_s
        self.state = before.state if before is not None else None
        self.value = before.value if before is not None else None
        self.last_time = before.time if before is not None else None
        self.current: Bucket | None = None
        self.cursor = 0  # up to where the current bucket's time is credited, µs
        self.closed: list[Bucket] = []

    def add(self, event: EventRecord) -> None:
        """Fold the next event (callers keep time order: see :attr:`last_time`)."""
        start = align(event.time, self.period_s)
        current = self.current
        if current is None or start != current.start:
            if current is not None:
                end = current.start + self.period_s * US
                _credit(current, self.state, self.value, (end - self.cursor) / US)
                self.closed.append(current)
            current = self.current = Bucket(self.entity_id, self.period_s, start)
            self.cursor = start
        _credit(current, self.state, self.value, (event.time - self.cursor) / US)
        self.cursor = event.time
        self.state, self.value, self.last_time = event.state, event.value, event.time
        value = event.value
        current.last_time = event.time
        current.count += 1
        current.last_state = event.state
        current.last_value = value
        if value is not None:
            current.num_count += 1
            current.sum += value
            current.min = value if current.min is None else min(current.min, value)
            current.max = value if current.max is None else max(current.max, value)

    def take(self, until: int, *, close: bool = False) -> list[Bucket]:
        """Buckets changed since the last take: the ones closed since, and the open one
        with its time credited up to ``until`` (on a copy: it stays open, unless
        ``close`` says no event before ``until`` is still to come and it ends by then)."""
        current = self.current
        if close and current is not None and current.start + self.period_s * US <= until:
            # Every event before `until` was read (a rebuild's window): close it, so the
            # next window's take does not give it again. Live, one may still come.
            end = current.start + self.period_s * US
            _credit(current, self.state, self.value, (end - self.cursor) / US)
            self.closed.append(current)
            self.current = current = None
            self.cursor = end
        out, self.closed = self.closed, []
        for bucket in out:
            bucket.credited_to = bucket.start + self.period_s * US
        if current is not None:
            snapshot = replace(current, state_seconds=dict(current.state_seconds))
            end = max(min(current.start + self.period_s * US, until), self.cursor)
            _credit(snapshot, self.state, self.value, (end - self.cursor) / US)
            snapshot.credited_to = end
            out.append(snapshot)
        return out

    @classmethod
    def resume(cls, stored: Bucket | None, entity_id: str, period_s: int) -> Accumulator:
        """Continue from the entity's last stored bucket (after a restart): its open
        bucket goes on where it was saved; an older one only gives the state."""
        accumulator = cls(entity_id, period_s, None)
        if stored is None:
            return accumulator
        accumulator.state, accumulator.value = stored.last_state, stored.last_value
        accumulator.last_time = stored.last_time
        if stored.credited_to is not None:
            accumulator.current = replace(stored, state_seconds=dict(stored.state_seconds))
            accumulator.cursor = stored.credited_to
        return accumulator


def roll_up(
    entity_id: str,
    before: EventRecord | None,
    events: Sequence[EventRecord],
    period_s: int,
    until: int,
) -> list[Bucket]:
    """Buckets holding ``events`` (ordered, one entity), with time-weighted parts up to
    ``until`` (µs; the end of what is known, e.g. now). ``before`` is the last event
    before the first bucket, the state the entity was in when it began."""
    accumulator = Accumulator(entity_id, period_s, before)
    for event in events:
        accumulator.add(event)
    return accumulator.take(until)


def merge(buckets: Iterable[Bucket], period_s: int) -> list[Bucket]:
    """Coarser buckets (a day from hours) of the same entity, in order."""
    out: list[Bucket] = []
    for b in buckets:
        start = align(b.start, period_s)
        if not out or out[-1].start != start:
            out.append(Bucket(b.entity_id, period_s, start))
        m = out[-1]
        m.count += b.count
        m.num_count += b.num_count
        m.sum += b.sum
        if b.min is not None:
            m.min = b.min if m.min is None else min(m.min, b.min)
        if b.max is not None:
            m.max = b.max if m.max is None else max(m.max, b.max)
        if b.count:
            m.last_value, m.last_state = b.last_value, b.last_state
        m.tw_sum += b.tw_sum
        m.tw_seconds += b.tw_seconds
        for state, seconds in b.state_seconds.items():
            m.state_seconds[state] = m.state_seconds.get(state, 0.0) + seconds
    return out


def fill(
    stored: Sequence[Bucket],
    carried: Bucket | None,
    entity_id: str,
    period_s: int,
    start: int,
    end: int,
) -> Iterator[Bucket]:
    """Every bucket of ``[start, end)``: the stored ones, and between them buckets with no
    events in which the entity held the state the previous bucket ended with.
    ``carried`` is the last stored bucket before ``start`` (or None)."""
    step = period_s * US
    by_start = {b.start: b for b in stored}
    last_state = carried.last_state if carried is not None else None
    last_value = carried.last_value if carried is not None else None
    t = align(start, period_s)
    while t < end:
        found = by_start.get(t)
        if found is not None:
            yield found
            if found.count:
                last_state, last_value = found.last_state, found.last_value
        elif last_state is not None or last_value is not None:
            seconds = (min(t + step, end) - t) / US
            quiet = Bucket(entity_id, period_s, t, last_state=last_state, last_value=last_value)
            if last_value is not None:
                quiet.tw_sum, quiet.tw_seconds = last_value * seconds, seconds
            elif last_state is not None:
                quiet.state_seconds[last_state] = seconds
            yield quiet
        t += step


def complete(bucket: Bucket, until: int) -> Bucket:
    """``bucket`` with its time credited up to ``min(its end, until)``: a bucket is saved
    credited up to when it was saved, and nothing changes it while its entity is quiet,
    so the rest of its time is in the state its last event left (a copy; as is when
    already complete)."""
    credited = bucket.credited_to
    to = min(bucket.start + bucket.period_s * US, until)
    if credited is None or credited >= to:
        return bucket
    done = replace(bucket, state_seconds=dict(bucket.state_seconds), credited_to=to)
    _credit(done, done.last_state, done.last_value, (to - credited) / US)
    return done


def day_from_hours(
    hours: Sequence[Bucket], carried: Bucket | None, entity_id: str, day_start: int, upto: int
) -> Bucket | None:
    """The day bucket of ``[day_start, upto)`` merged from that day's stored ``hours``
    (``carried``: the last stored hour before the day), credited up to ``upto``; None when
    no event falls in that part of the day. A rebuild starting inside a day continues the
    day's bucket from here instead of reading the day's earlier events again."""
    done = [complete(h, upto) for h in hours if h.start < upto]
    merged = merge(fill(done, carried, entity_id, 3600, day_start, upto), 86400)
    if not merged or not merged[0].count:
        return None
    (day,) = merged
    day.credited_to = upto
    day.last_time = max((h.last_time for h in done if h.last_time is not None), default=None)
    return day


def days_from_hours(hours: Sequence[Bucket], carried: Bucket | None) -> list[Bucket]:
    """Day buckets of one entity from all its stored ``hours`` (oldest first): closed days
    credited to their end, the last one as far as its last hour was (the daily tier's
    first fill, when it is added to an existing ``rollups.db``)."""
    days: list[Bucket] = []
    at = 0
    while at < len(hours):
        day_start = align(hours[at].start, 86400)
        end = at
        while end < len(hours) and hours[end].start < day_start + 86400 * US:
            end += 1
        group = hours[at:end]
        last = group[-1]
        credited: int | None
        if end < len(hours):  # a later day has events: this one is closed
            upto = credited = day_start + 86400 * US
        else:  # the open end: as far as the last hour was credited
            upto, credited = last.start + 3600 * US, last.credited_to
            group = [*group[:-1], replace(last, credited_to=None)]
        day = day_from_hours(group, carried, last.entity_id, day_start, upto)
        if day is not None:
            day.credited_to = credited
            days.append(day)
        carried, at = last, end
    return days
