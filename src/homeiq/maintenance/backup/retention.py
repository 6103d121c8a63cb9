"""Which backup archives to keep: generations, as restic's and borg's ``--keep-daily 7
--keep-weekly 4 --keep-monthly 6``.

For each rule, the periods (calendar days, ISO weeks, months, in one time zone) that
have archives are ranked newest first; the newest archive of each of the first N
periods is kept. An archive kept by several rules counts for each (the union), and the
newest archive is always kept, so counts of 0/0/0 mean "keep only the latest".

Pruning as you go gives the same result as pruning once at the end: an archive this
policy drops would never be kept again once newer archives exist (tested).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from datetime import datetime, tzinfo

from homeiq.maintenance.backup.targets import StoredArchive

DEFAULT_DAILY = 7
DEFAULT_WEEKLY = 4
DEFAULT_MONTHLY = 6


def _day(t: datetime) -> Hashable:
    return t.date()


def _iso_week(t: datetime) -> Hashable:
    # ISO years, not calendar years: 2026-12-31 is in week 53 of 2026, 2027-01-01 too.
    year, week, _ = t.isocalendar()
    return year, week


def _month(t: datetime) -> Hashable:
    return t.year, t.month


def kept(
    created: Sequence[datetime],
    *,
    daily: int = DEFAULT_DAILY,
    weekly: int = DEFAULT_WEEKLY,
    monthly: int = DEFAULT_MONTHLY,
    tz: tzinfo | None = None,
) -> set[datetime]:
    """The creation times to keep: the newest of each of the newest ``daily`` days,
    ``weekly`` ISO weeks and ``monthly`` months that have archives, plus the newest.

    Periods are reckoned in ``tz`` (default: the local zone, as a person counts days).
    Times must be timezone-aware; a negative count raises ValueError.
    """
    rules: list[tuple[str, int, Callable[[datetime], Hashable]]] = [
        ("daily", daily, _day),
        ("weekly", weekly, _iso_week),
        ("monthly", monthly, _month),
    ]
    for rule, count, _ in rules:
        if count < 0:
            raise ValueError(f"{rule} must be 0 or more, got {count}")
    if any(t.utcoffset() is None for t in created):
        raise ValueError("archive times must be timezone-aware")
    newest_first = sorted(set(created), reverse=True)
    if not newest_first:
        return set()
    keep = {newest_first[0]}
    for _, count, period in rules:
        seen: set[Hashable] = set()
        for t in newest_first:
            if len(seen) == count:
                break
            key = period(t.astimezone(tz))
            if key not in seen:  # the first met is the period's newest
                seen.add(key)
                keep.add(t)
    return keep


def to_prune(
    archives: Sequence[StoredArchive],
    *,
    daily: int = DEFAULT_DAILY,
    weekly: int = DEFAULT_WEEKLY,
    monthly: int = DEFAULT_MONTHLY,
    tz: tzinfo | None = None,
) -> list[StoredArchive]:
    """The archives ``kept`` does not keep, oldest first (delete in that order)."""
    keep = kept(
        [a.created_at for a in archives], daily=daily, weekly=weekly, monthly=monthly, tz=tz
    )
    return sorted((a for a in archives if a.created_at not in keep), key=lambda a: a.created_at)
