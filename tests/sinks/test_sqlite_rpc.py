"""The typed requests the SQLite sink sends to its writer process: each crosses a process
boundary intact and answers exactly what the store's own method answers."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from homeiq import ulid
from homeiq.model import EventRecord
from homeiq.sinks.base import EventQuery
from homeiq.sinks.sqlite import SQLiteEventStore, SQLiteSink, rpc, to_wire

T0 = 1_795_641_737_000_000
S = 1_000_000
CONTEXT = ulid.from_int((T0 // 1000) << 80 | 12345)  # created at T0


def rec(entity_id: str, second: int, **kw: Any) -> EventRecord:
    return EventRecord(
        entity_id=entity_id,
        time=T0 + second * S,
        state=str(second),
        last_changed=T0 + second * S,
        attributes_json=orjson.dumps({}),
        **kw,
    )


RECORDS = [
    rec("sensor.a", 0, context_id=CONTEXT),
    rec("sensor.a", 1, context_parent_id=CONTEXT),
    rec("light.b", 2, area_id="hall"),
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteEventStore]:
    opened = SQLiteEventStore.in_dir(tmp_path)
    opened.write(RECORDS)
    yield opened
    opened.close()


# Each request, and the store call it stands for.
CASES: list[tuple[rpc.Request[Any], Any]] = [
    (rpc.History("sensor.a", None, None, 10), lambda s: s.history("sensor.a", None, None, 10)),
    (rpc.Summary(), lambda s: s.summary()),
    (rpc.LastEventTime(), lambda s: s.last_event_time()),
    (rpc.Keys(["sensor.a"], T0, T0 + S), lambda s: s.keys(["sensor.a"], T0, T0 + S)),
    (rpc.Keys(None, None, None), lambda s: s.keys()),
    (rpc.Events(EventQuery(limit=2)), lambda s: s.events(EventQuery(limit=2))),
    (
        rpc.HistoryMany(["sensor.a", "light.b"], T0 + S, T0 + 3 * S, True, False),
        lambda s: s.history_many(["sensor.a", "light.b"], T0 + S, T0 + 3 * S, True, False),
    ),
    (rpc.ByContext([CONTEXT], T0), lambda s: s.by_context([CONTEXT], T0)),
    (rpc.ByContext([CONTEXT], T0, caused_by=True), lambda s: s.caused_by([CONTEXT], T0)),
    (
        rpc.ActivityCounts(T0, T0 + 60 * S, 60, 5),
        lambda s: s.activity(T0, T0 + 60 * S, 60, 5),
    ),
]


@pytest.mark.parametrize(("request_", "direct"), CASES, ids=lambda c: type(c).__name__)
def test_a_request_pickles_and_answers_like_the_store(
    store: SQLiteEventStore, request_: rpc.Request[Any], direct: Any
) -> None:
    crossed = pickle.loads(pickle.dumps(request_))
    assert crossed == request_
    answer = crossed.run(store)
    assert answer == direct(store)
    assert answer not in (None, [], set(), {})  # a real answer, not an empty agreement
    assert pickle.loads(pickle.dumps(answer)) == answer  # the reply crosses back too


def test_a_write_request_stores_its_batch(store: SQLiteEventStore) -> None:
    batch = [to_wire(rec("sensor.c", 5)), to_wire(RECORDS[0])]
    assert pickle.loads(pickle.dumps(rpc.WriteBatch(batch))).run(store) == 1  # one was new
    assert store.keys(["sensor.c"]) == {("sensor.c", T0 + 5 * S)}


async def test_the_writer_process_answers_typed_requests(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path)  # a real spawned writer process
    await sink.open()
    try:
        assert await sink.write(RECORDS) == 3
        assert await sink.history("sensor.a", None, None, 10) == RECORDS[:2]
        assert await sink.caused_by([CONTEXT], around=T0) == [RECORDS[1]]
        assert (await sink.summary()).total == 3
    finally:
        await sink.close()
