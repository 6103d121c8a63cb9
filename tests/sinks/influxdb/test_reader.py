"""InfluxDBReader against a real InfluxDB 1.6.7: history, summary, keys, paging, escaping."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from homeiq.errors import QueryFailed, SinkUnavailable
from homeiq.model import EventRecord, Source
from homeiq.sinks.base import StoreSummary
from homeiq.sinks.influxdb import InfluxDBReader, InfluxDBSink
from tests.support.influxdb import T0, InfluxDBServer, S, event, influx_settings

pytestmark = pytest.mark.influxdb
M = "home_assistant_events"
PAGE = 7


@dataclass
class Store:
    sink: InfluxDBSink
    reader: InfluxDBReader

    async def write(self, batch: list[EventRecord]) -> None:
        await self.sink.write(batch)


@pytest.fixture
async def store(influxdb: InfluxDBServer, influxdb_database: str) -> AsyncIterator[Store]:
    settings = influx_settings(influxdb.url, influxdb_database)
    opened = Store(
        InfluxDBSink.from_settings(settings),
        InfluxDBReader.from_settings(settings, page_size=PAGE),
    )
    await opened.sink.open()
    yield opened
    await opened.sink.close()
    await opened.reader.close()


async def test_history_is_oldest_first_within_start_inclusive_end_exclusive(store: Store) -> None:
    batch = [event(second=s, state=str(s)) for s in (5, 1, 3, 0, 4, 2)]
    await store.write([*batch, event("sensor.other", second=2)])
    reader = store.reader
    assert [r.state for r in await reader.history("sensor.temp", None, None, 100)] == [
        "0",
        "1",
        "2",
        "3",
        "4",
        "5",
    ]
    ranged = await reader.history("sensor.temp", T0 + S, T0 + 4 * S, 100)
    assert [r.state for r in ranged] == ["1", "2", "3"]
    assert [r.state for r in await reader.history("sensor.temp", T0 + S, None, 2)] == ["1", "2"]
    assert await reader.history("sensor.temp", T0 + 9 * S, None, 10) == []
    assert await reader.history("sensor.unknown", None, None, 10) == []
    assert await reader.history("sensor.temp", None, None, 0) == []


async def test_history_reads_back_what_was_written(store: Store) -> None:
    batch = [
        event(
            second=0,
            value=21.0,
            previous_state="20",
            duration_in_state_s=1.5,
            attributes={"unit_of_measurement": "°C", "friendly_name": "T", "device_class": "t"},
            context_id="01HQ3GZ4C7Q3V2N8W1XKJ5T9RA",
            context_user_id="u",
            device_id="d",
            area_id="a",
            floor_id="f",
            source=Source.IMPORT,
        ),
        event(second=1, state=None, dropped_attributes_bytes=99_999),
    ]
    await store.write(batch)
    assert await store.reader.history("sensor.temp", None, None, 10) == batch


async def test_pages_beyond_the_page_size(store: Store) -> None:
    batch = [event(second=i, state=str(i)) for i in range(3 * PAGE + 2)]
    await store.write(batch)
    assert await store.reader.history("sensor.temp", None, None, 1000) == batch
    assert await store.reader.history("sensor.temp", None, None, 2 * PAGE) == batch[: 2 * PAGE]
    assert await store.reader.history("sensor.temp", T0 + S, None, PAGE) == batch[1 : PAGE + 1]
    assert await store.reader.keys() == {("sensor.temp", r.time) for r in batch}


async def test_summary_and_last_event_time(store: Store) -> None:
    assert await store.reader.summary() == StoreSummary()
    assert await store.reader.last_event_time() is None
    await store.write(
        [
            event("sensor.a", second=0, area_id="kitchen"),
            event("sensor.a", second=1, area_id="kitchen", source=Source.BACKFILL),
            event("sensor.b", second=2),
            event("light.c", second=-3, area_id="hall", source=Source.IMPORT),
            event("light.c", second=9, area_id="hall"),
        ]
    )
    assert await store.reader.summary() == StoreSummary(
        total=5,
        entities=3,
        by_domain={"sensor": 3, "light": 2},
        by_area={"kitchen": 2, "(no area)": 1, "hall": 2},
        by_source={"live": 3, "backfill": 1, "import": 1},
        first_time=T0 - 3 * S,
        last_time=T0 + 9 * S,
    )
    assert await store.reader.last_event_time() == T0 + 9 * S


async def test_keys_with_and_without_filters(store: Store) -> None:
    await store.write([event(e, second=s) for e in ("sensor.a", "sensor.b") for s in range(4)])
    every = {(e, T0 + s * S) for e in ("sensor.a", "sensor.b") for s in range(4)}
    reader = store.reader
    assert await reader.keys() == every
    assert await reader.keys(["sensor.a"]) == {k for k in every if k[0] == "sensor.a"}
    assert await reader.keys(None, T0 + S, T0 + 2 * S) == {
        k for k in every if k[1] in (T0 + S, T0 + 2 * S)
    }
    assert await reader.keys(["sensor.b", "sensor.b"], T0 + 3 * S, None) == {
        ("sensor.b", T0 + 3 * S)
    }
    assert await reader.keys(["sensor.a"], None, T0) == {("sensor.a", T0)}
    assert await reader.keys([]) == set()
    assert await reader.keys(["sensor.none"]) == set()
    assert await reader.entity_ids() == ["sensor.a", "sensor.b"]


async def test_bounds_far_outside_influxdbs_range_are_clamped(store: Store) -> None:
    await store.write([event()])
    assert len(await store.reader.history("sensor.temp", -(2**62), 2**62, 10)) == 1
    assert await store.reader.keys(None, -(2**62), 2**62) == {("sensor.temp", T0)}


HOSTILE = [
    "sensor.x' OR 1=1 --",
    "sensor.x' OR entity_id =~ /.*/ --",
    'sensor."x"',
    "sensor.x\\",
    "sensor.x\\' OR '1'='1",
    "sensor.x\nsensor.y",
    "sensor.x%0A",
    "sensor.x; DROP DATABASE homeiq",
]


async def test_hostile_entity_ids_match_nothing_else(store: Store) -> None:
    await store.write([event("sensor.x"), event("sensor.y", second=1)])
    for hostile in HOSTILE:
        assert await store.reader.history(hostile, None, None, 10) == []
        assert await store.reader.keys([hostile]) == set()
    assert len(await store.reader.keys()) == 2


async def test_hostile_entity_ids_are_stored_and_found_exactly(store: Store) -> None:
    batch = [event(hostile, second=i) for i, hostile in enumerate(HOSTILE)]
    await store.write(batch)
    for record in batch:
        assert await store.reader.history(record.entity_id, None, None, 10) == [record]
    assert await store.reader.keys() == {(r.entity_id, r.time) for r in batch}
    assert set(await store.reader.entity_ids()) == set(HOSTILE)


async def test_a_record_written_in_two_series_reads_once(store: Store) -> None:
    # The entity moved area between a live write and a backfill of the same moment.
    await store.write([event(area_id="kitchen"), event(second=1)])
    await store.write([event(area_id="hall")])
    history = await store.reader.history("sensor.temp", None, None, 10)
    assert [r.time for r in history] == [T0, T0 + S]
    assert await store.reader.keys() == {("sensor.temp", T0), ("sensor.temp", T0 + S)}


async def test_a_retention_policy_is_written_and_read(
    influxdb: InfluxDBServer, influxdb_database: str
) -> None:
    influxdb.query(
        f'CREATE RETENTION POLICY "year" ON "{influxdb_database}" DURATION 0s REPLICATION 1'
    )
    settings = influx_settings(influxdb.url, influxdb_database, influxdb_retention_policy="year")
    sink, reader = InfluxDBSink.from_settings(settings), InfluxDBReader.from_settings(settings)
    try:
        await sink.open()
        await sink.write([event()])
        assert await reader.history("sensor.temp", None, None, 10) == [event()]
        assert (await reader.summary()).total == 1
    finally:
        await sink.close()
        await reader.close()
    assert influxdb.rows(f'SELECT * FROM "{M}"', influxdb_database) == []  # not the default RP
    assert len(influxdb.rows(f'SELECT * FROM "year"."{M}"', influxdb_database)) == 1


async def test_a_missing_database_reads_as_empty(influxdb: InfluxDBServer) -> None:
    reader = InfluxDBReader.from_settings(influx_settings(influxdb.url, "homeiq_never_created"))
    try:
        assert await reader.summary() == StoreSummary()
        assert await reader.history("sensor.temp", None, None, 10) == []
        assert await reader.keys() == set()
        assert await reader.last_event_time() is None
    finally:
        await reader.close()


async def test_an_influxql_error_is_a_clear_exception(store: Store) -> None:
    await store.write([event()])
    with pytest.raises(QueryFailed, match="error parsing query"):
        await store.reader.query("SELEC nothing")
    with pytest.raises(QueryFailed, match="could not run a query"):
        await store.reader.query(f'SELECT MEAN("state") FROM "{M}"')


async def test_an_unreachable_influxdb_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    reader = InfluxDBReader.from_settings(influx_settings(url, "homeiq"))
    try:
        with pytest.raises(SinkUnavailable, match="unreachable"):
            await reader.summary()
    finally:
        await reader.close()


def test_page_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        InfluxDBReader.from_settings(influx_settings("http://127.0.0.1:1", "x"), page_size=0)
