"""The delete primitive, on every store: what a deletion matches is what goes, in chunks,
and nothing else; running it again finds nothing left."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from homeiq.model import EventRecord, Source
from homeiq.settings import Settings
from homeiq.sinks import registry
from homeiq.sinks.base import Deletion, Eraser, EventReader, Sink
from homeiq.sinks.sqlite import SQLiteEventStore, SQLiteSink
from tests.support.influxdb import T0, InfluxDBServer, S, event, influx_settings


@dataclass
class Store:
    name: str
    sink: Sink
    reader: EventReader
    eraser: Eraser


@pytest.fixture(
    params=["sqlite", "sqlite-process", pytest.param("influxdb", marks=pytest.mark.influxdb)]
)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param.startswith("sqlite"):
        writer = "process" if request.param == "sqlite-process" else "thread"
        settings = Settings(data_dir=tmp_path, sqlite_writer=writer)
    else:
        server = request.getfixturevalue("influxdb")
        settings = influx_settings(server.url, request.getfixturevalue("influxdb_database"))
    backend = registry.backend(settings)
    sink, reader = backend.open_sink(), backend.open_reader()
    await sink.open()
    yield Store(request.param, sink, reader, backend.eraser(sink))
    await reader.close()
    await sink.close()


def home() -> list[EventRecord]:
    records = []
    for second in range(10):
        records.append(event("sensor.power", second, str(second), value=float(second)))
        records.append(event("sensor.temp", second, "20"))
    records.append(event("sensor.power", 20, "x", source=Source.IMPORT))
    records.append(event("sensor.power", 21, "y", source=Source.BACKFILL))
    records.append(event("light.hall", 3, "on"))
    return records


async def keys(store: Store) -> set[tuple[str, int]]:
    return await store.reader.keys()


async def test_a_deletion_removes_exactly_its_range_in_chunks(store: Store) -> None:
    await store.sink.write(home())
    before = await keys(store)
    deletion = Deletion(("sensor.power", "sensor.temp"), before=T0 + 5 * S, after=T0 + 2 * S)
    assert await store.eraser.count(deletion) == 6
    assert await store.eraser.delete(deletion, chunk_rows=2) == 6
    gone = {(e, T0 + s * S) for e in ("sensor.power", "sensor.temp") for s in (2, 3, 4)}
    assert await keys(store) == before - gone
    # Idempotent: a rerun (after a kill, say) finds nothing left.
    assert await store.eraser.count(deletion) == 0
    assert await store.eraser.delete(deletion, chunk_rows=2) == 0


async def test_unbounded_and_unknown_entities(store: Store) -> None:
    await store.sink.write(home())
    deletion = Deletion(("light.hall", "sensor.never_stored"))
    assert await store.eraser.count(deletion) == 1
    assert await store.eraser.delete(deletion, chunk_rows=1000) == 1
    assert "light.hall" not in await store.eraser.entity_ids()
    assert await store.eraser.entity_ids() == ["sensor.power", "sensor.temp"]
    assert await store.eraser.count(Deletion(())) == 0


async def test_a_sources_filter_deletes_only_those_points(store: Store) -> None:
    await store.sink.write(home())
    before = await keys(store)
    deletion = Deletion(("sensor.power",), sources=(Source.IMPORT, Source.BACKFILL))
    assert await store.eraser.count(deletion) == 2
    assert await store.eraser.delete(deletion, chunk_rows=1) == 2
    assert await keys(store) == before - {
        ("sensor.power", T0 + 20 * S),
        ("sensor.power", T0 + 21 * S),
    }


async def test_chunk_rows_must_be_positive(store: Store) -> None:
    with pytest.raises(ValueError, match="chunk_rows"):
        await store.eraser.delete(Deletion(("sensor.power",)), chunk_rows=0)


def test_a_deletion_refuses_an_empty_range() -> None:
    with pytest.raises(ValueError, match="later than"):
        Deletion(("sensor.a",), before=1, after=2)
    assert Deletion(["a", "a", "b"], sources=[1]).entity_ids == ("a", "b")  # type: ignore[arg-type]


async def test_sqlite_gives_the_space_back(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path, writer="thread")
    await sink.open()
    big = {"payload": "x" * 2000}
    await sink.write([event("sensor.big", i, "1", attributes={"n": i, **big}) for i in range(400)])
    await sink.write([event("sensor.big2", i, "1") for i in range(20_000)])
    with sink.store.locked("test") as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
        pages_before = conn.execute("PRAGMA page_count").fetchone()[0]
    assert await sink.delete(Deletion(("sensor.big2",)), chunk_rows=5000) == 20_000
    with sink.store.locked("test") as conn:
        assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
        assert conn.execute("PRAGMA page_count").fetchone()[0] < pages_before
    await sink.close()


async def test_sqlite_vacuum_switches_an_older_file(tmp_path: Path) -> None:
    # A file made before auto_vacuum was set: the pragma has no effect until a VACUUM.
    old = SQLiteEventStore.in_dir(tmp_path)
    with old.locked("test") as conn:
        conn.execute("PRAGMA auto_vacuum=NONE")
        conn.execute("VACUUM")
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    old.write([event("sensor.a", i) for i in range(100)])
    old.close()
    sink = SQLiteSink(tmp_path, writer="thread")
    await sink.open()
    assert await sink.delete(Deletion(("sensor.a",)), chunk_rows=10) == 100  # no reclaim
    await sink.vacuum()
    with sink.store.locked("test") as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    await sink.close()


@pytest.mark.influxdb
async def test_influxdb_retention_policy_is_set_and_reset(
    influxdb: InfluxDBServer, influxdb_database: str
) -> None:
    settings = influx_settings(influxdb.url, influxdb_database)
    backend = registry.backend(settings)
    sink = backend.open_sink()
    await sink.open()
    retention = backend.raw_retention(sink)
    assert retention is not None
    try:
        assert await retention.raw_retention() == "retention policy 'autogen': 0s"
        assert await retention.set_raw_retention(32) == "retention policy 'autogen': 768h0m0s"
        (policy,) = influxdb.rows(f'SHOW RETENTION POLICIES ON "{influxdb_database}"', "")
        assert (policy["duration"], policy["shardGroupDuration"]) == ("768h0m0s", "24h0m0s")
        assert await retention.set_raw_retention(1) == "retention policy 'autogen': 24h0m0s"
        assert await retention.set_raw_retention(None) == "retention policy 'autogen': 0s"
    finally:
        await sink.close()


def test_sqlite_has_no_store_expiry(tmp_path: Path) -> None:
    backend = registry.backend(Settings(data_dir=tmp_path))
    assert backend.raw_retention(backend.open_sink()) is None
