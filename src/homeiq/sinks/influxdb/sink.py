"""Writing events to InfluxDB over HTTP: the v1 ``/write`` API or the v2 ``/api/v2/write``.

InfluxDB stores one point per series and timestamp: writing the same record again
replaces the point with identical values, so a retried or replayed batch never makes a
duplicate. (A record written twice with *different* tags, e.g. after its entity moved
to another area, lands in two series; the reader keeps one per (entity_id, time).)

Failures are sorted for the writer above (DESIGN §8) by the client's one mapper
(:mod:`~homeiq.sinks.influxdb.client`): anything that may pass (no connection, timeouts,
5xx, 429, refused credentials, a missing database) is :class:`SinkUnavailable`, retried
and spooled; only what InfluxDB refuses about the data itself (400 bad line protocol,
field type conflicts, 413) is :class:`SinkRejected`, whose rows are isolated and
dead-lettered.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import Sequence

from homeiq.errors import SinkRejected, SinkUnavailable
from homeiq.model import EventRecord
from homeiq.settings import InfluxDBSettings, Settings
from homeiq.sinks.influxdb.client import InfluxDBClient
from homeiq.sinks.influxdb.lineprotocol import LineEncoder, bodies

log = logging.getLogger(__name__)

GZIP_LEVEL = 1  # line protocol compresses ~10x even at level 1; higher levels cost CPU


class InfluxDBSink:
    """The :class:`~homeiq.sinks.base.Sink` for InfluxDB 1.x (v1 API) and 2.x/3.x (v2 API)."""

    name = "influxdb"

    def __init__(self, config: InfluxDBSettings, *, batch_max_events: int) -> None:
        self.config = config
        self.batch_max_events = batch_max_events
        self.http = InfluxDBClient(config)
        self._encoder = LineEncoder(config.measurement)
        # v2 buckets are never created here; a v1 database once, before the first write.
        self._database_checked = config.api == "v2"
        self._warned_create = False
        self._target = self.http.write_target(precision="us")

    @classmethod
    def from_settings(cls, settings: Settings) -> InfluxDBSink:
        """A sink for the configured InfluxDB."""
        return cls(settings.influxdb, batch_max_events=settings.batch_max_events)

    async def open(self) -> None:
        """Prepare the session and try to create the database; never fails if InfluxDB is down.

        HomeIQ must start (and spool) while InfluxDB is away: the database is then
        created before the first write that reaches it.
        """
        self.http.session()
        try:
            await self._ensure_database()
        except SinkUnavailable as exc:
            log.warning("%s; writes are spooled until it answers", exc)

    async def _ensure_database(self) -> None:
        if self._database_checked:
            return
        await self.create_database()
        self._database_checked = True

    async def create_database(self) -> None:
        """``CREATE DATABASE`` (a no-op when it exists).

        SinkUnavailable while InfluxDB is down or busy; any refusal (no permission, the
        statement not allowed) is logged once and otherwise ignored: the database may
        well exist, and the writes will say if it does not.
        """
        try:
            await self.http.create_database(self.config.database)
            return
        except SinkRejected as exc:
            text = str(exc)
        if not self._warned_create:
            self._warned_create = True
            log.warning(
                "could not create InfluxDB database %r (%s); assuming it exists",
                self.config.database,
                self.config.scrub(text),
            )

    async def write(self, batch: Sequence[EventRecord]) -> int:
        """Write ``batch`` in requests of bounded size; returns ``len(batch)``.

        InfluxDB cannot say which points were new; rewriting a record only replaces its
        point with the same values, so every record counts as stored.
        """
        if not batch:
            return 0
        try:
            lines = self._encoder.encode_many(batch)
        except ValueError as exc:  # UnicodeError included: a lone surrogate, bad JSON bytes
            raise SinkRejected(f"influxdb cannot encode a record: {exc}") from exc
        await self._ensure_database()
        for body in bodies(lines, self.config.batch_max_bytes, self.batch_max_events):
            await self._post(body)
        return len(batch)

    async def _post(self, body: bytes) -> None:
        data = body
        if self.config.gzip:
            # In a thread: zlib lets go of the GIL while it compresses, so this overlaps
            # with normalizing the next batch instead of stalling the event loop.
            data = await asyncio.to_thread(gzip.compress, body, GZIP_LEVEL)
        status, answer = await self.http.write(self._target, data, gzipped=self.config.gzip)
        if status == 404 and self.config.api == "v1" and b"database not found" in answer:
            # Dropped or never created (open() could not reach InfluxDB): create, retry once.
            await self.create_database()
            status, answer = await self.http.write(self._target, data, gzipped=self.config.gzip)
        if status not in (200, 204):
            raise self.http.failure(status, answer, "to a write")

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.http.close()
