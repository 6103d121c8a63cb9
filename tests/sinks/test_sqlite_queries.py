"""SQLite's query plans for the API's reads: per-entity seeks, never a scan of ``events``.

The answers themselves are checked on every backend by test_contract_queries.py; this
file checks how SQLite finds them: the plan of every statement the queries run, both
ways of counting activity buckets, and the widening time slices over sparse data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from homeiq.model import EventRecord
from homeiq.sinks.base import EventQuery
from homeiq.sinks.sqlite import SQLiteEventStore
from homeiq.sinks.sqlite import queries as queries_module
from tests.sinks.home import (
    HOME,
    LEGACY_CONTEXT,
    MOTION_CONTEXT,
    expected_activity,
    expected_events,
    ordered,
)
from tests.sinks.test_contract_queries import FILTERS, RANGES
from tests.support.influxdb import T0, S, event

DAY = 86_400 * S
# "SCAN e" / "SCAN events": every row of the table, whatever the time range.
FULL_SCAN = re.compile(r"\bSCAN (e|events)\b")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteEventStore]:
    opened = SQLiteEventStore.in_dir(tmp_path)
    opened.write(HOME)
    yield opened
    opened.close()


class Statements:
    """Every statement a store runs while recorded (with its parameters expanded)."""

    def __init__(self, store: SQLiteEventStore) -> None:
        self.store = store
        self.sql: list[str] = []

    def __enter__(self) -> Statements:
        self.store._conn.set_trace_callback(self.sql.append)
        return self

    def __exit__(self, *exc: object) -> None:
        self.store._conn.set_trace_callback(None)

    def plans(self) -> dict[str, list[str]]:
        """Each SELECT's plan, one line per step."""
        conn = self.store._conn
        return {
            sql: [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
            for sql in self.sql
            if sql.lstrip().upper().startswith("SELECT")
        }


def test_no_read_scans_the_events_table(
    store: SQLiteEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Statements(store) as recorded:
        for filters in FILTERS:
            for newest_first in (False, True):
                query = EventQuery(**filters, newest_first=newest_first, limit=1)
                cursor = store.events(query).next_cursor
                if cursor is not None:
                    store.events(EventQuery(**filters, newest_first=newest_first, cursor=cursor))
        store.history_many(["light.kitchen", "sensor.outdoor"], T0, T0 + 60 * S)
        store.history_many(["light.kitchen"], T0, T0 + 60 * S, attributes=False)
        store.by_context([MOTION_CONTEXT, LEGACY_CONTEXT])
        store.caused_by([MOTION_CONTEXT])
        store.keys(None, T0, T0 + 60 * S)
        store.keys(["light.kitchen"], T0, T0 + 60 * S)
        for seek_cost in (0, 10**9):  # both ways of counting buckets
            monkeypatch.setattr(queries_module, "SEEK_COST_ROWS", seek_cost)
            store.activity(T0 - 100 * S, T0 + 60 * S, 10, 3)
    plans = recorded.plans()
    assert len(plans) > 100
    scans = {sql: plan for sql, plan in plans.items() if any(FULL_SCAN.search(p) for p in plan)}
    assert scans == {}
    assert any(
        "SEARCH e USING PRIMARY KEY (entity=? AND time>? AND time<?)" in p for p in plans.values()
    )


@pytest.mark.parametrize("seek_cost", [0, 10**9], ids=["seek-per-bucket", "sort-by-bucket"])
@pytest.mark.parametrize(("start", "end", "bucket_s", "top"), RANGES)
def test_both_ways_of_counting_buckets_agree(
    store: SQLiteEventStore,
    monkeypatch: pytest.MonkeyPatch,
    seek_cost: int,
    start: int,
    end: int,
    bucket_s: int,
    top: int,
) -> None:
    monkeypatch.setattr(queries_module, "SEEK_COST_ROWS", seek_cost)
    assert store.activity(start, end, bucket_s, top) == expected_activity(start, end, bucket_s, top)


def test_the_newest_page_of_a_busy_home_reads_one_slice(tmp_path: Path) -> None:
    busy = [event(f"sensor.s{i}", second=10 * n + i) for i in range(10) for n in range(360)]
    store = SQLiteEventStore.in_dir(tmp_path)
    try:
        store.write(busy)
        with Statements(store) as recorded:
            page = store.events(EventQuery(newest_first=True, limit=50))
        assert page.records == ordered(busy, newest_first=True)[:50]
        assert len([s for s in recorded.sql if "ORDER BY e.time" in s]) == 1
    finally:
        store.close()


def _sparse() -> list[EventRecord]:
    """Events months apart: the walk must widen its slices many times."""
    return [
        event(f"sensor.s{i % 3}", second=day * 86_400 + i, state=str(day), area_id=f"a{i % 2}")
        for i, day in enumerate([-900, -400, -120, -30, -29, -2, 0, 0, 1, 60, 365, 800])
    ]


@pytest.mark.parametrize("newest_first", [False, True])
@pytest.mark.parametrize("limit", [1, 2, 5])
def test_paging_over_sparse_events(tmp_path: Path, newest_first: bool, limit: int) -> None:
    sparse = _sparse()
    store = SQLiteEventStore.in_dir(tmp_path)
    try:
        store.write(sparse)
        for filters in (
            {},
            {"area_ids": ("a1",)},
            {"start": T0 - 100 * DAY, "end": T0 + 400 * DAY},
        ):
            query = EventQuery(**filters, newest_first=newest_first, limit=limit)
            records: list[EventRecord] = []
            page = store.events(query)
            records += page.records
            while page.next_cursor is not None:
                page = store.events(
                    EventQuery(
                        **filters, newest_first=newest_first, limit=limit, cursor=page.next_cursor
                    )
                )
                records += page.records
            expected = ordered(
                [
                    r
                    for r in sparse
                    if (not query.area_ids or r.area_id in query.area_ids)
                    and (query.start is None or r.time >= query.start)
                    and (query.end is None or r.time < query.end)
                ],
                newest_first,
            )
            assert records == expected
    finally:
        store.close()


def test_times_beyond_64_bits(store: SQLiteEventStore) -> None:
    huge = 2**70
    assert store.events(EventQuery(start=-huge, end=huge, limit=len(HOME))).records == (
        expected_events(EventQuery())
    )
    outdoor = [r for r in ordered(HOME) if r.entity_id == "sensor.outdoor"]
    assert store.history_many(["sensor.outdoor"], -huge, huge) == {"sensor.outdoor": outdoor}
    assert store.activity(-(2**62), 2**62, 2**40, 1).total == len(HOME)
