"""``homeiq query`` on each store: the rows of a known entity, "no such entity" with the
closest ids for an unknown one, and "in that range" only for a known entity and a range."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from homeiq.cli import main
from homeiq.model import EventRecord
from homeiq.sinks.influxdb import InfluxDBSink
from homeiq.sinks.sqlite import EVENTS_DB, SQLiteEventStore
from tests.support.influxdb import InfluxDBServer, influx_settings

T0 = 1_714_557_600_000_000  # 2024-05-01T10:00:00Z
RECORDS = [
    EventRecord("sensor.living_room_multisensor_temperature", T0, "21.5"),
    EventRecord("sensor.living_room_multisensor_temperature", T0 + 60_000_000, "21.7"),
    EventRecord("light.hall", T0, "on"),
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("HOMEIQ_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("influxdb", marks=pytest.mark.influxdb)])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    if request.param == "sqlite":
        sqlite = SQLiteEventStore(tmp_path / "data" / EVENTS_DB)
        try:
            sqlite.write(RECORDS)
        finally:
            sqlite.close()
        monkeypatch.setenv("HOMEIQ_DATA_DIR", str(tmp_path / "data"))
        return "sqlite"
    server: InfluxDBServer = request.getfixturevalue("influxdb")
    database: str = request.getfixturevalue("influxdb_database")
    sink = InfluxDBSink.from_settings(influx_settings(server.url, database))

    async def write() -> None:
        await sink.open()
        try:
            await sink.write(RECORDS)
        finally:
            await sink.close()

    asyncio.run(write())
    monkeypatch.setenv("HOMEIQ_STORE", "influxdb")
    monkeypatch.setenv("HOMEIQ_INFLUXDB_URL", server.url)
    monkeypatch.setenv("HOMEIQ_INFLUXDB_DATABASE", database)
    return "influxdb"


def test_query_on_each_store(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "sensor.living_room_multisensor_temperature"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in out[2:]] == ["21.5", "21.7"]

    # The README's old example: a bare object id that is not quite the demo's.
    assert main(["query", "sensor.living_room_temperature"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "homeiq: no such entity: sensor.living_room_temperature;"
        " did you mean sensor.living_room_multisensor_temperature?\n"
    )

    # A quiet range still answers the state at its start (the last change before it)...
    assert main(["query", "light.hall", "--since", "2024-05-02T00:00:00Z"]) == 0
    assert "2024-05-01T10:00:00+00:00  on" in capsys.readouterr().out
    # ...and a range that ends before the first change has nothing.
    assert main(["query", "light.hall", "--until", "2024-05-01T00:00:00Z"]) == 0
    assert capsys.readouterr().out == "no events for light.hall in that range\n"
