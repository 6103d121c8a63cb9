"""The one InfluxDB client: queries, database admin and write targets against a real
InfluxDB 1.6.7, and its one mapping of failures to HomeIQ's errors."""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from homeiq.errors import QueryFailed, SinkRejected, SinkUnavailable
from homeiq.settings import InfluxDBSettings
from homeiq.sinks.influxdb import InfluxDBClient
from tests.support.influxdb import InfluxDBServer

real = pytest.mark.influxdb


@pytest.fixture
async def client(influxdb: InfluxDBServer) -> AsyncIterator[InfluxDBClient]:
    client = InfluxDBClient(InfluxDBSettings(url=influxdb.url))
    yield client
    await client.close()


@real
async def test_database_admin(client: InfluxDBClient) -> None:
    name = f"homeiq_client_{uuid.uuid4().hex[:12]}"
    try:
        assert not await client.database_exists(name)
        await client.create_database(name)
        await client.create_database(name)  # a no-op when it exists
        assert await client.database_exists(name)
        assert await client.retention_policies(name) == ["autogen"]
        target = client.write_target(name, precision="ns")
        status, _ = await client.write(target, b"m,t=a v=1i 5\n", gzipped=False)
        assert status == 204
        series = await client.series("SELECT * FROM m", name)
        assert series[0]["values"] == [[5, "a", 1]]
    finally:
        await client.drop_database(name)
    assert not await client.database_exists(name)
    await client.drop_database(name)  # nothing happens when it is gone


@real
async def test_queries_influxdb_cannot_run_are_query_failed(client: InfluxDBClient) -> None:
    with pytest.raises(QueryFailed, match="has no database 'homeiq_never_made'"):
        await client.series("SELECT * FROM m", "homeiq_never_made")
    with pytest.raises(QueryFailed, match="error parsing query"):
        await client.series("SELEC nothing")


@real
async def test_streamed_answers_come_in_pieces(
    client: InfluxDBClient, influxdb: InfluxDBServer, influxdb_database: str
) -> None:
    influxdb.write("\n".join(f"m v={i}i {i}" for i in range(1, 8)), influxdb_database)
    stream = client.stream("SELECT v FROM m", influxdb_database, chunk_size=3)
    async with contextlib.aclosing(stream) as pieces:
        sizes = [piece.count(b"],[") + 1 async for piece in pieces]
    assert sizes == [3, 3, 1]


def test_write_targets_of_both_apis() -> None:
    v1 = InfluxDBClient(InfluxDBSettings(url="http://h:1", database="d", retention_policy="r"))
    target = v1.write_target()
    assert (target.path, target.params) == ("/write", {"db": "d", "precision": "u", "rp": "r"})
    assert v1.write_target("other", precision="ns").params["db"] == "other"
    v2 = InfluxDBClient(
        InfluxDBSettings(url="http://h:1", api="v2", bucket="b", org="o", token=SecretStr("t"))
    )
    target = v2.write_target()
    assert (target.path, target.params) == (
        "/api/v2/write",
        {"org": "o", "bucket": "b", "precision": "us"},
    )
    assert v2.write_target("b2").where == "bucket 'b2'"


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, SinkRejected), (413, SinkRejected), (401, SinkUnavailable), (403, SinkUnavailable),
     (404, SinkUnavailable), (429, SinkUnavailable), (500, SinkUnavailable),
     (503, SinkUnavailable)],
)  # fmt: skip
def test_one_mapping_of_refusals(status: int, error: type[Exception]) -> None:
    password = "pw-very-secret"
    config = InfluxDBSettings(url="http://h:1", username="u", password=SecretStr(password))
    failure = InfluxDBClient(config).failure(
        status, f'{{"error":"nope {password}"}}'.encode(), "to a write"
    )
    assert type(failure) is error
    assert f"HTTP {status}" in str(failure) and "nope" in str(failure)
    assert password not in str(failure)


async def test_an_unreachable_server_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    client = InfluxDBClient(InfluxDBSettings(url=url))
    try:
        with pytest.raises(SinkUnavailable, match="is unreachable"):
            await client.database_exists("x")
    finally:
        await client.close()
