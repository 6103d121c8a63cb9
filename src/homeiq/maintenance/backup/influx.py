"""InfluxDB in backups: a portable line-protocol export, and its import into any InfluxDB.

The portable export (:func:`export_database`) reads every measurement of the configured
database (and retention policy) with InfluxQL, oldest chunk of time first, and writes
gzip-compressed line protocol with nanosecond timestamps, one point per line.
:func:`import_lineprotocol` writes it back through the write API of any InfluxDB
(1.x ``/write``, 2.x/3.x ``/api/v2/write``); :func:`read_export` checks a file without
writing it. The same database exports to the same bytes (the gzip header carries no
time or name), so a restore can be checked by exporting it again.

Field types come from ``SHOW FIELD KEYS``, never from the JSON of a query: InfluxDB
renders the float 21.0 as ``21``. Queries are streamed (``chunked=true``), so memory
holds one chunk of InfluxDB's answer however many points a time chunk has.

What the export cannot carry, it refuses with :class:`InfluxBackupError` rather than
lose: a field stored with several types (possible across shards in 1.x, where a query
returns only one of them); names or tag values with a newline, or with a backslash
before a delimiter or at their end (InfluxDB's parsers read those differently); a
measurement or field key that starts with a tab or holds a NUL (1.x drops the one,
InfluxQL cannot name the other). One known loss: InfluxDB's JSON writes the float -0.0
as ``-0``, so it is exported as 0.0.

The line protocol itself (formatting, parsing, checking a file) is in
:mod:`.influx_lineprotocol`; InfluxDB's own ``influxd backup -portable`` in
:mod:`.influx_native`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import os
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from homeiq.errors import ConfigError, InfluxBackupError, SinkUnavailable
from homeiq.maintenance.backup.influx_lineprotocol import (
    FIELD_TYPES,
    FORMATTERS,
    MIN_NS,
    escape_field_key,
    escape_measurement_name,
    escape_tag,
    read_points,
)
from homeiq.sinks.influxdb.sink import (
    GZIP_LEVEL,
    HTTPClient,
    InfluxDBConfig,
    error_text,
    quote_ident,
)

log = logging.getLogger(__name__)

DAY_NS = 86_400 * 10**9
PAGE_POINTS = 10_000  # rows per streamed piece of a query answer (InfluxDB's chunk_size)
EXPORT_GZIP_LEVEL = 6  # backups are kept for long: size matters more than a little CPU


@dataclass(frozen=True, slots=True)
class InfluxExport:
    """What :func:`export_database` wrote: the manifest entry of an InfluxDB export."""

    database: str
    measurements: dict[str, int]
    field_types: dict[str, dict[str, str]]
    first_time_ns: int | None
    last_time_ns: int | None

    @property
    def points(self) -> int:
        """Points in the export, all measurements together."""
        return sum(self.measurements.values())

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (see :meth:`from_json`)."""
        return {
            "database": self.database,
            "measurements": dict(self.measurements),
            "field_types": {m: dict(f) for m, f in self.field_types.items()},
            "first_time_ns": self.first_time_ns,
            "last_time_ns": self.last_time_ns,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InfluxExport:
        """The inverse of :meth:`to_json`; ValueError naming what is missing or wrong."""
        try:
            database, measurements = data["database"], data["measurements"]
            field_types, first, last = (
                data[k] for k in ("field_types", "first_time_ns", "last_time_ns")
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"an InfluxDB export entry lacks {exc}") from None
        if not isinstance(database, str):
            raise ValueError("an InfluxDB export entry's database is not a string")
        if not isinstance(measurements, dict) or not all(
            isinstance(k, str) and type(v) is int for k, v in measurements.items()
        ):
            raise ValueError("an InfluxDB export entry's measurements are not name → count")
        if not isinstance(field_types, dict) or not all(
            isinstance(m, str)
            and isinstance(fields, dict)
            and all(isinstance(k, str) and t in FIELD_TYPES for k, t in fields.items())
            for m, fields in field_types.items()
        ):
            raise ValueError("an InfluxDB export entry's field_types are not name → field → type")
        for value in (first, last):
            if value is not None and type(value) is not int:
                raise ValueError("an InfluxDB export entry's times are not integers")
        return cls(
            database,
            dict(measurements),
            {m: dict(f) for m, f in field_types.items()},
            first,
            last,
        )


# -- queries ---------------------------------------------------------------------------------


def _answer_error(answer: Any) -> str | None:
    """The first error in a /query answer (top level or of a statement), if any."""
    if not isinstance(answer, dict):
        return f"not a JSON object: {str(answer)[:200]}"
    if isinstance(answer.get("error"), str):
        return str(answer["error"])
    for result in answer.get("results") or []:
        if isinstance(result, dict) and isinstance(result.get("error"), str):
            return str(result["error"])
    return None


def _short(q: str) -> str:
    return q if len(q) <= 200 else q[:200] + "…"


class _Queries:
    """InfluxQL against the configured InfluxDB, answers in nanoseconds."""

    def __init__(self, config: InfluxDBConfig, page_points: int = PAGE_POINTS) -> None:
        self.config = config
        self.http = HTTPClient(config)
        self.page_points = page_points

    def _params(self, db: str | None) -> dict[str, str]:
        return {"epoch": "ns"} if db is None else {"db": db, "epoch": "ns"}

    def _refused(self, q: str, db: str | None, error: str) -> InfluxBackupError:
        error = self.config.scrub(error)
        if db is not None and error.startswith("database not found"):
            return InfluxBackupError(f"InfluxDB at {self.config.url} has no database {db!r}")
        return InfluxBackupError(f"InfluxDB could not run {_short(q)!r}: {error}")

    async def series(self, q: str, db: str | None) -> list[dict[str, Any]]:
        """The series of a one-statement query."""
        status, body = await self.http.request("POST", "/query", self._params(db), data={"q": q})
        if status == 400:
            raise self._refused(q, db, error_text(body))
        if status != 200:
            raise self.http.failure(status, body, "to a query")
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InfluxBackupError(f"InfluxDB answered {_short(q)!r} with non-JSON") from exc
        if (error := _answer_error(answer)) is not None:
            raise self._refused(q, db, error)
        results = answer.get("results") or [{}]
        return list(results[0].get("series") or [])

    async def stream(self, q: str, db: str) -> AsyncGenerator[bytes, None]:
        """The answer to ``q`` as InfluxDB streams it: one JSON document per piece."""
        params = {**self._params(db), "chunked": "true", "chunk_size": str(self.page_points)}
        # No total timeout: a chunk of time may take long to stream; only silence is an error.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.config.timeout_s, sock_read=self.config.timeout_s
        )
        try:
            async with self.http.session().post(
                self.config.url + "/query", params=params, data={"q": q}, timeout=timeout
            ) as response:
                if response.status != 200:
                    body = await response.read()
                    if response.status == 400:
                        raise self._refused(q, db, error_text(body))
                    raise self.http.failure(response.status, body, "to an export query")
                parts: list[bytes] = []
                async for block in response.content.iter_any():
                    start = 0
                    while (end := block.find(b"\n", start)) >= 0:
                        parts.append(block[start:end])
                        yield b"".join(parts)
                        parts.clear()
                        start = end + 1
                    parts.append(block[start:])
                if tail := b"".join(parts).strip():
                    yield tail
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            what = str(exc) or type(exc).__name__
            raise SinkUnavailable(
                self.config.scrub(f"InfluxDB at {self.config.url} failed during an export: {what}")
            ) from exc

    async def close(self) -> None:
        await self.http.close()


# -- export ----------------------------------------------------------------------------------


class _ExportFile:
    """The gzip file being written (in a worker thread), renamed into place when complete."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.partial = dest.with_name(dest.name + ".partial")
        self._raw = self.partial.open("wb")
        # No name and mtime 0 in the header: the same data always makes the same bytes.
        self._gzip = gzip.GzipFile(
            filename="", mode="wb", compresslevel=EXPORT_GZIP_LEVEL, fileobj=self._raw, mtime=0
        )

    def write(self, body: bytes, measurement: str, types: Mapping[str, str]) -> int:
        """Write the points of one streamed piece of a query answer; how many."""
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InfluxBackupError(f"InfluxDB streamed non-JSON: {exc}") from exc
        if (error := _answer_error(answer)) is not None:
            raise InfluxBackupError(f"InfluxDB failed while exporting {measurement!r}: {error}")
        lines: list[str] = []
        try:
            for result in answer.get("results") or []:
                for series in result.get("series") or []:
                    lines += _series_lines(series, measurement, types)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise InfluxBackupError(f"cannot export measurement {measurement!r}: {exc}") from exc
        self._gzip.write("".join(lines).encode())
        return len(lines)

    def commit(self) -> None:
        self._gzip.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        self.partial.replace(self.dest)

    def discard(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._gzip.close()
        self._raw.close()
        self.partial.unlink(missing_ok=True)


def _series_lines(series: dict[str, Any], measurement: str, types: Mapping[str, str]) -> list[str]:
    if series.get("name") != measurement:
        raise ValueError(f"InfluxDB answered with the measurement {series.get('name')!r}")
    head = escape_measurement_name(measurement) + "".join(
        f",{escape_tag(k, 'the tag key')}={escape_tag(v, 'the tag value')}"
        for k, v in sorted((series.get("tags") or {}).items())
        if v  # GROUP BY * reports a tag the series lacks as ""
    )
    columns = series["columns"]
    if columns[0] != "time":
        raise ValueError(f"InfluxDB answered without a time column: {columns}")
    unknown = [c for c in columns[1:] if c not in types]
    if unknown:
        raise ValueError(f"InfluxDB answered with fields SHOW FIELD KEYS did not list: {unknown}")
    fields = [(escape_field_key(c) + "=", FORMATTERS[types[c]]) for c in columns[1:]]
    lines = []
    for row in series.get("values") or []:
        time = row[0]
        if type(time) is not int:
            raise ValueError(f"the time {time!r} is not integer nanoseconds")
        parts = [
            key + fmt(v) for (key, fmt), v in zip(fields, row[1:], strict=True) if v is not None
        ]
        if parts:
            lines.append(f"{head} {','.join(parts)} {time}\n")
    return lines


async def _field_types(queries: _Queries) -> dict[str, dict[str, str]]:
    """Measurement → field → type of the exported retention policy (sorted by name)."""
    config = queries.config
    q = "SHOW FIELD KEYS"
    if config.api == "v1" and config.retention_policy:
        q += f" FROM {quote_ident(config.retention_policy)}./.*/"
    types: dict[str, dict[str, str]] = {}
    conflicts = []
    for series in await queries.series(q, config.query_database):
        measurement = str(series["name"])
        fields = types.setdefault(measurement, {})
        for key, field_type in series.get("values") or []:
            if field_type not in FIELD_TYPES:
                raise InfluxBackupError(
                    f"field {key!r} of measurement {measurement!r} has the type {field_type!r},"
                    " which this export does not know"
                )
            if key in fields and fields[key] != field_type:
                conflicts.append(f"{measurement}.{key}")
            fields[key] = field_type
        try:  # fail before writing anything, not hours into the export
            escape_measurement_name(measurement)
            for key in fields:
                escape_field_key(key)
        except ValueError as exc:
            raise InfluxBackupError(f"cannot export measurement {measurement!r}: {exc}") from None
    if conflicts:
        # 1.x keeps a type per shard; a query returns one type and drops the others.
        raise InfluxBackupError(
            "these fields are stored with different types in different shards, which a"
            f" query cannot return faithfully: {', '.join(sorted(set(conflicts)))}; use the"
            " native backup (influxd backup) for this database"
        )
    return {m: dict(sorted(types[m].items())) for m in sorted(types)}


async def export_database(
    config: InfluxDBConfig,
    dest: Path,
    *,
    chunk_ns: int = DAY_NS,
    page_points: int = PAGE_POINTS,
    progress: Callable[[int], None] | None = None,
) -> InfluxExport:
    """Write every point of the configured database to ``dest`` as gzip line protocol.

    Reads per measurement in chunks of ``chunk_ns`` (aligned to multiples of it), oldest
    first, each streamed in pieces of ``page_points`` rows; ``progress`` gets the number
    of points written so far. Points written after the export began and newer than the
    newest point it saw are not included. ``dest`` appears only when complete.
    """
    if chunk_ns < 1 or page_points < 1:
        raise ValueError("chunk_ns and page_points must be at least 1")
    queries = _Queries(config, page_points)
    db = config.query_database
    prefix = ""
    if config.api == "v1" and config.retention_policy:
        prefix = quote_ident(config.retention_policy) + "."
    counts: dict[str, int] = {}
    first: int | None = None
    last: int | None = None
    total = 0
    types: dict[str, dict[str, str]] = {}
    out: _ExportFile | None = None

    async def edge(select: str, order: str, after: int | None = None) -> int | None:
        where = "" if after is None else f" WHERE time >= {after}"
        series = await queries.series(f"{select}{where} ORDER BY time {order} LIMIT 1", db)
        return int(series[0]["values"][0][0]) if series and series[0].get("values") else None

    try:
        types = await _field_types(queries)
        out = await asyncio.to_thread(_ExportFile, dest)
        for measurement, fields in types.items():
            if not fields:
                continue
            select = ", ".join(f"{quote_ident(f)}::field" for f in fields)
            select = f"SELECT {select} FROM {prefix}{quote_ident(measurement)}"
            oldest = await edge(select, "ASC")
            newest = await edge(select, "DESC")
            if oldest is None or newest is None:
                continue
            count = 0
            start = oldest - oldest % chunk_ns
            while start <= newest:
                end = start + chunk_ns
                upper = f"time < {end}" if end <= newest else f"time <= {newest}"
                q = f"{select} WHERE time >= {max(start, MIN_NS)} AND {upper} GROUP BY *"
                written = 0
                async with contextlib.aclosing(queries.stream(q, db)) as pieces:
                    async for piece in pieces:
                        written += await asyncio.to_thread(out.write, piece, measurement, fields)
                        if progress is not None:
                            progress(total + count + written)
                count += written
                if end > newest:
                    break
                if written:
                    start = end
                    continue
                # An empty chunk: jump to the next point rather than walk an empty stretch.
                following = await edge(select, "ASC", after=end)
                if following is None or following > newest:
                    break
                start = following - following % chunk_ns
            if count:
                counts[measurement] = count
                total += count
                first = oldest if first is None else min(first, oldest)
                last = newest if last is None else max(last, newest)
        await asyncio.to_thread(out.commit)
    except BaseException:
        if out is not None:
            await asyncio.to_thread(out.discard)
        raise
    finally:
        await queries.close()
    log.info("exported %d points of %d measurements from %s", total, len(counts), db)
    return InfluxExport(
        database=db,
        measurements=counts,
        field_types={m: types[m] for m in counts},
        first_time_ns=first,
        last_time_ns=last,
    )


# -- import ----------------------------------------------------------------------------------


class _Batches:
    """Request bodies of an export file, read (in a worker thread) a batch at a time."""

    def __init__(self, source: Path, batch_bytes: int, compress: bool) -> None:
        self.batch_bytes = batch_bytes
        self.compress = compress
        self.counts: dict[str, int] = {}
        self.points = 0
        self._stream = gzip.GzipFile(source, "rb")  # closed by close()
        self._points = read_points(self._stream, source)
        self._held: tuple[int, bytes, str] | None = None

    def next(self) -> tuple[bytes, int, int] | None:
        """The next body (gzipped when asked) and its first and last line; None at the end."""
        lines: list[bytes] = []
        size, first, number = 0, 0, 0
        while True:
            item = self._held or next(self._points, None)
            self._held = None
            if item is None:
                break
            number, data, measurement = item
            if lines and size + len(data) > self.batch_bytes:
                self._held = item  # a line bigger than batch_bytes still goes, alone
                break
            first = first or number
            lines.append(data)
            size += len(data)
            self.counts[measurement] = self.counts.get(measurement, 0) + 1
        if not lines:
            return None
        self.points += len(lines)
        body = b"".join(lines)
        return (gzip.compress(body, GZIP_LEVEL) if self.compress else body), first, number

    def close(self) -> None:
        self._stream.close()


async def _create_database(queries: _Queries, name: str) -> None:
    """CREATE DATABASE; InfluxBackupError saying why InfluxDB would not."""
    q = f"CREATE DATABASE {quote_ident(name)}"
    status, body = await queries.http.request("POST", "/query", {}, data={"q": q})
    if status == 200:
        try:
            error = _answer_error(orjson.loads(body))
        except orjson.JSONDecodeError:
            error = f"a non-JSON answer: {error_text(body)}"
        if error is None:
            return
    elif status == 403:  # 1.x: the user is not an admin
        error = error_text(body)
    else:
        raise queries.http.failure(status, body, "creating the database")
    raise InfluxBackupError(
        f"InfluxDB did not create the database {name!r} to import into:"
        f" {queries.config.scrub(error)}; create it first, or import as an admin"
    )


async def _write_target(queries: _Queries, database: str | None) -> tuple[str, dict[str, str], str]:
    """Path, parameters and a description of where an import writes; a v1 database is
    created when missing."""
    config = queries.config
    if config.api == "v2":
        assert config.org is not None and config.bucket is not None
        bucket = database or config.bucket
        params = {"bucket": bucket, "org": config.org, "precision": "ns"}
        return "/api/v2/write", params, f"bucket {bucket!r}"
    target = database or config.database
    databases = await queries.series("SHOW DATABASES", None)
    if not any([target] in (s.get("values") or []) for s in databases):
        await _create_database(queries, target)
    params = {"db": target, "precision": "ns"}
    if rp := config.retention_policy:
        policies = await queries.series(f"SHOW RETENTION POLICIES ON {quote_ident(target)}", None)
        if not any(row[0] == rp for s in policies for row in s.get("values") or []):
            raise InfluxBackupError(
                f"database {target!r} has no retention policy {rp!r}: create it first"
                f" (CREATE RETENTION POLICY {quote_ident(rp)} ON {quote_ident(target)} ...),"
                " or import without HOMEIQ_INFLUXDB_RETENTION_POLICY"
            )
        params["rp"] = rp
    return "/write", params, f"database {target!r}"


async def import_lineprotocol(
    config: InfluxDBConfig,
    source: Path,
    *,
    database: str | None = None,
    batch_bytes: int = 4_000_000,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Write an export into ``database`` (default: the configured one); points per measurement.

    With the v2 API ``database`` names the bucket (default: the configured one), which
    must exist. Rewriting a point replaces it, so an interrupted import can be run again.
    ValueError if the file is not a valid export; the batches before the bad line are
    written by then (check with :func:`read_export` first to write nothing).
    """
    if batch_bytes < 1:
        raise ValueError("batch_bytes must be at least 1")
    queries = _Queries(config)
    try:
        path, params, where = await _write_target(queries, database)
        batches = await asyncio.to_thread(_Batches, source, batch_bytes, config.gzip)
        try:
            headers = {"Content-Type": "text/plain; charset=utf-8"}
            if config.gzip:
                headers["Content-Encoding"] = "gzip"
            while (batch := await asyncio.to_thread(batches.next)) is not None:
                body, first, last = batch
                status, answer = await queries.http.request(
                    "POST", path, params, data=body, headers=headers
                )
                if status == 404:
                    text = config.scrub(error_text(answer))
                    raise InfluxBackupError(f"InfluxDB has no {where} to import into: {text}")
                if status not in (200, 204):
                    doing = f"writing lines {first}-{last} of {source.name} to {where}"
                    raise queries.http.failure(status, answer, doing)
                if progress is not None:
                    progress(batches.points)
        finally:
            await asyncio.to_thread(batches.close)
    finally:
        await queries.close()
    log.info("imported %d points into %s", batches.points, where)
    return batches.counts


# -- database checks -------------------------------------------------------------------------


async def holds_points(config: InfluxDBConfig, database: str) -> bool:
    """Whether ``database`` exists and holds any point: a restore must then keep them aside."""
    queries = _Queries(config)
    try:
        if not await _database_exists(config, database):
            return False
        for series in await queries.series("SHOW MEASUREMENTS", database):
            for (name,) in series.get("values") or []:
                q = f"SELECT * FROM {quote_ident(str(name))} LIMIT 1"
                if await queries.series(q, database):
                    return True
        return False
    finally:
        await queries.close()


async def drop_database(config: InfluxDBConfig, database: str) -> None:
    """Drop ``database`` (verify's scratch copy); nothing happens when it does not exist."""
    queries = _Queries(config)
    try:
        await queries.series(f"DROP DATABASE {quote_ident(database)}", None)
    finally:
        await queries.close()


async def _database_exists(config: InfluxDBConfig, name: str) -> bool:
    if config.api != "v1":
        raise ConfigError("HOMEIQ_INFLUXDB_API", "the native backup needs InfluxDB 1.x (v1)")
    queries = _Queries(config)
    try:
        databases = await queries.series("SHOW DATABASES", None)
    finally:
        await queries.close()
    return any([name] in (s.get("values") or []) for s in databases)
