"""Generations of backups: which archives the daily/weekly/monthly rules keep, checked
against worked examples and, with hypothesis, against a plain restatement of the rules."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homeiq.maintenance.backup.retention import kept, to_prune
from homeiq.maintenance.backup.targets import StoredArchive, archive_name

BERLIN = ZoneInfo("Europe/Berlin")  # DST: days of 23 and 25 hours


def at(day: date, hour: int = 3, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def stored(t: datetime) -> StoredArchive:
    return StoredArchive(archive_name(t), 1000, "0" * 64, t)


# -- worked examples ------------------------------------------------------------------


def test_sixty_daily_archives_keep_a_week_four_sundays_and_month_ends() -> None:
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(60)]  # Jan 1 .. Mar 1
    assert days[-1] == date(2026, 3, 1)  # a Sunday: its ISO week ends with it
    archives = [at(d) for d in days]

    keep = kept(archives, daily=7, weekly=4, monthly=6, tz=UTC)

    assert sorted(t.date() for t in keep) == [
        date(2026, 1, 31),  # monthly: January's newest (February's is a daily one)
        date(2026, 2, 8),  # weekly: the Sundays ending the three weeks before
        date(2026, 2, 15),
        date(2026, 2, 22),
        *(date(2026, 2, 23) + timedelta(days=i) for i in range(7)),  # daily, Feb 23..Mar 1
    ]


def test_defaults_are_seven_four_six() -> None:
    archives = [at(date(2026, 1, 1) + timedelta(days=i)) for i in range(60)]
    assert kept(archives, tz=UTC) == kept(archives, daily=7, weekly=4, monthly=6, tz=UTC)


def test_several_archives_a_day_keep_each_days_newest() -> None:
    day = date(2026, 5, 4)
    archives = [at(day, h) for h in (1, 9, 17)] + [at(day + timedelta(days=1), h) for h in (2, 8)]
    keep = kept(archives, daily=7, weekly=0, monthly=0, tz=UTC)
    assert keep == {at(day, 17), at(day + timedelta(days=1), 8)}


def test_days_are_counted_in_the_given_time_zone() -> None:
    # 22:30Z and 23:30Z on Jan 10 are 23:30 on Jan 10 and 00:30 on Jan 11 in Berlin.
    early = at(date(2026, 1, 9), 12)
    late_evening = at(date(2026, 1, 10), 22, 30)
    near_midnight = at(date(2026, 1, 10), 23, 30)
    archives = [early, late_evening, near_midnight]
    policy = {"daily": 2, "weekly": 0, "monthly": 0}
    assert kept(archives, tz=UTC, **policy) == {near_midnight, early}
    assert kept(archives, tz=BERLIN, **policy) == {near_midnight, late_evening}


def test_the_local_zone_is_the_default() -> None:
    archives = [at(date(2026, 1, 1) + timedelta(hours=5 * i)) for i in range(50)]
    local = datetime.now().astimezone().tzinfo
    assert kept(archives, daily=3, weekly=1, monthly=1) == kept(
        archives, daily=3, weekly=1, monthly=1, tz=local
    )


def test_weeks_are_iso_weeks_across_the_new_year() -> None:
    # Thu 2026-12-31 and Fri 2027-01-01 are both in ISO week 53 of 2026.
    thursday, friday = at(date(2026, 12, 31)), at(date(2027, 1, 1))
    sunday_before = at(date(2026, 12, 27))
    keep = kept([sunday_before, thursday, friday], daily=0, weekly=2, monthly=0, tz=UTC)
    assert keep == {friday, sunday_before}


def test_zero_counts_keep_only_the_newest() -> None:
    archives = [at(date(2026, 1, 1) + timedelta(days=i)) for i in range(10)]
    assert kept(archives, daily=0, weekly=0, monthly=0, tz=UTC) == {archives[-1]}


def test_nothing_to_keep_from_nothing() -> None:
    assert kept([]) == set()
    assert to_prune([]) == []


@pytest.mark.parametrize("rule", ["daily", "weekly", "monthly"])
def test_negative_counts_are_refused(rule: str) -> None:
    with pytest.raises(ValueError, match=rule):
        kept([at(date(2026, 1, 1))], tz=UTC, **{rule: -1})


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        kept([datetime(2026, 1, 1, 3)])  # naive on purpose


def test_to_prune_returns_the_rest_oldest_first() -> None:
    times = [at(date(2026, 1, 1) + timedelta(days=i)) for i in range(60)]
    archives = [stored(t) for t in reversed(times)]  # any order in
    prune = to_prune(archives, tz=UTC)
    keep = kept(times, tz=UTC)
    assert [a.created_at for a in prune] == sorted(set(times) - keep)
    assert len(prune) == 60 - 11


# -- properties -----------------------------------------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)
# Minutes over about 14 months, so days, weeks and months get several archives or none.
times_st = st.lists(
    st.integers(0, 420 * 24 * 60).map(lambda m: T0 + timedelta(minutes=m)),
    max_size=80,
)
counts_st = st.fixed_dictionaries(
    {"daily": st.integers(0, 10), "weekly": st.integers(0, 6), "monthly": st.integers(0, 14)}
)
zones_st = st.sampled_from([UTC, BERLIN, ZoneInfo("America/New_York")])

PERIODS: dict[str, Callable[[datetime], Hashable]] = {
    "daily": lambda t: t.date(),
    "weekly": lambda t: t.isocalendar()[:2],
    "monthly": lambda t: (t.year, t.month),
}


def by_the_rules(created: list[datetime], counts: dict[str, int], tz: tzinfo) -> set[datetime]:
    """The rules restated: group by period, rank periods by their newest archive."""
    keep = {max(created)} if created else set()
    for rule, period in PERIODS.items():
        groups: dict[Hashable, list[datetime]] = defaultdict(list)
        for t in created:
            groups[period(t.astimezone(tz))].append(t)
        newest = sorted((max(g) for g in groups.values()), reverse=True)
        keep.update(newest[: counts[rule]])
    return keep


@given(times_st, counts_st, zones_st)
def test_keeps_exactly_what_the_rules_say(
    created: list[datetime], counts: dict[str, int], tz: tzinfo
) -> None:
    assert kept(created, tz=tz, **counts) == by_the_rules(created, counts, tz)


@given(times_st.filter(bool), counts_st, zones_st)
def test_never_prunes_the_newest_and_keeps_at_most_the_counts(
    created: list[datetime], counts: dict[str, int], tz: tzinfo
) -> None:
    keep = kept(created, tz=tz, **counts)
    assert max(created) in keep
    assert keep <= set(created)
    assert len(keep) <= max(1, sum(counts.values()))


@given(times_st, counts_st, zones_st)
def test_pruning_again_prunes_nothing(
    created: list[datetime], counts: dict[str, int], tz: tzinfo
) -> None:
    keep = kept(created, tz=tz, **counts)
    assert kept(sorted(keep), tz=tz, **counts) == keep


@given(times_st, counts_st, zones_st)
def test_pruning_after_each_backup_equals_pruning_once(
    created: list[datetime], counts: dict[str, int], tz: tzinfo
) -> None:
    # What a running system does: add the new archive, prune, repeat. An archive
    # dropped early must never be one the full history would have kept.
    held: set[datetime] = set()
    for t in sorted(created):
        held = kept([*held, t], tz=tz, **counts)
    assert held == kept(created, tz=tz, **counts)


@given(times_st.filter(bool), st.integers(1, 10), zones_st, st.integers(1, 36 * 60))
def test_a_daily_archive_stays_kept_while_its_day_is_in_the_window(
    created: list[datetime], daily: int, tz: tzinfo, later_min: int
) -> None:
    counts = {"daily": daily, "weekly": 0, "monthly": 0}
    newer = max(created) + timedelta(minutes=later_min)
    before = kept(created, tz=tz, **counts)
    after = kept([*created, newer], tz=tz, **counts)
    newer_day = newer.astimezone(tz).date()
    days_after = sorted({t.astimezone(tz).date() for t in [*created, newer]}, reverse=True)
    for t in before:
        day = t.astimezone(tz).date()
        if day != newer_day and day in days_after[:daily]:
            assert t in after
