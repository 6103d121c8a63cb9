"""Reading events back from InfluxDB with InfluxQL: the inverse of the line-protocol schema.

Queries go to the v1 ``/query`` API (InfluxDB 2.x and 3.x answer it through their v1
compatibility API, with the bucket as database) with ``epoch=u``, so times come back as
the integer microseconds they were written with. Every value that reaches a query is
escaped (:func:`quote_literal`, :func:`quote_ident`), entity ids included.

Results are read a page at a time with a time cursor (``time > last ORDER BY time LIMIT
n``) per entity: within one entity a time is unique, so the cursor never skips a point,
and no response holds more than a page. A point an entity wrote twice at the same time
in two series (it moved area between the writes) is returned once. The API's queries
(event pages, multi-entity history, context traces, activity) are in
:mod:`~homeiq.sinks.influxdb.queries`; points become records in
:mod:`~homeiq.sinks.influxdb.points`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from homeiq.errors import QueryFailed
from homeiq.model import EventRecord, Source
from homeiq.settings import InfluxDBSettings, Settings
from homeiq.sinks.base import Activity, EventPage, EventQuery, StoreSummary
from homeiq.sinks.influxdb import queries
from homeiq.sinks.influxdb.client import InfluxDBClient
from homeiq.sinks.influxdb.escaping import (
    decode_tag_value,
    encode_tag_value,
    quote_ident,
    quote_literal,
)
from homeiq.sinks.influxdb.points import Point, points_of, record_from_point, tag, time_ns
from homeiq.sinks.reading import NO_AREA

PAGE_SIZE = 10_000
KEY_QUERIES_IN_FLIGHT = 4


class InfluxDBReader:
    """The :class:`~homeiq.sinks.base.EventReader` for InfluxDB."""

    def __init__(self, config: InfluxDBSettings, *, page_size: int = PAGE_SIZE) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.config = config
        self.page_size = page_size
        self.http = InfluxDBClient(config)
        measurement = quote_ident(config.measurement)
        if config.api == "v1" and config.retention_policy:
            measurement = f"{quote_ident(config.retention_policy)}.{measurement}"
        self.from_clause = measurement

    @classmethod
    def from_settings(cls, settings: Settings, *, page_size: int = PAGE_SIZE) -> InfluxDBReader:
        """A reader of the configured InfluxDB."""
        return cls(settings.influxdb, page_size=page_size)

    async def query(self, *statements: str) -> list[list[Point]]:
        """Run InfluxQL statements; the rows of each (none when the database does not exist)."""
        results = await self._results("; ".join(statements))
        errors = [r.get("error") for r in results]
        if any(isinstance(e, str) and e.startswith("database not found") for e in errors) or (
            errors[:1] == ["not executed"] and await self._database_missing()
        ):
            # Nothing written yet: the sink creates the database on its first write.
            return [[] for _ in statements]
        for error in errors:
            if isinstance(error, str):
                raise QueryFailed(f"InfluxDB could not run a query: {error}")
        if len(results) != len(statements):
            raise QueryFailed(f"InfluxDB answered {len(results)} of {len(statements)} statements")
        return [points_of(r.get("series") or []) for r in results]

    async def _database_missing(self) -> bool:
        # Given several statements, 1.6 reports a missing database only as "not executed".
        results = await self._results(f'SELECT "source" FROM {self.from_clause} LIMIT 1')
        error = results[0].get("error") if results else None
        return isinstance(error, str) and error.startswith("database not found")

    async def _results(self, q: str) -> list[dict[str, Any]]:
        return await self.http.results(q, self.config.query_database, epoch="u")

    async def _page(self, select: str, where: list[str], after: int | None, n: int) -> list[Point]:
        """One page of an entity's points, oldest first, strictly after time ``after``."""
        conditions = [*where, f"time > {time_ns(after)}"] if after is not None else where
        statement = (
            f"{select} FROM {self.from_clause} WHERE {' AND '.join(conditions)}"
            f" ORDER BY time ASC LIMIT {int(n)}"
        )
        return (await self.query(statement))[0]

    def _entity(self, entity_id: str) -> str:
        return f'"entity_id" = {quote_literal(encode_tag_value(entity_id))}'

    async def history(
        self, entity_id: str, start: int | None, end: int | None, limit: int
    ) -> list[EventRecord]:
        """Events of one entity with ``start <= time < end`` (microseconds), oldest first."""
        where = [self._entity(entity_id)]
        if start is not None:
            where.append(f"time >= {time_ns(start)}")
        if end is not None:
            where.append(f"time < {time_ns(end)}")
        records: list[EventRecord] = []
        after: int | None = None
        while len(records) < limit:
            wanted = min(self.page_size, limit - len(records))
            page = await self._page("SELECT *", where, after, wanted)
            for point in page:
                record = record_from_point(point)
                if record is not None and record.time != after:
                    records.append(record)
                    after = record.time
            if len(page) < wanted:
                break
            after = int(page[-1]["time"])
        return records[:limit]

    async def keys(
        self,
        entity_ids: Sequence[str] | None = None,
        start: int | None = None,
        end: int | None = None,
    ) -> set[tuple[str, int]]:
        """Every stored (entity_id, time) with ``start <= time <= end``; None = unbounded."""
        ids = await self.entity_ids() if entity_ids is None else list(dict.fromkeys(entity_ids))
        gate = asyncio.Semaphore(KEY_QUERIES_IN_FLIGHT)
        bounds = []
        if start is not None:
            bounds.append(f"time >= {time_ns(start)}")
        if end is not None:
            bounds.append(f"time <= {time_ns(end)}")

        async def times(entity_id: str) -> set[tuple[str, int]]:
            found: set[tuple[str, int]] = set()
            after: int | None = None
            where = [self._entity(entity_id), *bounds]
            async with gate:
                while True:
                    page = await self._page('SELECT "source"', where, after, self.page_size)
                    found.update((entity_id, int(p["time"])) for p in page)
                    if len(page) < self.page_size:
                        return found
                    after = int(page[-1]["time"])

        found: set[tuple[str, int]] = set()
        for part in await asyncio.gather(*(times(e) for e in ids)):
            found |= part
        return found

    async def entity_ids(self) -> list[str]:
        """Every entity id with a series in the measurement."""
        rows = await self.query(f'SHOW TAG VALUES FROM {self.from_clause} WITH KEY = "entity_id"')
        return sorted({decode_tag_value(str(row["value"])) for row in rows[0]})

    async def summary(self) -> StoreSummary:
        """Totals per domain, area and source, and the time span stored."""
        source = f'"source") FROM {self.from_clause}'
        statements = [f'SELECT COUNT({source} GROUP BY "entity_id", "area_id"']
        statements += [f'SELECT COUNT({source} WHERE "source" = {int(s)}' for s in Source]
        statements += [f"SELECT FIRST({source}", f"SELECT LAST({source}"]
        counts, *rest = await self.query(*statements)
        by_source, (first, last) = rest[: len(Source)], rest[len(Source) :]
        result = StoreSummary()
        entities: set[str] = set()
        for row in counts:
            entity_id, count = tag(row.get("entity_id")), int(row["count"])
            if entity_id is None or count == 0:
                continue
            entities.add(entity_id)
            domain = entity_id.partition(".")[0]
            area = tag(row.get("area_id")) or NO_AREA
            result.total += count
            result.by_domain[domain] = result.by_domain.get(domain, 0) + count
            result.by_area[area] = result.by_area.get(area, 0) + count
        for kind, rows in zip(Source, by_source, strict=True):
            count = sum(int(row["count"]) for row in rows)
            if count:
                result.by_source[kind.name.lower()] = count
        result.entities = len(entities)
        result.first_time = int(first[0]["time"]) if first else None
        result.last_time = int(last[0]["time"]) if last else None
        return result

    async def last_event_time(self) -> int | None:
        """Time of the newest stored event, or None when empty."""
        rows = (await self.query(f'SELECT LAST("source") FROM {self.from_clause}'))[0]
        return int(rows[0]["time"]) if rows else None

    async def events(self, query: EventQuery) -> EventPage:
        """One page of events across entities (see :class:`EventQuery`)."""
        return await queries.events(self, query)

    async def history_many(
        self,
        entity_ids: Sequence[str],
        start: int,
        end: int,
        *,
        include_start_state: bool = True,
        attributes: bool = True,
    ) -> dict[str, list[EventRecord]]:
        """Each entity's state at ``start`` and its events in [start, end), oldest first."""
        return await queries.history_many(
            self, entity_ids, start, end, include_start_state, attributes
        )

    async def last_states(
        self, entity_ids: Sequence[str], before: int | None = None
    ) -> dict[str, EventRecord]:
        """Each entity's newest point before ``before`` (None = newest), no attributes.

        One statement per chunk of entities: ``GROUP BY "entity_id"`` with ``LIMIT 1``
        answers one point per entity (the series of an entity that moved area are one
        group), where a query per entity would open every shard once per entity.
        """
        wanted = list(dict.fromkeys(entity_ids))
        found: dict[str, EventRecord] = {}
        for first in range(0, len(wanted), queries.VALUES_PER_QUERY):
            where = [
                queries.any_of(
                    "entity_id", wanted[first : first + queries.VALUES_PER_QUERY], is_tag=True
                )
            ]
            if before is not None:
                where.append(f"time < {time_ns(before)}")
            statement = (
                f"SELECT {queries.columns(False)} FROM {self.from_clause}"
                f' WHERE {" AND ".join(where)} GROUP BY "entity_id" ORDER BY time DESC LIMIT 1'
            )
            for point in (await self.query(statement))[0]:
                record = record_from_point(point)
                if record is not None:
                    found[record.entity_id] = record
        return found

    async def by_context(
        self, context_ids: Sequence[str], *, around: int | None = None
    ) -> list[EventRecord]:
        """Events whose context_id is one of ``context_ids`` (near their creation)."""
        return await queries.by_context(self, context_ids, "context_id", around)

    async def caused_by(
        self, context_ids: Sequence[str], *, around: int | None = None
    ) -> list[EventRecord]:
        """Events whose context_parent_id is one of ``context_ids`` (near their creation)."""
        return await queries.by_context(self, context_ids, "context_parent_id", around)

    async def activity(self, start: int, end: int, *, bucket_s: int, top: int) -> Activity:
        """Event counts in [start, end) by entity, bucket, domain and area."""
        return await queries.activity(self, start, end, bucket_s, top)

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.http.close()
