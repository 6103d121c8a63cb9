"""The ``backend`` fixture of the contract suites: every event store, one at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from homeiq.sinks.base import EventReader, Sink
from homeiq.sinks.influxdb import InfluxDBReader, InfluxDBSink
from homeiq.sinks.sqlite import AsyncStore, SQLiteEventStore, SQLiteReader, SQLiteSink
from tests.support.influxdb import influx_settings


@dataclass
class Backend:
    name: str
    sink: Sink
    reader: EventReader


@pytest.fixture(
    params=[
        "sqlite",
        "sqlite-process",
        "sqlite-readonly",
        pytest.param("influxdb", marks=pytest.mark.influxdb),
    ]
)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":  # the sink answers its own reads
        sqlite = SQLiteSink(tmp_path, writer="thread")
        await sqlite.open()
        yield Backend(request.param, sqlite, sqlite)
        await sqlite.close()
        return
    if request.param == "sqlite-process":  # as the runtime runs: writer process + reader pool
        sqlite = SQLiteSink(tmp_path, writer="process")
        await sqlite.open()
        pool = SQLiteReader(tmp_path, connections=2)
        yield Backend(request.param, sqlite, pool)
        await pool.close()
        await sqlite.close()
        return
    if request.param == "sqlite-readonly":  # what the CLI reads with, from a second connection
        sqlite = SQLiteSink(tmp_path, writer="thread")
        await sqlite.open()
        reader = AsyncStore(SQLiteEventStore.in_dir(tmp_path, readonly=True))
        yield Backend("sqlite-readonly", sqlite, reader)
        await reader.close()
        await sqlite.close()
        return
    server = request.getfixturevalue("influxdb")
    settings = influx_settings(server.url, request.getfixturevalue("influxdb_database"))
    sink = InfluxDBSink.from_settings(settings)
    reader = InfluxDBReader.from_settings(settings, page_size=5)
    await sink.open()
    yield Backend("influxdb", sink, reader)
    await sink.close()
    await reader.close()
