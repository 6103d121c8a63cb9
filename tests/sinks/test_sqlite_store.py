"""The embedded SQLite event store and its async face, against real files in tmp_path."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from homeiq.errors import HomeIQError, IncompatibleSchema, SinkRejected, SinkUnavailable
from homeiq.model import EventRecord, Origin, Source
from homeiq.sinks.base import StoreSummary
from homeiq.sinks.sqlite import EVENTS_DB, SQLiteEventStore, SQLiteSink
from homeiq.sinks.sqlite import store as store_module
from homeiq.sqlitedb import connect as sqlite_connect
from tests.support.wait import wait_until

T0 = 1_795_641_737_000_000  # 2026-11-25T21:22:17Z in microseconds
S = 1_000_000


def rec(
    entity_id: str = "sensor.temp", second: int = 0, state: str | None = "21.5", **kw: Any
) -> EventRecord:
    attributes = kw.pop("attributes", {})
    kw.setdefault("last_changed", T0 + second * S)
    return EventRecord(
        entity_id=entity_id,
        time=T0 + second * S,
        state=state,
        attributes=attributes,
        attributes_json=orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS),
        **kw,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteEventStore]:
    opened = SQLiteEventStore.in_dir(tmp_path)
    yield opened
    opened.close()


def query(tmp_path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Look at events.db directly, from a second connection."""
    conn = sqlite3.connect(tmp_path / EVENTS_DB)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# -- idempotent writes ------------------------------------------------------------------------


def test_writing_twice_stores_once(store: SQLiteEventStore) -> None:
    batch = [rec(second=i, state=str(i)) for i in range(5)]
    assert store.write(batch) == 5
    assert store.write(batch) == 0
    assert store.keys() == {("sensor.temp", T0 + i * S) for i in range(5)}
    assert [r.state for r in store.all_records()] == ["0", "1", "2", "3", "4"]


def test_overlapping_batch_counts_only_new_rows(store: SQLiteEventStore) -> None:
    assert store.write([rec(second=0), rec(second=1)]) == 2
    assert store.write([rec(second=1), rec(second=2), rec("sensor.other", second=1)]) == 2
    assert len(store.keys()) == 4


def test_first_write_of_a_key_wins(store: SQLiteEventStore) -> None:
    assert store.write([rec(state="first"), rec(state="second")]) == 1
    assert store.write([rec(state="third")]) == 0
    assert [r.state for r in store.all_records()] == ["first"]


def test_a_live_row_replaces_a_backfilled_one_never_the_reverse(store: SQLiteEventStore) -> None:
    backfilled = rec(state="on", source=Source.BACKFILL, attributes={"from": "history"})
    live = rec(state="on", context_id="01HQZXRJ5BDB2D5X0FJ8Q6W2V4", attributes={"full": True})
    assert store.write([backfilled]) == 1
    assert store.write([live]) == 1  # the live copy, with its context, takes the key
    assert store.write([backfilled]) == 0  # and backfill never takes it back
    assert store.write([live]) == 0
    (stored,) = store.all_records()
    assert (stored.source, stored.context_id) == (Source.LIVE, live.context_id)
    assert stored.attributes == {"full": True}


def test_empty_batch(store: SQLiteEventStore) -> None:
    assert store.write([]) == 0
    assert store.all_records() == []


def test_record_round_trips_every_field(store: SQLiteEventStore) -> None:
    original = rec(
        "sensor.power",
        second=10,
        state="43.5",
        value=43.5,
        previous_state="42",
        duration_in_state_s=2.997,
        last_changed=T0 + 9 * S,
        attributes={"unit_of_measurement": "W", "friendly_name": "Power ⚡", "n": [1, 2.5, None]},
        context_id="01M8A9E214EA10R727KJ9NSVC2",
        context_parent_id="01M8A9DZ3E3CN6M85B4ZCGEPS1",
        context_user_id="afa9bd51afee4f0795c6dcbeeb4ad3a1",
        device_id="dev-1",
        area_id="kitchen",
        floor_id="ground",
        origin=Origin.REMOTE,
        source=Source.BACKFILL,
    )
    store.write([original])
    (stored,) = store.all_records()
    assert stored == original
    assert stored.unit_of_measurement == "W"


def test_removal_and_dropped_attributes_round_trip(store: SQLiteEventStore) -> None:
    removal = rec(second=1, state=None, previous_state="on", duration_in_state_s=60.0)
    dropped = rec(second=2, state="on", dropped_attributes_bytes=20_000)
    store.write([removal, dropped])
    got = store.all_records()
    assert got == [removal, dropped]
    assert got[0].removed
    assert got[1].dropped_attributes_bytes == 20_000


def test_last_changed_is_null_when_equal_to_time(store: SQLiteEventStore, tmp_path: Path) -> None:
    same = rec(second=1)
    earlier = rec(second=2, last_changed=T0)
    store.write([same, earlier])
    assert query(tmp_path, "SELECT time, last_changed FROM events ORDER BY time") == [
        (T0 + S, None),
        (T0 + 2 * S, T0),
    ]
    assert [r.last_changed for r in store.all_records()] == [T0 + S, T0]


# -- reading --------------------------------------------------------------------------------


def test_history_ranges_and_limit(store: SQLiteEventStore) -> None:
    store.write([rec(second=i, state=str(i)) for i in range(10)])
    store.write([rec("sensor.other", second=i) for i in range(10)])

    def states(start: int | None, end: int | None, limit: int = 100) -> list[str | None]:
        return [r.state for r in store.history("sensor.temp", start, end, limit)]

    assert states(None, None) == [str(i) for i in range(10)]
    # start inclusive, end exclusive
    assert states(T0 + 3 * S, T0 + 6 * S) == ["3", "4", "5"]
    assert states(T0 + 3 * S + 1, T0 + 6 * S + 1) == ["4", "5", "6"]
    assert states(T0 + 8 * S, None) == ["8", "9"]
    assert states(None, T0 + 2 * S) == ["0", "1"]
    assert states(T0 + 5 * S, T0 + 5 * S) == []
    # limit keeps the oldest
    assert states(None, None, 3) == ["0", "1", "2"]
    assert states(T0 + 4 * S, None, 2) == ["4", "5"]
    assert all(r.entity_id == "sensor.temp" for r in store.history("sensor.temp", None, None, 100))


def test_history_of_unknown_entity_is_empty(store: SQLiteEventStore) -> None:
    store.write([rec()])
    assert store.history("sensor.nope", None, None, 10) == []


def test_summary_counts(store: SQLiteEventStore) -> None:
    store.write(
        [
            rec("sensor.a", 0, area_id="kitchen", device_id="d1"),
            rec("sensor.a", 1, area_id="kitchen", device_id="d1"),
            rec("sensor.b", 2, area_id="bedroom", source=Source.BACKFILL),
            rec("light.c", 3, device_id="d2"),
            rec("light.c", 4, source=Source.IMPORT),
            rec("binary_sensor.d", 5, area_id="kitchen", floor_id="ground", source=Source.BACKFILL),
        ]
    )
    summary = store.summary()
    assert summary.total == 6
    assert summary.entities == 4
    assert summary.by_domain == {"sensor": 3, "light": 2, "binary_sensor": 1}
    assert summary.by_area == {"kitchen": 3, "bedroom": 1, "(no area)": 2}
    assert summary.by_source == {"live": 3, "backfill": 2, "import": 1}
    assert (summary.first_time, summary.last_time) == (T0, T0 + 5 * S)


def test_summary_of_empty_store(store: SQLiteEventStore) -> None:
    assert store.summary() == StoreSummary()
    assert store.last_event_time() is None


def test_last_event_time(store: SQLiteEventStore) -> None:
    store.write([rec("sensor.a", 5), rec("sensor.b", 2)])
    assert store.last_event_time() == T0 + 5 * S
    store.write([rec("sensor.b", 1)])
    assert store.last_event_time() == T0 + 5 * S
    store.write([rec("sensor.c", 9)])
    assert store.last_event_time() == T0 + 9 * S


# -- shared rows ------------------------------------------------------------------------------


def test_identical_attributes_share_one_row(store: SQLiteEventStore, tmp_path: Path) -> None:
    shared = {"unit_of_measurement": "°C", "friendly_name": "Temp"}
    store.write([rec("sensor.a", i, attributes=dict(shared)) for i in range(5)])
    store.write([rec("sensor.b", i, attributes=dict(reversed(shared.items()))) for i in range(5)])
    assert query(tmp_path, "SELECT COUNT(*) FROM attributes") == [(1,)]
    assert query(tmp_path, "SELECT COUNT(DISTINCT attributes) FROM events") == [(1,)]
    store.write([rec("sensor.a", 10, attributes={"other": 1})])
    assert query(tmp_path, "SELECT COUNT(*) FROM attributes") == [(2,)]
    assert {orjson.dumps(r.attributes) for r in store.all_records()} == {
        orjson.dumps(shared, option=orjson.OPT_SORT_KEYS),
        b'{"other":1}',
    }


def test_attribute_rows_are_reused_after_reopen(tmp_path: Path) -> None:
    attributes = {"friendly_name": "Door"}
    first = SQLiteEventStore.in_dir(tmp_path)
    first.write([rec(second=0, attributes=attributes)])
    first.close()
    second = SQLiteEventStore.in_dir(tmp_path)
    try:
        second.write([rec(second=1, attributes=attributes)])
        assert [r.attributes for r in second.all_records()] == [attributes, attributes]
    finally:
        second.close()
    assert query(tmp_path, "SELECT COUNT(*) FROM attributes") == [(1,)]


def test_attribute_cache_eviction_keeps_dedup_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "ATTRIBUTE_CACHE_SIZE", 2)
    store = SQLiteEventStore.in_dir(tmp_path)
    try:
        sets = [{"n": i} for i in range(5)]
        store.write([rec("sensor.a", i, attributes=a) for i, a in enumerate(sets)])
        # Written again after the cache was cleared: found by hash, not re-inserted.
        store.write([rec("sensor.b", i, attributes=a) for i, a in enumerate(sets)])
        got = {(r.entity_id, r.time): r.attributes for r in store.all_records()}
    finally:
        store.close()
    assert query(tmp_path, "SELECT COUNT(*) FROM attributes") == [(5,)]
    for i, attributes in enumerate(sets):
        assert got[("sensor.a", T0 + i * S)] == got[("sensor.b", T0 + i * S)] == attributes


def test_hash_collision_does_not_reuse_another_attribute_set(tmp_path: Path) -> None:
    attributes = {"friendly_name": "Real"}
    blob = orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS)
    SQLiteEventStore.in_dir(tmp_path).close()
    # Plant a different JSON under the same hash, as a CRC32 collision would. (Before the
    # store opens: it is the only writer and hands out attribute ids itself.)
    conn = sqlite3.connect(tmp_path / EVENTS_DB)
    conn.execute(
        "INSERT INTO attributes (hash, json, codec) VALUES (?, ?, 0)",
        (zlib.crc32(blob), b'{"x":"impostor"}'),
    )
    conn.commit()
    conn.close()
    store = SQLiteEventStore.in_dir(tmp_path)
    try:
        store.write([rec(attributes=attributes)])
        assert store.all_records()[0].attributes == attributes
    finally:
        store.close()
    assert query(tmp_path, "SELECT COUNT(*) FROM attributes WHERE hash = ?", zlib.crc32(blob)) == [
        (2,)
    ]


def test_placement_and_user_ids_survive_reopen(tmp_path: Path) -> None:
    kitchen = {"device_id": "d1", "area_id": "kitchen", "floor_id": "ground"}
    first = SQLiteEventStore.in_dir(tmp_path)
    first.write(
        [
            rec("sensor.a", 0, context_user_id="user-1", **kitchen),
            rec("sensor.b", 0, area_id="hall"),
        ]
    )
    first.close()

    second = SQLiteEventStore.in_dir(tmp_path)
    try:
        assert (
            second.write(
                [
                    rec("sensor.a", 1, context_user_id="user-1", **kitchen),
                    rec("sensor.b", 1, area_id="hall", context_user_id="user-2"),
                    rec("sensor.c", 1, device_id="d9"),
                ]
            )
            == 3
        )
        a = second.history("sensor.a", None, None, 10)
        b = second.history("sensor.b", None, None, 10)
        c = second.history("sensor.c", None, None, 10)
    finally:
        second.close()

    assert [(r.device_id, r.area_id, r.floor_id, r.context_user_id) for r in a] == [
        ("d1", "kitchen", "ground", "user-1")
    ] * 2
    assert [(r.device_id, r.area_id, r.floor_id, r.context_user_id) for r in b] == [
        (None, "hall", None, None),
        (None, "hall", None, "user-2"),
    ]
    assert [(r.device_id, r.area_id) for r in c] == [("d9", None)]
    assert query(tmp_path, "SELECT COUNT(*) FROM placements") == [(3,)]
    assert query(tmp_path, "SELECT user_id FROM users ORDER BY id") == [("user-1",), ("user-2",)]
    assert query(tmp_path, "SELECT entity_id FROM entities ORDER BY id") == [
        ("sensor.a",),
        ("sensor.b",),
        ("sensor.c",),
    ]


def test_no_placement_row_without_placement(store: SQLiteEventStore, tmp_path: Path) -> None:
    store.write([rec()])
    assert query(tmp_path, "SELECT COUNT(*) FROM placements") == [(0,)]
    assert query(tmp_path, "SELECT placement, context_user FROM events") == [(None, None)]


# -- context ids ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("context_id", "stored_type"),
    [
        ("01M8A9E214EA10R727KJ9NSVC2", "blob"),
        ("0123456789abcdef0123456789abcdef", "text"),  # pre-ULID HA uuid hex
        ("01m8a9e214ea10r727kj9nsvc2", "text"),  # lower case is not a canonical ULID
        ("not-a-ulid", "text"),
        ("", "text"),
        ("é" * 64, "text"),
    ],
)
def test_context_ids_round_trip(
    store: SQLiteEventStore, tmp_path: Path, context_id: str, stored_type: str
) -> None:
    store.write([rec(context_id=context_id, context_parent_id=context_id)])
    assert query(tmp_path, "SELECT typeof(context_id), typeof(context_parent_id) FROM events") == [
        (stored_type, stored_type)
    ]
    (stored,) = store.all_records()
    assert stored.context_id == context_id
    assert stored.context_parent_id == context_id


def test_ulid_context_takes_16_bytes(store: SQLiteEventStore, tmp_path: Path) -> None:
    store.write([rec(context_id="01M8A9E214EA10R727KJ9NSVC2")])
    assert query(tmp_path, "SELECT length(context_id) FROM events") == [(16,)]


# -- opening ----------------------------------------------------------------------------------


def test_store_creates_missing_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "a" / "b"
    opened = SQLiteEventStore.in_dir(data_dir)
    opened.close()
    assert (data_dir / EVENTS_DB).is_file()
    assert query(data_dir, "SELECT MAX(version) FROM schema_changes") == [(1,)]


def test_readonly_store_reads_but_refuses_writes(tmp_path: Path) -> None:
    writer = SQLiteEventStore.in_dir(tmp_path)
    writer.write([rec(second=i, context_id="01M8A9E214EA10R727KJ9NSVC2") for i in range(3)])
    expected = writer.all_records()
    writer.close()

    reader = SQLiteEventStore.in_dir(tmp_path, readonly=True)
    try:
        assert reader.history("sensor.temp", None, None, 10) == expected
        assert reader.summary().total == 3
        assert reader.last_event_time() == T0 + 2 * S
        with pytest.raises(SinkRejected, match="readonly"):
            reader.write([rec(second=9)])
        with pytest.raises(SinkRejected):
            reader.write([rec("sensor.new", second=9)])
    finally:
        reader.close()
    assert query(tmp_path, "SELECT COUNT(*) FROM events") == [(3,)]


def test_readonly_open_of_missing_store_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(SinkUnavailable, match="unable to open"):
        SQLiteEventStore.in_dir(tmp_path / "nothing-here", readonly=True)
    assert not (tmp_path / "nothing-here").exists()


def test_directory_as_database_path_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(SinkUnavailable):
        SQLiteEventStore(tmp_path / "dir.db")


def test_a_file_that_is_not_a_database_is_rejected(tmp_path: Path) -> None:
    (tmp_path / EVENTS_DB).write_bytes(b"definitely not sqlite " * 100)
    with pytest.raises(SinkRejected, match="not a database"):
        SQLiteEventStore.in_dir(tmp_path)


def test_uncreatable_data_dir_is_a_homeiq_error(tmp_path: Path) -> None:
    (tmp_path / "occupied").write_text("a file, not a directory")
    with pytest.raises(HomeIQError):
        SQLiteEventStore.in_dir(tmp_path / "occupied")


def test_newer_events_schema_is_a_homeiq_error(tmp_path: Path) -> None:
    SQLiteEventStore.in_dir(tmp_path).close()
    conn = sqlite3.connect(tmp_path / EVENTS_DB)
    conn.execute("INSERT INTO schema_changes VALUES (99, 0)")
    conn.commit()
    conn.close()
    with pytest.raises(HomeIQError, match="newer"):
        SQLiteEventStore.in_dir(tmp_path)


# -- error mapping ----------------------------------------------------------------------------


def test_a_full_disk_is_unavailable_and_the_retry_stores_everything(tmp_path: Path) -> None:
    store = SQLiteEventStore.in_dir(tmp_path)
    try:
        store.write([rec("sensor.a", 0)])
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count={pages}")  # a real SQLITE_FULL
        noise = random.Random(7)  # incompressible attributes: they need new pages
        big = [
            rec(f"sensor.n{i}", i, attributes={"blob": noise.randbytes(2000).hex()})
            for i in range(50)
        ]
        with pytest.raises(SinkUnavailable, match=r"cannot write .*events\.db: database or disk"):
            store.write(big)
        assert store.keys() == {("sensor.a", T0)}
        store._conn.execute("PRAGMA max_page_count=1073741823")  # space freed
        assert store.write(big) == 50
        assert store.history("sensor.n7", None, None, 1) == [big[7]]
    finally:
        store.close()


def test_a_read_of_a_damaged_table_is_a_homeiq_error(tmp_path: Path) -> None:
    store = SQLiteEventStore.in_dir(tmp_path)
    try:
        store._conn.execute("DROP TABLE events")
        with pytest.raises(IncompatibleSchema, match=r"cannot read .*events\.db: no such table"):
            store.keys()
        with pytest.raises(IncompatibleSchema):
            store.summary()
    finally:
        store.close()


def test_a_closed_store_is_unavailable(tmp_path: Path) -> None:
    store = SQLiteEventStore.in_dir(tmp_path)
    store.close()
    with pytest.raises(SinkUnavailable, match="closed"):
        store.last_event_time()


@pytest.fixture
def impatient(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stores opened from now on wait 50 ms, not 30 s, for a lock."""

    def connect(path: str, *, readonly: bool = False) -> sqlite3.Connection:
        conn = sqlite_connect(path, readonly=readonly)
        conn.execute("PRAGMA busy_timeout=50")
        return conn

    monkeypatch.setattr(store_module, "connect", connect)


@pytest.mark.usefixtures("impatient")
def test_locked_database_is_unavailable_then_recovers(tmp_path: Path) -> None:
    store = SQLiteEventStore.in_dir(tmp_path)
    other = sqlite3.connect(tmp_path / EVENTS_DB, isolation_level=None)
    try:
        store.write([rec("sensor.a", 0)])
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(SinkUnavailable, match="locked"):
            store.write([rec("sensor.a", 1), rec("sensor.new", 1, area_id="x")])
        other.execute("ROLLBACK")
        # Nothing half-written; the retry stores everything with valid ids.
        assert store.write([rec("sensor.a", 1), rec("sensor.new", 1, area_id="x")]) == 2
        assert store.keys() == {("sensor.a", T0), ("sensor.a", T0 + S), ("sensor.new", T0 + S)}
        assert store.history("sensor.new", None, None, 10)[0].area_id == "x"
    finally:
        other.close()
        store.close()


def test_failed_batch_rolls_back_and_ids_are_reloaded(
    store: SQLiteEventStore, tmp_path: Path
) -> None:
    store.write([rec("sensor.a", 0)])
    conn = sqlite3.connect(tmp_path / EVENTS_DB)
    conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.state = 'poison'"
        " BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"
    )
    conn.commit()
    conn.close()
    batch = [
        rec("sensor.fresh", 1, device_id="dev", context_user_id="u"),
        rec("sensor.a", 1, state="poison"),
    ]
    with pytest.raises(SinkRejected, match="poisoned row"):
        store.write(batch)
    # The whole batch rolled back, including the new entity, placement and user rows.
    assert query(tmp_path, "SELECT entity_id FROM entities") == [("sensor.a",)]
    assert query(tmp_path, "SELECT COUNT(*) FROM placements") == [(0,)]
    assert query(tmp_path, "SELECT COUNT(*) FROM users") == [(0,)]
    # A later batch re-creates them instead of pointing at rolled-back ids.
    assert store.write([rec("sensor.fresh", 1, device_id="dev", context_user_id="u")]) == 1
    (fresh,) = store.history("sensor.fresh", None, None, 10)
    assert (fresh.device_id, fresh.context_user_id) == ("dev", "u")


def test_unbindable_value_is_rejected(store: SQLiteEventStore) -> None:
    with pytest.raises(SinkRejected):
        store.write([rec("sensor.fresh", 0, state="bad \ud800")])


def test_store_recovers_after_an_unbindable_value(store: SQLiteEventStore) -> None:
    with pytest.raises(Exception):  # noqa: B017 - see test_unbindable_value_is_rejected
        store.write([rec("sensor.fresh", 0, state="bad \ud800")])
    assert store.write([rec("sensor.fresh", 1)]) == 1
    assert store.keys() == {("sensor.fresh", T0 + S)}


# -- the async sink ---------------------------------------------------------------------------


def _sink_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("homeiq-sqlite")]


async def test_sqlite_sink_round_trip(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path, writer="thread")
    assert sink.name == "sqlite"
    with pytest.raises(RuntimeError, match="before open"):
        _ = sink.store
    await sink.open()
    try:
        assert await sink.write([rec("sensor.a", i, area_id="kitchen") for i in range(3)]) == 3
        assert (
            await sink.write([rec("sensor.a", 2), rec("light.b", 0, source=Source.BACKFILL)]) == 1
        )
        history = await sink.history("sensor.a", T0 + S, None, 10)
        assert [r.time for r in history] == [T0 + S, T0 + 2 * S]
        summary = await sink.summary()
        assert summary.total == 4
        assert summary.by_domain == {"sensor": 3, "light": 1}
        assert summary.by_area == {"kitchen": 3, "(no area)": 1}
        assert summary.by_source == {"live": 3, "backfill": 1}
        assert await sink.last_event_time() == T0 + 2 * S
        assert len(_sink_threads()) == 1
    finally:
        await sink.close()
    assert _sink_threads() == []
    with pytest.raises(RuntimeError):
        _ = sink.store
    # The data outlived the sink.
    assert query(tmp_path, "SELECT COUNT(*) FROM events") == [(4,)]


async def test_sqlite_sink_runs_store_work_off_the_event_loop(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path, writer="thread")
    await sink.open()
    seen: list[str] = []
    original = sink.store.write_wire

    def spy(batch: Any) -> int:
        seen.append(threading.current_thread().name)
        return original(batch)

    sink.store.write_wire = spy  # type: ignore[method-assign]
    try:
        await sink.write([rec()])
    finally:
        await sink.close()
    assert len(seen) == 1
    assert seen[0].startswith("homeiq-sqlite")
    assert seen[0] != threading.current_thread().name


async def test_sqlite_sink_close_without_open(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path, writer="thread")
    await sink.close()
    assert _sink_threads() == []
    assert not (tmp_path / EVENTS_DB).exists()


async def test_sqlite_sink_open_failure_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / EVENTS_DB).mkdir()
    sink = SQLiteSink(tmp_path, writer="thread")
    try:
        with pytest.raises(SinkUnavailable):
            await sink.open()
    finally:
        await sink.close()
    assert _sink_threads() == []


@pytest.mark.usefixtures("impatient")
async def test_sqlite_sink_write_while_locked_is_unavailable(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path, writer="thread")
    await sink.open()
    other = sqlite3.connect(tmp_path / EVENTS_DB, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(SinkUnavailable):
            await sink.write([rec()])
        other.execute("ROLLBACK")
        assert await sink.write([rec()]) == 1
    finally:
        other.close()
        await sink.close()


# -- the writer process (the default) -----------------------------------------------------


async def test_process_sink_round_trip(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path)
    assert sink.writer == "process"
    await sink.open()
    try:
        assert await sink.write([rec("sensor.a", i, area_id="kitchen") for i in range(3)]) == 3
        assert await sink.write([rec("sensor.a", 2), rec("light.b", 0)]) == 1
        history = await sink.history("sensor.a", None, None, 10)
        assert [(r.time, r.area_id) for r in history] == [(T0 + i * S, "kitchen") for i in range(3)]
        assert (await sink.summary()).by_domain == {"sensor": 3, "light": 1}
        assert await sink.last_event_time() == T0 + 2 * S
        with pytest.raises(RuntimeError, match="thread mode"):
            _ = sink.store
    finally:
        await sink.close()
    assert query(tmp_path, "SELECT COUNT(*) FROM events") == [(4,)]


async def test_process_sink_survives_its_writer_being_killed(tmp_path: Path) -> None:
    import os
    import signal

    sink = SQLiteSink(tmp_path)
    await sink.open()
    try:
        assert await sink.write([rec("sensor.a", 0)]) == 1
        executor = sink._executor
        assert executor is not None
        (pid,) = list(executor._processes)  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(SinkUnavailable, match="writer process died"):
            for _ in range(50):  # the pool notices the death on its next task
                await sink.write([rec("sensor.a", 1)])
                await asyncio.sleep(0.02)
        # A new writer process takes over and reopens the store.
        assert await sink.write([rec("sensor.a", 1), rec("sensor.a", 2)]) >= 1
    finally:
        await sink.close()
    assert query(tmp_path, "SELECT COUNT(*) FROM events") == [(3,)]


async def test_process_sink_open_errors_say_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / EVENTS_DB).mkdir()
    sink = SQLiteSink(tmp_path)
    try:
        with pytest.raises(
            SinkUnavailable, match=r"sqlite cannot open .*events\.db: unable to open"
        ):
            await sink.open()
    finally:
        await sink.close()


async def test_process_sink_refuses_a_newer_schema(tmp_path: Path) -> None:
    SQLiteEventStore.in_dir(tmp_path).close()
    conn = sqlite3.connect(tmp_path / EVENTS_DB)
    conn.execute("INSERT INTO schema_changes VALUES (99, 0)")
    conn.commit()
    conn.close()
    sink = SQLiteSink(tmp_path)
    try:
        with pytest.raises(IncompatibleSchema, match="newer"):
            await sink.open()
    finally:
        await sink.close()


async def test_process_sink_writer_ignores_ctrl_c(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole process group; the writer must finish its work."""
    import os
    import signal

    sink = SQLiteSink(tmp_path)
    await sink.open()
    try:
        executor = sink._executor
        assert executor is not None
        (pid,) = list(executor._processes)  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGINT)
        await asyncio.sleep(0.2)
        assert await sink.write([rec("sensor.a", 0)]) == 1
        assert list(executor._processes) == [pid]  # type: ignore[attr-defined]
    finally:
        await sink.close()


def test_process_sink_writer_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    """kill -9 of HomeIQ must not leave its writer behind holding events.db."""
    import os
    import signal
    import subprocess
    import sys

    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from homeiq.sinks.sqlite import SQLiteSink\n"
        "async def main():\n"
        "    sink = SQLiteSink(Path(sys.argv[1]))\n"
        "    await sink.open()\n"
        "    print(*sink._executor._processes, flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        writer = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()

        def gone() -> bool:
            try:
                os.kill(writer, 0)
            except ProcessLookupError:
                return True
            return False

        try:
            wait_until(gone, timeout=5, interval=0.05, message="the writer outlived its parent")
        finally:
            if not gone():  # a leftover writer must not outlive the test run
                os.kill(writer, signal.SIGKILL)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        assert parent.stdout is not None
        parent.stdout.close()


async def test_process_sink_falls_back_to_a_thread_without_multiprocessing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import homeiq.sinks.sqlite as sqlite_sink

    def no_semaphores(*args: Any, **kwargs: Any) -> Any:
        raise ImportError("This platform lacks a functioning sem_open implementation")

    monkeypatch.setattr(sqlite_sink, "ProcessPoolExecutor", no_semaphores)
    sink = SQLiteSink(tmp_path)
    await sink.open()
    try:
        assert sink.writer == "thread"
        assert await sink.write([rec("sensor.a", 0)]) == 1
    finally:
        await sink.close()
