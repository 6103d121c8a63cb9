"""InfluxDBSink against a real InfluxDB 1.6.7, and the shape of its requests against a tiny
aiohttp server standing in for what 1.6.7 cannot show (the v2 API, 401, 429, 503)."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from pydantic import SecretStr, ValidationError

from homeiq.errors import ConfigError, SinkRejected, SinkUnavailable
from homeiq.model import Source
from homeiq.settings import InfluxDBSettings, Settings, load_settings
from homeiq.sinks.influxdb import InfluxDBReader, InfluxDBSink, LineEncoder
from tests.support.http import loopback_server
from tests.support.influxdb import T0, InfluxDBServer, S, event, influx_settings

real = pytest.mark.influxdb
M = "home_assistant_events"
TOKEN = "tok-3f9a-very-secret"
PASSWORD = "pw-very-secret"


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


# -- against the real InfluxDB ----------------------------------------------------------------


@pytest.fixture
async def sink(influxdb: InfluxDBServer, influxdb_database: str) -> AsyncIterator[InfluxDBSink]:
    opened = InfluxDBSink.from_settings(influx_settings(influxdb.url, influxdb_database))
    await opened.open()
    yield opened
    await opened.close()


@real
async def test_written_points_read_back(
    sink: InfluxDBSink, influxdb: InfluxDBServer, influxdb_database: str
) -> None:
    batch = [
        event(second=0, value=21.5, area_id="kitchen", attributes={"friendly_name": "T"}),
        event(second=1, state=None, source=Source.BACKFILL),
    ]
    assert await sink.write(batch) == 2
    rows = influxdb.rows(f'SELECT * FROM "{M}"', influxdb_database)
    assert [(r["time"], r["state"], r["value"], r["area_id"], r["source"]) for r in rows] == [
        (T0, "21.5", 21.5, "kitchen", 0),
        (T0 + S, None, None, None, 1),
    ]
    assert rows[0]["friendly_name"] == "T"
    reader = InfluxDBReader(sink.config)
    try:
        assert await reader.history("sensor.temp", None, None, 10) == batch
    finally:
        await reader.close()


@real
async def test_writing_again_replaces_the_point(
    sink: InfluxDBSink, influxdb: InfluxDBServer, influxdb_database: str
) -> None:
    batch = [event(second=i, state=str(i)) for i in range(3)]
    assert await sink.write(batch) == 3
    assert await sink.write(batch) == 3  # InfluxDB cannot tell what was new
    rows = influxdb.rows(f'SELECT COUNT("source") FROM "{M}"', influxdb_database)
    assert rows[0]["count"] == 3


@real
async def test_the_database_is_created_when_missing(influxdb: InfluxDBServer) -> None:
    name = "homeiq_test_created_by_the_sink"
    sink = InfluxDBSink.from_settings(influx_settings(influxdb.url, name))
    try:
        await sink.open()
        databases = {row["name"] for row in influxdb.rows("SHOW DATABASES", name)}
        assert name in databases
        # Dropped behind the sink's back: the write's 404 creates it again.
        influxdb.drop_database(name)
        assert await sink.write([event()]) == 1
        assert len(influxdb.rows(f'SELECT * FROM "{M}"', name)) == 1
    finally:
        await sink.close()
        influxdb.drop_database(name)


@real
@pytest.mark.parametrize("compress", [True, False])
async def test_gzip_on_and_off(
    influxdb: InfluxDBServer, influxdb_database: str, compress: bool
) -> None:
    settings = influx_settings(influxdb.url, influxdb_database, influxdb_gzip=compress)
    sink = InfluxDBSink.from_settings(settings)
    await sink.open()
    try:
        await sink.write([event(second=i) for i in range(50)])
    finally:
        await sink.close()
    assert len(influxdb.rows(f'SELECT "source" FROM "{M}"', influxdb_database)) == 50


@real
async def test_a_batch_larger_than_a_request_is_all_stored(
    influxdb: InfluxDBServer, influxdb_database: str
) -> None:
    settings = influx_settings(
        influxdb.url, influxdb_database, influxdb_batch_max_bytes=1024, batch_max_events=7
    )
    sink = InfluxDBSink.from_settings(settings)
    await sink.open()
    try:
        await sink.write([event(f"sensor.s{i % 5}", second=i) for i in range(200)])
    finally:
        await sink.close()
    assert len(influxdb.rows(f'SELECT "source" FROM "{M}"', influxdb_database)) == 200


@real
async def test_a_field_type_conflict_is_rejected_with_influxdbs_message(
    sink: InfluxDBSink, influxdb: InfluxDBServer, influxdb_database: str
) -> None:
    # Someone else made `value` a string in this shard first.
    status, _ = influxdb.write(f'{M},entity_id=sensor.other value="text" {T0}', influxdb_database)
    assert status == 204
    with pytest.raises(SinkRejected, match="field type conflict") as caught:
        await sink.write([event(value=21.5)])
    assert "HTTP 400" in str(caught.value)


@real
@pytest.mark.usefixtures("influxdb")  # skips (or fails under CI) when influxd is missing
async def test_influxdb_down_at_startup_then_up(tmp_path: Path) -> None:
    server = InfluxDBServer(tmp_path / "influx")
    server.start()
    url = server.url
    server.stop()
    sink = InfluxDBSink.from_settings(influx_settings(url, "homeiq"))
    try:
        await sink.open()  # must not raise: HomeIQ starts and spools
        with pytest.raises(SinkUnavailable, match="unreachable"):
            await sink.write([event()])
        server.start()  # same port, same data
        assert await sink.write([event()]) == 1  # creates the database first
        assert len(server.rows(f'SELECT * FROM "{M}"', "homeiq")) == 1
    finally:
        await sink.close()
        server.close()


@real
@pytest.mark.usefixtures("influxdb")
async def test_an_outage_mid_stream_is_unavailable_and_loses_nothing(tmp_path: Path) -> None:
    with InfluxDBServer(tmp_path / "influx") as server:
        sink = InfluxDBSink.from_settings(influx_settings(server.url, "homeiq"))
        await sink.open()
        try:
            await sink.write([event(second=0)])
            server.kill()
            with pytest.raises(SinkUnavailable):
                await sink.write([event(second=1)])
            server.start()
            await sink.write([event(second=1)])
        finally:
            await sink.close()
        assert [r["time"] for r in server.rows(f'SELECT * FROM "{M}"', "homeiq")] == [T0, T0 + S]


async def test_open_never_raises_when_nothing_listens(caplog: pytest.LogCaptureFixture) -> None:
    sink = InfluxDBSink.from_settings(influx_settings(closed_port_url(), "homeiq"))
    with caplog.at_level(logging.WARNING):
        await sink.open()
    try:
        assert "spooled until it answers" in caplog.text
        with pytest.raises(SinkUnavailable, match="is unreachable"):
            await sink.write([event()])
    finally:
        await sink.close()


# -- credentials, against a real InfluxDB with auth enabled -----------------------------------


@pytest.fixture(scope="module")
def secured(influxdb: InfluxDBServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An auth-enabled InfluxDB with admin `root`, and `writer` allowed on database `data`.

    Its own server (the session's has auth off); `influxdb` only for its skip-if-missing.
    """
    server = InfluxDBServer(tmp_path_factory.mktemp("influx-auth"), auth=True)
    server.start()
    try:
        server.query(f"CREATE USER root WITH PASSWORD '{PASSWORD}' WITH ALL PRIVILEGES")
        server.credentials = ("root", PASSWORD)
        server.create_database("data")
        server.query(f"CREATE USER writer WITH PASSWORD '{PASSWORD}'")
        server.query('GRANT ALL ON "data" TO writer')
        yield server.url
    finally:
        server.close()


@real
async def test_wrong_password_is_unavailable_and_says_so_without_the_secret(secured: str) -> None:
    wrong = "not-" + PASSWORD
    settings = influx_settings(secured, "data", influxdb_username="writer", influxdb_password=wrong)
    sink = InfluxDBSink.from_settings(settings)
    await sink.open()
    try:
        with pytest.raises(SinkUnavailable, match="refused the credentials") as caught:
            await sink.write([event()])
        assert wrong not in str(caught.value)
    finally:
        await sink.close()


@real
async def test_a_user_who_cannot_create_databases_still_writes(
    secured: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = influx_settings(
        secured, "data", influxdb_username="writer", influxdb_password=PASSWORD
    )
    sink = InfluxDBSink.from_settings(settings)
    reader = InfluxDBReader.from_settings(settings)
    with caplog.at_level(logging.WARNING):
        await sink.open()
    try:
        assert await sink.write([event()]) == 1
        assert await sink.write([event(second=1)]) == 1
        assert len(await reader.history("sensor.temp", None, None, 10)) == 2
    finally:
        await sink.close()
        await reader.close()
    warnings = [r for r in caplog.records if "could not create" in r.getMessage()]
    assert len(warnings) == 1
    assert PASSWORD not in caplog.text


# -- request shapes, against a tiny stand-in server -------------------------------------------


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class StandIn:
    """Records every request; answers with the next of ``answers`` (then 204)."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    answers: list[tuple[int, bytes]] = field(default_factory=list)
    hold: asyncio.Event | None = None  # when set, requests wait for it before answering

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.hold is not None:
            await self.hold.wait()
        self.seen.append(Seen(request.path, dict(request.query), dict(request.headers), body))
        if self.answers:
            status, text = self.answers.pop(0)
            return web.Response(status=status, body=text, content_type="application/json")
        if request.path == "/query":
            return web.json_response({"results": [{"statement_id": 0}]})
        return web.Response(status=204)

    def lines(self, seen: Seen) -> bytes:
        if seen.headers.get("Content-Encoding") == "gzip":
            return gzip.decompress(seen.body)
        return seen.body


@pytest.fixture
async def standin() -> AsyncIterator[StandIn]:
    server = StandIn()
    # auto_decompress off: the test looks at the body as it travelled.
    async with loopback_server(server.handle, auto_decompress=False) as url:
        server.url = url
        yield server


def v2(url: str, **kw: Any) -> InfluxDBSink:
    settings = influx_settings(
        url,
        "unused",
        influxdb_api="v2",
        influxdb_org="home org",
        influxdb_bucket="ha/events",
        influxdb_token=TOKEN,
        **kw,
    )
    return InfluxDBSink.from_settings(settings)


async def test_v2_request_shape(standin: StandIn) -> None:
    sink = v2(standin.url)
    batch = [event(second=i, value=float(i)) for i in range(3)]
    await sink.open()
    try:
        assert await sink.write(batch) == 3
    finally:
        await sink.close()
    [seen] = standin.seen  # no database creation with v2
    assert seen.path == "/api/v2/write"
    assert seen.query == {"org": "home org", "bucket": "ha/events", "precision": "us"}
    assert seen.headers["Authorization"] == f"Token {TOKEN}"
    assert seen.headers["Content-Encoding"] == "gzip"
    assert standin.lines(seen) == b"".join(LineEncoder(M).encode_many(batch))


async def test_v1_request_shape_with_basic_auth_and_retention_policy(standin: StandIn) -> None:
    settings = influx_settings(
        standin.url,
        "home",
        influxdb_retention_policy="year",
        influxdb_username="me",
        influxdb_password=PASSWORD,
        influxdb_gzip=False,
    )
    sink = InfluxDBSink.from_settings(settings)
    await sink.open()
    try:
        await sink.write([event()])
    finally:
        await sink.close()
    create, write = standin.seen
    assert create.path == "/query"
    assert create.body == b"q=CREATE+DATABASE+%22home%22"
    assert write.path == "/write"
    assert write.query == {"db": "home", "rp": "year", "precision": "u"}
    assert write.headers["Authorization"].startswith("Basic ")
    assert "Content-Encoding" not in write.headers
    assert write.body == LineEncoder(M).encode(event())
    for seen in standin.seen:
        assert PASSWORD not in str(seen.query)


async def test_a_refused_create_database_is_logged_once_and_writes_go_on(
    standin: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    standin.answers.append((400, b'{"error":"CREATE DATABASE is not allowed here"}'))
    sink = InfluxDBSink.from_settings(influx_settings(standin.url, "home", influxdb_gzip=False))
    with caplog.at_level(logging.WARNING):
        await sink.open()
        try:
            assert await sink.write([event()]) == 1
        finally:
            await sink.close()
    assert [s.path for s in standin.seen] == ["/query", "/write"]
    assert "not allowed here" in caplog.text


async def test_a_v1_token_is_sent_as_a_token(standin: StandIn) -> None:
    sink = InfluxDBSink.from_settings(
        influx_settings(standin.url, "home", influxdb_token=TOKEN, influxdb_username="me")
    )
    await sink.open()
    try:
        await sink.write([event()])
    finally:
        await sink.close()
    assert {s.headers["Authorization"] for s in standin.seen} == {f"Token {TOKEN}"}


async def test_batches_are_split_into_bounded_requests(standin: StandIn) -> None:
    sink = v2(standin.url, influxdb_batch_max_bytes=2048, batch_max_events=1000)
    batch = [event(f"sensor.s{i}", second=i) for i in range(100)]
    lines = LineEncoder(M).encode_many(batch)
    await sink.open()
    try:
        await sink.write(batch)
    finally:
        await sink.close()
    bodies = [standin.lines(s) for s in standin.seen]
    assert len(bodies) > 1
    assert all(len(body) <= 2048 for body in bodies)
    for body, after in itertools.pairwise(bodies):  # each as full as it could be
        assert len(body) + after.index(b"\n") + 1 > 2048
    assert b"".join(bodies) == b"".join(lines)
    by_events = v2(standin.url, batch_max_events=30)
    standin.seen.clear()
    try:
        await by_events.write(batch)
    finally:
        await by_events.close()
    assert [standin.lines(s).count(b"\n") for s in standin.seen] == [30, 30, 30, 10]


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (401, SinkUnavailable, "InfluxDB refused the credentials (HTTP 401)"),
        (403, SinkUnavailable, "InfluxDB refused the credentials (HTTP 403)"),
        (429, SinkUnavailable, "HTTP 429"),
        (503, SinkUnavailable, "HTTP 503"),
        (500, SinkUnavailable, "HTTP 500"),
        (404, SinkUnavailable, "HTTP 404"),
        (400, SinkRejected, "rejected the data (HTTP 400)"),
        (413, SinkRejected, "rejected the data (HTTP 413)"),
    ],
)
async def test_error_mapping(
    standin: StandIn, status: int, error: type[Exception], message: str
) -> None:
    standin.answers.append((status, orjson.dumps({"error": f"says {status} for {TOKEN}"})))
    sink = v2(standin.url)
    try:
        with pytest.raises(error) as caught:
            await sink.write([event()])
    finally:
        await sink.close()
    text = str(caught.value)
    assert message in text
    assert f"says {status}" in text  # InfluxDB's own words
    assert TOKEN not in text  # even when InfluxDB echoes it


async def test_no_answer_in_time_is_unavailable(standin: StandIn) -> None:
    standin.hold = asyncio.Event()
    sink = v2(standin.url, influxdb_timeout_s=0.2)
    try:
        with pytest.raises(SinkUnavailable, match=r"no answer within 0.2 s"):
            await sink.write([event()])
    finally:
        standin.hold.set()
        await sink.close()


async def test_a_v2_error_message_is_read_from_its_json(standin: StandIn) -> None:
    standin.answers.append((400, b'{"code":"invalid","message":"unable to parse line 1"}'))
    sink = v2(standin.url)
    try:
        with pytest.raises(SinkRejected, match="unable to parse line 1"):
            await sink.write([event()])
    finally:
        await sink.close()


async def test_a_record_that_cannot_be_encoded_is_rejected(standin: StandIn) -> None:
    sink = v2(standin.url)
    try:
        with pytest.raises(SinkRejected, match="cannot encode"):
            await sink.write([event(state="\ud800")])
    finally:
        await sink.close()
    assert standin.seen == []


async def test_an_empty_batch_sends_nothing(standin: StandIn) -> None:
    sink = v2(standin.url)
    assert await sink.write([]) == 0
    await sink.close()
    assert standin.seen == []


# -- configuration ----------------------------------------------------------------------------


def test_the_sink_takes_the_settings_group_as_it_is() -> None:
    settings = influx_settings("http://127.0.0.1:8086/", "home", influxdb_password=PASSWORD)
    sink = InfluxDBSink.from_settings(settings)
    assert sink.config is settings.influxdb  # no second view of the settings
    assert sink.config.url == "http://127.0.0.1:8086"
    assert sink.config.database == "home" and sink.config.measurement == M
    assert sink.batch_max_events == settings.batch_max_events
    assert PASSWORD not in repr(sink.config)


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"influxdb_url": "http://user:pw@127.0.0.1:8086"}, "HOMEIQ_INFLUXDB_URL"),
        ({"influxdb_url": "ftp://127.0.0.1"}, "HOMEIQ_INFLUXDB_URL"),
        ({"influxdb_url": "http://"}, "HOMEIQ_INFLUXDB_URL"),
        ({"influxdb_measurement": "#events"}, "HOMEIQ_INFLUXDB_MEASUREMENT"),
        ({"influxdb_measurement": "ends\\"}, "HOMEIQ_INFLUXDB_MEASUREMENT"),
        (
            {"influxdb_api": "v2", "influxdb_org": "o", "influxdb_token": "t"},
            "HOMEIQ_INFLUXDB_BUCKET",
        ),
        ({"influxdb_username": "a:b"}, "HOMEIQ_INFLUXDB_USERNAME"),
    ],
)
@pytest.mark.parametrize("store", ["influxdb", "sqlite"])
def test_settings_that_cannot_work_are_refused_when_read(
    overrides: dict[str, Any], setting: str, store: str
) -> None:
    # Checked once, by the settings' InfluxDB group, whichever store is chosen: the
    # store's backend never checks again.
    values = {"store": store, "influxdb_url": "http://127.0.0.1:8086", **overrides}
    with pytest.raises(ConfigError) as caught:
        load_settings(**values)
    assert caught.value.setting == setting
    assert ":pw@" not in str(caught.value)  # a password in the URL is never shown


def test_a_group_built_by_hand_is_checked_too() -> None:
    with pytest.raises(ValidationError, match="comment line"):
        InfluxDBSettings(url="http://127.0.0.1:8086", measurement="#x")
    with pytest.raises(ConfigError) as caught:
        InfluxDBSettings(url="http://127.0.0.1:8086", api="v2", org="o", token=SecretStr("t"))
    assert caught.value.setting == "HOMEIQ_INFLUXDB_BUCKET"
    v2 = InfluxDBSettings(url="http://h:1", api="v2", bucket="b", org="o", token=SecretStr("t"))
    assert v2.query_database == "b"


def test_a_missing_url_names_the_setting() -> None:
    with pytest.raises(ConfigError) as caught:
        InfluxDBSink.from_settings(Settings())
    assert caught.value.setting == "HOMEIQ_INFLUXDB_URL"
