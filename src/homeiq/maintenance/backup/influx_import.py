"""Importing a portable InfluxDB export (:mod:`.influx`) into any InfluxDB through its write
API (1.x ``/write``, 2.x/3.x ``/api/v2/write``), through the store's own client.

The file is read and checked line by line in a worker thread and written in bodies of
at most ``batch_bytes``; rewriting a point replaces it, so an interrupted import can be
run again.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import Callable
from pathlib import Path

from homeiq.errors import InfluxBackupError, SinkRejected
from homeiq.maintenance.backup.influx import connected
from homeiq.maintenance.backup.influx_lineprotocol import read_points
from homeiq.settings import InfluxDBSettings
from homeiq.sinks.influxdb.client import InfluxDBClient, WriteTarget, error_text
from homeiq.sinks.influxdb.escaping import quote_ident
from homeiq.sinks.influxdb.sink import GZIP_LEVEL

log = logging.getLogger(__name__)


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


async def _write_target(client: InfluxDBClient, database: str | None) -> WriteTarget:
    """Where an import writes (nanosecond times); a missing v1 database is created, and a
    configured retention policy must exist in it."""
    target = client.write_target(database, precision="ns")
    config = client.config
    if config.api == "v2":
        return target
    name = target.params["db"]
    if not await client.database_exists(name):
        try:
            await client.create_database(name)
        except SinkRejected as exc:
            raise InfluxBackupError(
                f"InfluxDB did not create the database {name!r} to import into: {exc};"
                " create it first, or import as an admin"
            ) from exc
    rp = config.retention_policy
    if rp and rp not in await client.retention_policies(name):
        raise InfluxBackupError(
            f"database {name!r} has no retention policy {rp!r}: create it first"
            f" (CREATE RETENTION POLICY {quote_ident(rp)} ON {quote_ident(name)} ...),"
            " or import without HOMEIQ_INFLUXDB_RETENTION_POLICY"
        )
    return target


async def import_lineprotocol(
    config: InfluxDBSettings,
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
    async with connected(config) as client:
        target = await _write_target(client, database)
        batches = await asyncio.to_thread(_Batches, source, batch_bytes, config.gzip)
        try:
            while (batch := await asyncio.to_thread(batches.next)) is not None:
                body, first, last = batch
                status, answer = await client.write(target, body, gzipped=config.gzip)
                if status == 404:
                    text = config.scrub(error_text(answer))
                    raise InfluxBackupError(
                        f"InfluxDB has no {target.where} to import into: {text}"
                    )
                if status not in (200, 204):
                    doing = f"writing lines {first}-{last} of {source.name} to {target.where}"
                    raise client.failure(status, answer, doing)
                if progress is not None:
                    progress(batches.points)
        finally:
            await asyncio.to_thread(batches.close)
    log.info("imported %d points into %s", batches.points, target.where)
    return batches.counts
