"""InfluxDB in backups: the portable export and import against a real InfluxDB 1.6.7, the
line protocol they write as properties, the v2 request shapes against a stand-in server,
and ``influxd backup``/``restore`` against the test server's RPC port."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import re
import socket
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from homeiq.errors import ConfigError, InfluxBackupError, SinkRejected, SinkUnavailable
from homeiq.maintenance.backup.influx import InfluxExport, export_database
from homeiq.maintenance.backup.influx_import import import_lineprotocol
from homeiq.maintenance.backup.influx_lineprotocol import (
    LinePoint,
    format_line,
    format_value,
    parse_line,
    read_export,
)
from homeiq.maintenance.backup.influx_native import (
    native_available,
    native_backup,
    native_restore,
)
from homeiq.model import EventRecord, Source
from homeiq.settings import InfluxDBSettings
from homeiq.sinks.influxdb import InfluxDBClient, InfluxDBSink
from tests.support.http import loopback_server
from tests.support.influxdb import T0, InfluxDBServer, event, influx_settings

real = pytest.mark.influxdb
CHUNK_NS = 10 * 10**9
# The first chunk boundary after T0, and the same instant in microseconds (for records).
B = (T0 * 1000 // CHUNK_NS + 1) * CHUNK_NS
B_US = B // 1000
MIN_NS, MAX_NS = -(2**63) + 2, 2**63 - 2


# -- helpers ----------------------------------------------------------------------------------


def query(server: InfluxDBServer, q: str, db: str) -> list[dict[str, Any]]:
    """The series of one statement, times in nanoseconds (the harness reads microseconds)."""
    url = f"{server.url}/query?{urllib.parse.urlencode({'db': db, 'epoch': 'ns'})}"
    data = urllib.parse.urlencode({"q": q}).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as r:
        result = json.loads(r.read())["results"][0]
    assert "error" not in result, result
    return list(result.get("series", []))


def dump(server: InfluxDBServer, db: str) -> list[tuple[Any, ...]]:
    """Every point of the default retention policy as (measurement, tags, time, fields)."""
    points = []
    for series in query(server, "SELECT * FROM /.*/ GROUP BY *", db):
        tags = tuple(sorted((k, v) for k, v in series.get("tags", {}).items() if v))
        for row in series["values"]:
            fields = tuple(
                sorted(
                    (c, v)
                    for c, v in zip(series["columns"][1:], row[1:], strict=True)
                    if v is not None
                )
            )
            points.append((series["name"], tags, row[0], fields))
    return sorted(points, key=repr)


def write(server: InfluxDBServer, lines: str, db: str, rp: str | None = None) -> None:
    """A raw write with nanosecond times (and a retention policy, which the harness lacks)."""
    params = {"db": db, "precision": "ns"} | ({"rp": rp} if rp else {})
    url = f"{server.url}/write?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(urllib.request.Request(url, data=lines.encode()), timeout=10) as r:
        assert r.status == 204


def field_keys(server: InfluxDBServer, db: str) -> dict[str, list[list[str]]]:
    return {s["name"]: s["values"] for s in query(server, "SHOW FIELD KEYS", db)}


def files(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def lines_of(path: Path) -> list[bytes]:
    return gzip.decompress(path.read_bytes()).splitlines(keepends=True)


def at(record: EventRecord, us: int) -> EventRecord:
    return replace(record, time=us, last_changed=us)


@pytest.fixture
def config(influxdb: InfluxDBServer, influxdb_database: str) -> InfluxDBSettings:
    return influx_settings(influxdb.url, influxdb_database).influxdb


@pytest.fixture
def new_database(influxdb: InfluxDBServer) -> Iterator[Callable[[], str]]:
    """Names for databases a test restores into; each dropped after the test."""
    names: list[str] = []

    def make() -> str:
        names.append(f"homeiq_restore_{uuid.uuid4().hex[:12]}")
        return names[-1]

    yield make
    for name in names:
        with contextlib.suppress(RuntimeError, OSError):
            influxdb.drop_database(name)


TRICKY = 'say "hi", a=b c\\d \\\\ e\nsecond line\r\\'
RAW_LINES = (
    # A measurement and tag keys and values with every delimiter; unicode; every type;
    # whole-number and extreme floats; a string with newlines, quotes and backslashes.
    f'raw\\ m\\,2=x,k\\ ey=va\\ l\\,ue\\=1,ort=Zürich\\ 😀,quote=a"b'
    " b=true,b2=false,i=-9223372036854775808i,imax=9223372036854775807i,whole=21.0,"
    'big=1e20,tiny=5e-324,max=1.7976931348623157e+308,neg=-3.25,q"k=1i,'
    f's="multi\nline \\"q\\" \\\\ end ü" {B + 7}\n'
    f"raw\\ m\\,2=x,ort=Zürich\\ 😀 whole=-0.5,i=0i {B + CHUNK_NS - 1}\n"
    f'raw\\ m\\,2=x b=false,s="" {B + 2 * CHUNK_NS}\n'
)


async def write_tricky(influxdb: InfluxDBServer, config: InfluxDBSettings) -> None:
    """Nine points with awkward values, some on chunk boundaries, one an hour later."""
    attributes = {
        "friendly_name": "Température ü 😀",
        "unit_of_measurement": "°C",
        "note": 'a,b c=d\\e"f\ng',
    }
    records = [
        at(event(state=TRICKY, value=21.0, area_id="living room, east=1"), B_US - 1),
        at(event(value=21.5, previous_state="x", duration_in_state_s=3.0), B_US),
        at(event(value=1e20, attributes=attributes, context_id="c,1 =x"), B_US + CHUNK_NS // 1000),
        at(event("binary_sensor.door", state="on", device_id="dev=1 2,3"), B_US + 5_000_000),
        at(event("sensor.odd", area_id="a\\b%c\nd", source=Source.BACKFILL), B_US + 7_000_000),
        at(event(value=-0.25), B_US + 3_600_000_000),  # an hour of empty chunks before it
    ]
    sink = InfluxDBSink(config, batch_max_events=5000)
    await sink.open()
    try:
        await sink.write(records)
    finally:
        await sink.close()
    write(influxdb, RAW_LINES, config.database)


# -- the portable export against the real InfluxDB ------------------------------------------


@real
async def test_export_import_round_trip(
    influxdb: InfluxDBServer,
    config: InfluxDBSettings,
    new_database: Callable[[], str],
    tmp_path: Path,
) -> None:
    await write_tricky(influxdb, config)
    original = dump(influxdb, config.database)
    assert len(original) == 9
    first = tmp_path / "first.lp.gz"
    exported = await export_database(config, first, chunk_ns=CHUNK_NS)

    assert exported.database == config.database
    assert exported.measurements == {"home_assistant_events": 6, "raw m,2=x": 3}
    assert exported.points == 9
    assert exported.first_time_ns == (B_US - 1) * 1000
    assert exported.last_time_ns == (B_US + 3_600_000_000) * 1000
    assert exported.field_types["raw m,2=x"]["whole"] == "float"
    assert exported.field_types["home_assistant_events"]["source"] == "integer"
    assert InfluxExport.from_json(json.loads(json.dumps(exported.to_json()))) == exported
    assert read_export(first) == exported.measurements
    text = b"".join(lines_of(first))
    assert b",whole=21.0 " in text  # JSON said 21; the type says float
    assert b",imax=9223372036854775807i," in text
    assert b"value=1e+20 " in text
    assert files(tmp_path) == ["first.lp.gz"]  # no partial file left

    target = new_database()
    progress: list[int] = []
    # Small batches: many requests, and lines longer than a batch go alone.
    counts = await import_lineprotocol(
        config, first, database=target, batch_bytes=200, progress=progress.append
    )
    assert counts == exported.measurements
    assert progress == sorted(progress) and progress[-1] == 9 and len(progress) > 3
    assert dump(influxdb, target) == original
    assert field_keys(influxdb, target) == field_keys(influxdb, config.database)

    second = tmp_path / "second.lp.gz"
    again = await export_database(
        config.model_copy(update={"database": target}), second, chunk_ns=CHUNK_NS
    )
    assert second.read_bytes() == first.read_bytes()
    assert replace(again, database=config.database) == exported

    # Importing again only rewrites the same points.
    assert await import_lineprotocol(config, first, database=target) == counts
    assert dump(influxdb, target) == original


@real
async def test_chunks_gaps_and_pages(
    influxdb: InfluxDBServer,
    config: InfluxDBSettings,
    new_database: Callable[[], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    streamed: list[str] = []
    stream = InfluxDBClient.stream

    def counted(self: InfluxDBClient, q: str, db: str, **kw: Any) -> AsyncIterator[bytes]:
        streamed.append(q)
        return stream(self, q, db, **kw)

    monkeypatch.setattr(InfluxDBClient, "stream", counted)
    chunk = 10**9
    lines = [f"m,s=s{i % 3} v={i}i,f={i / 4} {B + i * chunk // 4}" for i in range(240)]
    lines += [f"m,s=s{i % 3} v={i}i,f=1 {B + 1000 * chunk + i}" for i in range(20)]  # a gap
    lines += [f"m,s=s0 v=-1i,f=0.5 {B + 2000 * chunk - 1}", f"m,s=s0 v=-2i {B + 2000 * chunk}"]
    write(influxdb, "\n".join(lines), config.database)
    progress: list[int] = []
    small = tmp_path / "small.lp.gz"
    exported = await export_database(
        config, small, chunk_ns=chunk, page_points=7, progress=progress.append
    )
    assert exported.measurements == {"m": 262}
    assert progress == sorted(progress) and progress[-1] == 262
    assert len(progress) >= 262 // 7  # every piece of every chunk was streamed
    # 60 chunks of 4 points; then each empty chunk jumps to the next point: the chunk
    # after the gap, an empty one, then the two chunks around the last boundary.
    assert len(streamed) == 60 + 1 + 1 + 1 + 2
    assert f"time >= {B} AND time < {B + chunk} GROUP BY *" in streamed[0]
    whole = tmp_path / "whole.lp.gz"
    assert (await export_database(config, whole)).measurements == {"m": 262}
    assert sorted(lines_of(small)) == sorted(lines_of(whole))
    assert len(set(lines_of(small))) == 262

    target = new_database()
    assert await import_lineprotocol(config, small, database=target) == {"m": 262}
    assert dump(influxdb, target) == dump(influxdb, config.database)


@real
async def test_an_empty_database(
    influxdb: InfluxDBServer,
    config: InfluxDBSettings,
    new_database: Callable[[], str],
    tmp_path: Path,
) -> None:
    dest = tmp_path / "empty.lp.gz"
    exported = await export_database(config, dest)
    assert exported == InfluxExport(config.database, {}, {}, None, None)
    assert gzip.decompress(dest.read_bytes()) == b""
    assert read_export(dest) == {}
    target = new_database()
    assert await import_lineprotocol(config, dest, database=target) == {}
    assert [target] in query(influxdb, "SHOW DATABASES", target)[0]["values"]


@real
async def test_a_missing_database_is_a_clear_error(
    influxdb: InfluxDBServer, tmp_path: Path
) -> None:
    config = InfluxDBSettings(url=influxdb.url, database="homeiq_no_such_database")
    with pytest.raises(InfluxBackupError, match="has no database 'homeiq_no_such_database'"):
        await export_database(config, tmp_path / "x.lp.gz")
    assert files(tmp_path) == []


@real
async def test_retention_policy(
    influxdb: InfluxDBServer,
    config: InfluxDBSettings,
    new_database: Callable[[], str],
    tmp_path: Path,
) -> None:
    db = config.database
    influxdb.query(f'CREATE RETENTION POLICY "two" ON "{db}" DURATION 0s REPLICATION 1')
    write(influxdb, "m v=1i 1\nm v=2i 2", db)  # the default policy
    write(influxdb, "m v=3i 3", db, rp="two")
    two = config.model_copy(update={"retention_policy": "two"})
    dest = tmp_path / "two.lp.gz"
    assert (await export_database(two, dest)).measurements == {"m": 1}
    assert lines_of(dest) == [b"m v=3i 3\n"]

    target = new_database()
    with pytest.raises(InfluxBackupError, match="has no retention policy 'two'"):
        await import_lineprotocol(two, dest, database=target)
    influxdb.query(f'CREATE RETENTION POLICY "two" ON "{target}" DURATION 0s REPLICATION 1')
    assert await import_lineprotocol(two, dest, database=target) == {"m": 1}
    assert query(influxdb, 'SELECT * FROM "two"."m"', target)[0]["values"] == [[3, 3]]
    assert query(influxdb, 'SELECT * FROM "m"', target) == []


@real
async def test_what_cannot_be_exported_is_refused(
    influxdb: InfluxDBServer,
    config: InfluxDBSettings,
    new_database: Callable[[], str],
    tmp_path: Path,
) -> None:
    week = 7 * 86_400 * 10**9
    # One field, two types in two shards: a query returns only one of them.
    write(influxdb, f"c v=1i 1\nc v=1.5 {2 * week}", config.database)
    dest = tmp_path / "x.lp.gz"
    with pytest.raises(InfluxBackupError, match=r"different types .*: c\.v; use the native"):
        await export_database(config, dest)

    # 1.x takes a backslash before a newline in a tag; no other parser reads it back.
    other = new_database()
    influxdb.create_database(other)
    write(influxdb, "n,t=a\\\nb f=1 1", other)
    with pytest.raises(InfluxBackupError, match=r"measurement 'n'.*has a newline"):
        await export_database(config.model_copy(update={"database": other}), dest)
    assert files(tmp_path) == []


@real
async def test_import_errors_name_the_lines(
    influxdb: InfluxDBServer,
    config: InfluxDBSettings,
    new_database: Callable[[], str],
    tmp_path: Path,
) -> None:
    source = tmp_path / "in.lp.gz"
    source.write_bytes(gzip.compress(b"m v=1.0 1\nm v=2.0 2\n"))
    target = new_database()
    influxdb.create_database(target)
    write(influxdb, "m v=1i 5", target)
    with pytest.raises(SinkRejected, match=r"lines 1-2 of in.lp.gz .*field type conflict"):
        await import_lineprotocol(config, source, database=target)

    bad = tmp_path / "bad.lp.gz"
    bad.write_bytes(gzip.compress(b"m v=1.0 1\nm v=1.0\n"))
    with pytest.raises(ValueError, match="line 2: column 8: expected a space and the time"):
        await import_lineprotocol(config, bad, database=new_database())


PASSWORD = "pw-very-secret"


@pytest.fixture(scope="module")
def secured(influxdb: InfluxDBServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An InfluxDB with auth on: admin `root`, and `writer` allowed on database `data` only."""
    server = InfluxDBServer(tmp_path_factory.mktemp("influx-auth"), auth=True)
    server.start()
    try:
        server.query(f"CREATE USER root WITH PASSWORD '{PASSWORD}' WITH ALL PRIVILEGES")
        server.credentials = ("root", PASSWORD)
        server.create_database("data")
        server.query(f"CREATE USER writer WITH PASSWORD '{PASSWORD}'")
        server.query('GRANT ALL ON "data" TO writer')
        assert server.write("m v=1i 1\nm v=2i 2", "data", precision="ns")[0] == 204
        yield server.url
    finally:
        server.close()


@real
async def test_credentials(secured: str, tmp_path: Path) -> None:
    writer = InfluxDBSettings(
        url=secured, database="data", username="writer", password=SecretStr(PASSWORD)
    )
    dest = tmp_path / "data.lp.gz"
    assert (await export_database(writer, dest)).measurements == {"m": 2}
    assert await import_lineprotocol(writer, dest) == {"m": 2}  # exists: nothing to create
    with pytest.raises(
        InfluxBackupError, match=r"did not create the database .elsewhere.*admin privilege"
    ):
        await import_lineprotocol(writer, dest, database="elsewhere")
    wrong = writer.model_copy(update={"password": SecretStr("not-" + PASSWORD)})
    with pytest.raises(SinkUnavailable, match="refused the credentials") as caught:
        await export_database(wrong, dest)
    assert "not-" + PASSWORD not in str(caught.value)


# -- the line protocol of an export ----------------------------------------------------------


def test_values_are_written_by_their_stored_type() -> None:
    assert format_value("float", 21) == "21.0"  # how InfluxDB's JSON renders 21.0
    assert format_value("float", 100000000000000000000) == "1e+20"
    assert format_value("integer", 21) == "21i"
    assert format_value("unsigned", 2**64 - 1) == "18446744073709551615u"
    assert format_value("boolean", False) == "false"
    assert format_value("string", 'a"b\\c\nd') == '"a\\"b\\\\c\nd"'
    for field_type, value in [
        ("integer", True),
        ("integer", 1.5),
        ("integer", 2**63),
        ("unsigned", -1),
        ("float", "1"),
        ("float", True),
        ("boolean", 1),
        ("string", 1),
        ("duration", 1),
    ]:
        with pytest.raises(ValueError):
            format_value(field_type, value)


def test_the_manifest_entry_is_checked() -> None:
    entry = InfluxExport("db", {"m": 2}, {"m": {"v": "float"}}, 1, 2)
    assert entry.points == 2
    assert InfluxExport.from_json(entry.to_json()) == entry
    for broken, problem in [
        ({"database": "db"}, "lacks 'measurements'"),
        ({**entry.to_json(), "measurements": {"m": "2"}}, "measurements"),
        ({**entry.to_json(), "field_types": {"m": {"v": "decimal"}}}, "field_types"),
        ({**entry.to_json(), "last_time_ns": 2.5}, "times"),
    ]:
        with pytest.raises(ValueError, match=problem):
            InfluxExport.from_json(broken)


def test_a_multi_line_string_is_one_point() -> None:
    point = LinePoint("m", {"t": "x"}, {"s": ("string", "a\nb\n\nc\\")}, 5)
    line = format_line(point)
    assert line == 'm,t=x s="a\nb\n\nc\\\\" 5\n'
    assert parse_line(line[:-1]) == point


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("", "no measurement"),
        ("#m f=1.0 1", "no measurement"),
        ("m f=1.0", "column 8: expected a space and the time"),
        ("m f=1 1", "column 3: expected a field"),  # a float is written 1.0
        ("m f=1.0,f=2.0 1", "the field 'f' appears twice"),
        ("m,t=1,t=2 f=1.0 1", "the tag 't' appears twice"),
        ("m f=9223372036854775808i 1", "out of range"),
        ("m f=1e+999 1", "out of range"),
        ("m f=1.0 9223372036854775807", "outside InfluxDB's range"),
        ('m f="a"b" 1', "column 3: expected a field"),
    ],
)
def test_parse_line_says_what_is_wrong(line: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        parse_line(line)


def _unwritable(text: str) -> bool:
    """The rule the export follows: line protocol parsers disagree on these."""
    return not text or bool(re.search(r'[\n\r]|\\(?=[,= "]|$)', text))


special = st.sampled_from(list(' ,="\\\n\r#%ü😀\tx'))
names = st.text(special | st.characters(exclude_categories=["Cs"]), max_size=8)
values_v1 = st.one_of(
    st.tuples(st.just("float"), st.floats(allow_nan=False, allow_infinity=False)),
    st.tuples(st.just("integer"), st.integers(-(2**63), 2**63 - 1)),
    st.tuples(st.just("string"), st.text(special | st.characters(exclude_categories=["Cs"]))),
    st.tuples(st.just("boolean"), st.booleans()),
)
# InfluxDB 1.6 has no unsigned fields; 2.x and 3.x have.
values = values_v1 | st.tuples(st.just("unsigned"), st.integers(0, 2**64 - 1))


def points_of(field_values: st.SearchStrategy[tuple[str, Any]]) -> st.SearchStrategy[LinePoint]:
    return st.builds(
        LinePoint,
        measurement=names,
        tags=st.dictionaries(names, names, max_size=3),
        fields=st.dictionaries(names, field_values, min_size=1, max_size=4),
        time_ns=st.integers(MIN_NS, MAX_NS),
    )


points = points_of(values)


@given(point=points)
@settings(max_examples=400)
def test_line_round_trip(point: LinePoint) -> None:
    queried = [point.measurement, *point.fields]
    unwritable = (
        point.measurement.startswith("#")
        or any(map(_unwritable, [*queried, *point.tags, *point.tags.values()]))
        or any(name.startswith("\t") or "\x00" in name for name in queried)
    )
    if unwritable:
        with pytest.raises(ValueError):
            format_line(point)
        return
    line = format_line(point)
    parsed = parse_line(line[:-1])
    assert parsed == point
    assert format_line(parsed) == line  # the text too: -0.0 keeps its sign


def go_json(number: float) -> bytes:
    """How InfluxDB (Go's encoding/json) writes a float: whole numbers without ".0"."""
    if number.is_integer() and abs(number) < 1e21:
        return str(int(number)).encode()
    return repr(number).encode()


@given(number=st.floats(allow_nan=False, allow_infinity=False))
def test_a_float_from_influx_json_is_written_exactly(number: float) -> None:
    written = format_value("float", orjson.loads(go_json(number)))
    (field_type, value) = parse_line(f"m f={written} 1").fields["f"]
    assert field_type == "float"
    assert value == number  # but -0.0 becomes 0.0: Go writes it -0, which parses as 0


def write_export(path: Path, lines: list[str]) -> None:
    path.write_bytes(gzip.compress("".join(lines).encode()))


@given(batch=st.lists(points, max_size=12))
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_read_export_counts_every_point(tmp_path: Path, batch: list[LinePoint]) -> None:
    lines, counts = [], Counter[str]()
    for point in batch:
        with contextlib.suppress(ValueError):
            lines.append(format_line(point))
            counts[point.measurement] += 1
    path = tmp_path / "points.lp.gz"
    write_export(path, lines)
    assert read_export(path) == counts


def test_read_export_rejects_damage(tmp_path: Path) -> None:
    good = [
        format_line(LinePoint("m", {"t": "x"}, {"v": ("float", i / 3)}, i)) for i in range(2000)
    ]
    path = tmp_path / "e.lp.gz"
    write_export(path, good)
    assert read_export(path) == {"m": 2000}
    data = path.read_bytes()

    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_export(path)

    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match=r"line|truncated or corrupt"):
        read_export(path)

    write_export(path, [good[0], 'm s="two\nlines" 2\n', "m v=1.0 3\n", "m v=oops 4\n"])
    with pytest.raises(ValueError, match=r"line 5: column 3: expected a field.*'m v=oops 4'"):
        read_export(path)

    write_export(path, [good[0], "m v=1.0 3"])
    with pytest.raises(ValueError, match="line 2: no newline at the end"):
        read_export(path)

    write_export(path, [good[0], 'm s="open\n', "and never closed\n"])
    with pytest.raises(ValueError, match="line 2: a string field is not closed"):
        read_export(path)

    path.write_bytes(gzip.compress(b"m,t=\xff v=1.0 1\n"))
    with pytest.raises(ValueError, match="line 1: not UTF-8"):
        read_export(path)


# -- the v2 API, against a stand-in ---------------------------------------------------------

TOKEN = "tok-3f9a-very-secret"


@dataclass
class StandIn:
    """Answers the queries of a one-point export; records every request."""

    url: str = ""
    seen: list[tuple[str, dict[str, str], dict[str, str], bytes]] = field(default_factory=list)
    write_status: int = 204

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        form = dict(urllib.parse.parse_qsl(body.decode())) if request.path == "/query" else {}
        self.seen.append((request.path, dict(request.query), dict(request.headers), body))
        if request.path != "/query":
            return web.Response(status=self.write_status, text='{"message":"bucket not found"}')
        q = form["q"]
        series: dict[str, Any] = {"name": "m", "columns": ["time", "v"], "values": [[5, 21]]}
        if q.startswith("SHOW FIELD KEYS"):
            series.update(columns=["fieldKey", "fieldType"], values=[["v", "float"]])
        elif "GROUP BY *" in q:
            series["tags"] = {"t": "x"}
        return web.json_response({"results": [{"statement_id": 0, "series": [series]}]})


@pytest.fixture
async def standin() -> AsyncIterator[StandIn]:
    server = StandIn()
    # auto_decompress off: the test looks at the body as it travelled.
    async with loopback_server(server.handle, auto_decompress=False) as url:
        server.url = url
        yield server


async def test_v2_requests(standin: StandIn, tmp_path: Path) -> None:
    config = InfluxDBSettings(
        url=standin.url, api="v2", bucket="ha/events", org="home org", token=SecretStr(TOKEN)
    )
    dest = tmp_path / "v2.lp.gz"
    exported = await export_database(config, dest)
    assert exported.database == "ha/events"
    assert lines_of(dest) == [b"m,t=x v=21.0 5\n"]
    assert await import_lineprotocol(config, dest, database="other") == {"m": 1}
    for path, params, headers, _ in standin.seen:
        assert headers["Authorization"] == f"Token {TOKEN}"
        if path == "/query":
            assert params["db"] == "ha/events" and params["epoch"] == "ns"
    assert [s[1].get("chunked") for s in standin.seen if s[0] == "/query"] == [
        None,
        None,
        None,
        "true",
    ]
    path, params, headers, body = standin.seen[-1]
    assert path == "/api/v2/write"
    assert params == {"bucket": "other", "org": "home org", "precision": "ns"}
    assert gzip.decompress(body) == b"m,t=x v=21.0 5\n"

    standin.write_status = 404
    with pytest.raises(InfluxBackupError, match=r"no bucket 'ha/events'.*bucket not found"):
        await import_lineprotocol(config, dest)
    with pytest.raises(SinkUnavailable, match="HOMEIQ_INFLUXDB_USERNAME"):
        standin.write_status = 401
        await import_lineprotocol(config, dest)
    with pytest.raises(ConfigError, match=r"needs InfluxDB 1\.x"):
        await native_backup(config, tmp_path / "native")


# -- native: influxd backup / restore --------------------------------------------------------

native = pytest.mark.skipif(not native_available(), reason="influxd is not on PATH")


def closed_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@real
@native
async def test_native_backup_and_restore(
    influxdb: InfluxDBServer,
    config: InfluxDBSettings,
    new_database: Callable[[], str],
    tmp_path: Path,
) -> None:
    await write_tricky(influxdb, config)
    rpc = f"127.0.0.1:{influxdb.rpc_port}"
    backup = tmp_path / "native"
    await native_backup(config, backup, rpc_address=rpc)
    assert list(backup.glob("*.manifest"))
    target = new_database()
    await native_restore(
        config, backup, database=config.database, new_database=target, rpc_address=rpc
    )
    assert dump(influxdb, target) == dump(influxdb, config.database)
    assert field_keys(influxdb, target) == field_keys(influxdb, config.database)

    with pytest.raises(InfluxBackupError, match="already has a database"):
        await native_restore(
            config, backup, database=config.database, new_database=target, rpc_address=rpc
        )
    with pytest.raises(InfluxBackupError, match=r"influxd restore failed .*valid directory"):
        await native_restore(
            config,
            tmp_path / "nowhere",
            database=config.database,
            new_database=new_database(),
            rpc_address=rpc,
        )
    with pytest.raises(InfluxBackupError, match="is not empty"):
        await native_backup(config, backup, rpc_address=rpc)
    with pytest.raises(InfluxBackupError, match="has no database 'homeiq_nothing'"):
        await native_backup(
            config.model_copy(update={"database": "homeiq_nothing"}), backup, rpc_address=rpc
        )
    with pytest.raises(SinkUnavailable, match=r"does not answer.*bind-address"):
        await native_backup(config, backup, rpc_address=closed_address())


@real
@given(point=points_of(values_v1))
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)
def test_influxdb_reads_a_line_as_parse_line_does(
    influxdb: InfluxDBServer, tmp_path: Path, point: LinePoint
) -> None:
    try:
        line = format_line(point)
    except ValueError:
        return
    name = f"homeiq_prop_{uuid.uuid4().hex[:12]}"
    influxdb.create_database(name)
    try:
        write(influxdb, line, name)
        dest = tmp_path / f"{name}.lp.gz"
        config = InfluxDBSettings(url=influxdb.url, database=name)
        asyncio.run(export_database(config, dest))
        written = gzip.decompress(dest.read_bytes()).decode()
        assert parse_line(written.removesuffix("\n")) == replace(
            point, fields=dict(sorted(point.fields.items()))
        )
    finally:
        influxdb.drop_database(name)
