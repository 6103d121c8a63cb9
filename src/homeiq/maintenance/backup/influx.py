"""InfluxDB in backups: a portable line-protocol export (its import is :mod:`.influx_import`).

The portable export (:func:`export_database`) reads every measurement of the configured
database (and retention policy) with InfluxQL, oldest chunk of time first, and writes
gzip-compressed line protocol with nanosecond timestamps, one point per line.
:func:`~.influx_import.import_lineprotocol` writes it back through the write API of
any InfluxDB (1.x ``/write``, 2.x/3.x ``/api/v2/write``);
:func:`~.influx_lineprotocol.read_export` checks a file without writing it. The same
database exports to the same bytes (the gzip header carries no time or name), so a
restore can be checked by exporting it again.

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

InfluxDB is reached through the store's own client (:class:`InfluxDBClient`: queries,
streamed queries, database admin, the write target) and escaped by its one escaping
module. The export's line format (formatting, parsing, checking a file) is in
:mod:`.influx_lineprotocol`, the import in :mod:`.influx_import`, InfluxDB's own
``influxd backup -portable`` in :mod:`.influx_native`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from homeiq.errors import ConfigError, InfluxBackupError, QueryFailed
from homeiq.maintenance.backup.influx_lineprotocol import FIELD_TYPES, FORMATTERS, MIN_NS
from homeiq.settings import InfluxDBSettings
from homeiq.sinks.influxdb.client import InfluxDBClient, answer_error
from homeiq.sinks.influxdb.escaping import (
    escape_field_key,
    escape_key,
    escape_measurement,
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


# -- the client, as the backup uses it --------------------------------------------------------


@contextlib.asynccontextmanager
async def connected(config: InfluxDBSettings) -> AsyncIterator[InfluxDBClient]:
    """The store's client for one backup step, closed after it; a query InfluxDB cannot
    run becomes :class:`InfluxBackupError` (its message says which and why)."""
    client = InfluxDBClient(config)
    try:
        yield client
    except QueryFailed as exc:
        raise InfluxBackupError(str(exc)) from exc
    finally:
        await client.close()


def require_v1(config: InfluxDBSettings) -> None:
    """ConfigError unless the store speaks the 1.x API (databases, influxd)."""
    if config.api != "v1":
        raise ConfigError("HOMEIQ_INFLUXDB_API", "the native backup needs InfluxDB 1.x (v1)")


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
        if (error := answer_error(answer)) is not None:
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
    head = escape_measurement(measurement) + "".join(
        f",{escape_key(k, 'the tag key')}={escape_key(v, 'the tag value')}"
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


async def _field_types(client: InfluxDBClient) -> dict[str, dict[str, str]]:
    """Measurement → field → type of the exported retention policy (sorted by name)."""
    config = client.config
    q = "SHOW FIELD KEYS"
    if config.api == "v1" and config.retention_policy:
        q += f" FROM {quote_ident(config.retention_policy)}./.*/"
    types: dict[str, dict[str, str]] = {}
    conflicts = []
    for series in await client.series(q, config.query_database):
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
            escape_measurement(measurement)
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
    config: InfluxDBSettings,
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
    db = config.query_database
    prefix = ""
    if config.api == "v1" and config.retention_policy:
        prefix = quote_ident(config.retention_policy) + "."
    counts: dict[str, int] = {}
    first: int | None = None
    last: int | None = None
    out: _ExportFile | None = None
    async with connected(config) as client:
        try:
            types = await _field_types(client)
            out = await asyncio.to_thread(_ExportFile, dest)
            for measurement, fields in types.items():
                if not fields:
                    continue
                select = ", ".join(f"{quote_ident(f)}::field" for f in fields)
                select = f"SELECT {select} FROM {prefix}{quote_ident(measurement)}"
                done = sum(counts.values())
                step = _Measurement(client, out, db, measurement, fields, select)
                span = await step.export(
                    chunk_ns, page_points, None if progress is None else _offset(progress, done)
                )
                if span is not None:
                    counts[measurement] = step.count
                    first = span[0] if first is None else min(first, span[0])
                    last = span[1] if last is None else max(last, span[1])
            await asyncio.to_thread(out.commit)
        except BaseException:
            if out is not None:
                await asyncio.to_thread(out.discard)
            raise
    log.info("exported %d points of %d measurements from %s", sum(counts.values()), len(counts), db)
    return InfluxExport(
        database=db,
        measurements=counts,
        field_types={m: types[m] for m in counts},
        first_time_ns=first,
        last_time_ns=last,
    )


def _offset(progress: Callable[[int], None], done: int) -> Callable[[int], None]:
    return lambda points: progress(done + points)


@dataclass(slots=True)
class _Measurement:
    """The export of one measurement: chunks of time, oldest first, each streamed."""

    client: InfluxDBClient
    out: _ExportFile
    db: str
    name: str
    fields: dict[str, str]
    select: str
    count: int = 0

    async def _edge(self, order: str, after: int | None = None) -> int | None:
        where = "" if after is None else f" WHERE time >= {after}"
        q = f"{self.select}{where} ORDER BY time {order} LIMIT 1"
        series = await self.client.series(q, self.db)
        return int(series[0]["values"][0][0]) if series and series[0].get("values") else None

    async def export(
        self, chunk_ns: int, page_points: int, progress: Callable[[int], None] | None
    ) -> tuple[int, int] | None:
        """Write every point; the first and last time exported, None when there is none."""
        oldest = await self._edge("ASC")
        newest = await self._edge("DESC")
        if oldest is None or newest is None:
            return None
        start = oldest - oldest % chunk_ns
        while start <= newest:
            end = start + chunk_ns
            upper = f"time < {end}" if end <= newest else f"time <= {newest}"
            q = f"{self.select} WHERE time >= {max(start, MIN_NS)} AND {upper} GROUP BY *"
            written = 0
            stream = self.client.stream(q, self.db, chunk_size=page_points)
            async with contextlib.aclosing(stream) as pieces:
                async for piece in pieces:
                    written += await asyncio.to_thread(
                        self.out.write, piece, self.name, self.fields
                    )
                    if progress is not None:
                        progress(self.count + written)
            self.count += written
            if end > newest:
                break
            if written:
                start = end
                continue
            # An empty chunk: jump to the next point rather than walk an empty stretch.
            following = await self._edge("ASC", after=end)
            if following is None or following > newest:
                break
            start = following - following % chunk_ns
        return (oldest, newest) if self.count else None


# -- database checks -------------------------------------------------------------------------


async def holds_points(config: InfluxDBSettings, database: str) -> bool:
    """Whether ``database`` exists and holds any point: a restore must then keep them aside."""
    require_v1(config)
    async with connected(config) as client:
        if not await client.database_exists(database):
            return False
        for series in await client.series("SHOW MEASUREMENTS", database):
            for (name,) in series.get("values") or []:
                q = f"SELECT * FROM {quote_ident(str(name))} LIMIT 1"
                if await client.series(q, database):
                    return True
        return False


async def drop_database(config: InfluxDBSettings, database: str) -> None:
    """Drop ``database`` (verify's scratch copy); nothing happens when it does not exist."""
    async with connected(config) as client:
        await client.drop_database(database)


async def database_exists(config: InfluxDBSettings, name: str) -> bool:
    """Whether the 1.x database ``name`` exists; ConfigError for the v2 API."""
    require_v1(config)
    async with connected(config) as client:
        return await client.database_exists(name)
