"""Rollup arithmetic: counts, numeric aggregates, time-weighted means and time in state,
bucket by bucket, and the quiet buckets reconstructed between stored ones."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homeiq.maintenance.rollups import (
    Accumulator,
    Bucket,
    RollupStore,
    align,
    day_from_hours,
    fill,
    merge,
    roll_up,
)
from homeiq.model import EventRecord
from homeiq.pipeline.normalize import numeric_value

H = 3600 * 1_000_000
M5 = 300 * 1_000_000
T0 = align(1_795_640_400_000_000, 86400)  # a UTC midnight


def ev(offset_s: float, state: str | None, entity_id: str = "sensor.power") -> EventRecord:
    return EventRecord(
        entity_id=entity_id,
        time=T0 + int(offset_s * 1_000_000),
        state=state,
        value=None if state is None else numeric_value(state),
        attributes_json=orjson.dumps({}),
    )


def test_numeric_bucket_aggregates_and_time_weighted_mean() -> None:
    before = ev(-600, "10")  # held 10 since before the hour
    events = [ev(900, "20"), ev(1800, "40"), ev(2700, "unavailable")]
    (hour,) = roll_up("sensor.power", before, events, 3600, until=T0 + 2 * H)
    assert (hour.start, hour.count, hour.num_count) == (T0, 3, 2)
    assert (hour.min, hour.max, hour.mean) == (20.0, 40.0, 30.0)
    assert (hour.last_state, hour.last_value) == ("unavailable", None)
    # 10 for 900 s, 20 for 900 s, 40 for 900 s; unavailable for the last 900 s.
    assert hour.tw_seconds == 2700
    assert hour.time_weighted_mean == pytest.approx((10 * 900 + 20 * 900 + 40 * 900) / 2700)
    assert hour.state_seconds == {"unavailable": 900}  # time in state: non-numeric only


def test_time_in_state_for_a_light_across_buckets() -> None:
    events = [ev(600, "on"), ev(1200, "off"), ev(3600 + 300, "on")]
    first, second = roll_up("light.desk", ev(-5, "off"), events, 3600, until=T0 + 2 * H)
    assert first.state_seconds == {"off": 600 + 2400, "on": 600}
    assert second.state_seconds == {"off": 300, "on": 3300}
    assert first.tw_seconds == 0 and first.time_weighted_mean is None


def test_the_open_bucket_counts_time_only_up_to_now() -> None:
    (bucket,) = roll_up("light.desk", None, [ev(60, "on")], 300, until=T0 + 120 * 1_000_000)
    assert bucket.state_seconds == {"on": 60}


def test_a_removal_ends_the_state() -> None:
    (bucket,) = roll_up("light.desk", None, [ev(0, "on"), ev(100, None)], 300, until=T0 + H)
    assert bucket.state_seconds == {"on": 100}
    assert bucket.last_state is None


def test_quiet_buckets_carry_the_previous_state() -> None:
    stored = roll_up("light.desk", None, [ev(0, "on"), ev(3 * 3600 + 60, "off")], 3600, T0 + 5 * H)
    filled = list(fill(stored, None, "light.desk", 3600, T0, T0 + 5 * H))
    assert [b.start for b in filled] == [T0 + i * H for i in range(5)]
    assert [b.count for b in filled] == [1, 0, 0, 1, 0]
    assert filled[1].state_seconds == {"on": 3600}
    assert filled[3].state_seconds == {"on": 60, "off": 3540}
    assert filled[4].state_seconds == {"off": 3600}


def test_fill_starts_from_the_bucket_before_the_range() -> None:
    carried = Bucket("sensor.power", 3600, T0 - H, count=1, last_state="5", last_value=5.0)
    (quiet,) = fill([], carried, "sensor.power", 3600, T0, T0 + H)
    assert quiet.time_weighted_mean == 5.0 and quiet.state_seconds == {}


def test_days_merge_from_hours() -> None:
    hours = roll_up(
        "sensor.power", None, [ev(h * 3600, str(h)) for h in range(30)], 3600, T0 + 30 * H
    )
    day0, day1 = merge(fill(hours, None, "sensor.power", 3600, T0, T0 + 30 * H), 86400)
    assert (day0.count, day0.min, day0.max, day0.last_value) == (24, 0.0, 23.0, 23.0)
    assert day0.tw_seconds == 86400
    assert day1.count == 6


states = st.sampled_from(["on", "off", "1.5", "-2", "unavailable"])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4 * 3600 - 1), states), min_size=1, max_size=40))
def test_every_second_is_credited_once(changes: list[tuple[int, str]]) -> None:
    """In every period, time in state adds up to the time covered, and counts to events."""
    times = sorted({t for t, _ in changes})
    events = [ev(t, dict(changes)[t]) for t in times]
    until = T0 + 4 * H
    for period in (300, 3600):
        buckets = roll_up("sensor.x", ev(-1, "off"), events, period, until)
        assert sum(b.count for b in buckets) == len(events)
        for b in buckets:
            covered = (min(b.start + period * 1_000_000, until) - b.start) / 1_000_000
            credited = sum(b.state_seconds.values()) + b.tw_seconds
            assert credited == pytest.approx(covered)
            if b.min is not None and b.time_weighted_mean is not None:
                assert b.tw_seconds <= covered + 1e-6
        five = roll_up("sensor.x", ev(-1, "off"), events, 300, until)
        carried = Bucket("sensor.x", 300, T0 - M5, count=1, last_state="off")
        hours = merge(fill(five, carried, "sensor.x", 300, T0, until), 3600)
        direct = roll_up("sensor.x", ev(-1, "off"), events, 3600, until)
        direct_by_start = {d.start: d for d in direct}
        for h in hours:  # hours with events agree, to the second, state by state
            d = direct_by_start.get(h.start)
            if d is not None:
                assert h.count == d.count
                assert h.state_seconds == pytest.approx(d.state_seconds)


def test_store_replaces_from_a_start_and_reads_back(tmp_path: Path) -> None:
    store = RollupStore.in_dir(tmp_path)
    try:
        buckets = roll_up(
            "sensor.power", None, [ev(0, "1"), ev(400, "3"), ev(700, "2")], 300, T0 + H
        )
        store.replace("5m", "sensor.power", T0, buckets)
        assert store.buckets("5m", "sensor.power", T0, T0 + H) == buckets
        assert store.before("5m", "sensor.power", T0 + M5 + 1) == buckets[1]
        store.replace("5m", "sensor.power", T0 + M5, buckets[1:2])
        assert store.buckets("5m", "sensor.power", T0, T0 + H) == buckets[:2]
    finally:
        store.close()


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2 * 86400 - 1), states), min_size=1, max_size=40),
    st.integers(0, 47),
)
def test_a_day_continued_from_its_stored_hours_is_the_day_folded_whole(
    changes: list[tuple[int, str]], split_hour: int
) -> None:
    """What a recompute from inside a day does: the day so far from the stored hours,
    then the events from there on; the same day as one fold of all the events."""
    times = sorted({t for t, _ in changes})
    events = [ev(t, dict(changes)[t]) for t in times]
    start, until = ev(-1, "off"), T0 + 48 * H
    split = T0 + split_hour * H
    early = [e for e in events if e.time < split]
    hours = roll_up("sensor.x", start, early, 3600, split)
    day_start = align(split, 86400)
    earlier = [h for h in hours if h.start < day_start]
    carried = earlier[-1] if earlier else Bucket("sensor.x", 3600, T0 - H, 1, last_state="off")
    in_day = [h for h in hours if h.start >= day_start]
    prefix = day_from_hours(in_day, carried, "sensor.x", day_start, split)
    state = early[-1] if early else start
    day = (
        Accumulator.resume(prefix, "sensor.x", 86400)
        if prefix is not None
        else Accumulator("sensor.x", 86400, state)
    )
    for event in events:
        if event.time >= split:
            day.add(event)
    continued = {b.start: b for b in day.take(until)}
    for whole in roll_up("sensor.x", start, events, 86400, until):
        if whole.start < day_start:
            continue
        got = continued[whole.start]
        assert (got.count, got.min, got.max, got.last_state) == (
            whole.count,
            whole.min,
            whole.max,
            whole.last_state,
        )
        assert got.tw_seconds == pytest.approx(whole.tw_seconds)
        assert got.tw_sum == pytest.approx(whole.tw_sum)
        assert got.state_seconds == pytest.approx(whole.state_seconds)
