"""Reading events back from InfluxDB with InfluxQL: the inverse of the line-protocol schema.

Queries go to the v1 ``/query`` API (InfluxDB 2.x and 3.x answer it through their v1
compatibility API, with the bucket as database) with ``epoch=u``, so times come back as
the integer microseconds they were written with. Every value that reaches a query is
escaped (:func:`quote_literal`, :func:`quote_ident`), entity ids included.

Results are read a page at a time with a time cursor (``time > last ORDER BY time LIMIT
n``) per entity: within one entity a time is unique, so the cursor never skips a point,
and no response holds more than a page. A point an entity wrote twice at the same time
in two series (it moved area between the writes) is returned once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson

from homeiq.errors import PermanentError
from homeiq.model import EventRecord, Origin, Source
from homeiq.settings import Settings
from homeiq.sinks.base import StoreSummary
from homeiq.sinks.influxdb.lineprotocol import decode_tag_value, encode_tag_value
from homeiq.sinks.influxdb.sink import (
    HTTPClient,
    InfluxDBConfig,
    error_text,
    quote_ident,
    quote_literal,
)

PAGE_SIZE = 10_000
KEY_QUERIES_IN_FLIGHT = 4
# InfluxDB's time range is ±(2**63 - 2) ns; a bound outside it is clamped.
_MIN_NS = -(2**63) + 2
_MAX_NS = 2**63 - 2
NO_AREA = "(no area)"

Point = dict[str, Any]


class InfluxDBQueryError(PermanentError):
    """InfluxDB could not run a query (InfluxQL error); the message is InfluxDB's."""


def _time_ns(us: int) -> int:
    return min(max(int(us) * 1000, _MIN_NS), _MAX_NS)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _tag(value: Any) -> str | None:
    # InfluxDB has no empty tag values: an absent tag reads as null (or "" in GROUP BY).
    return decode_tag_value(str(value)) if value else None


def _float(value: Any) -> float | None:
    # InfluxDB's JSON writes 21.0 as 21: it reads back as an int.
    return None if value is None else float(value)


def record_from_point(point: Point) -> EventRecord | None:
    """The record a point of the schema was written from (None without an entity_id)."""
    entity_id = _tag(point.get("entity_id"))
    if entity_id is None:
        return None
    text = point.get("attributes")
    blob = text.encode() if isinstance(text, str) else b"{}"
    try:
        attributes = orjson.loads(blob)
    except orjson.JSONDecodeError:
        attributes = None
    if not isinstance(attributes, dict):  # written by someone else: keep what we can
        attributes, blob = {}, b"{}"
    last_changed = point.get("last_changed")
    return EventRecord(
        entity_id=entity_id,
        time=int(point["time"]),
        state=_text(point.get("state")),
        value=_float(point.get("value")),
        previous_state=_text(point.get("previous_state")),
        duration_in_state_s=_float(point.get("duration_in_state_s")),
        last_changed=None if last_changed is None else int(last_changed),
        attributes=attributes,
        attributes_json=blob,
        dropped_attributes_bytes=int(point.get("dropped_attributes_bytes") or 0),
        context_id=_text(point.get("context_id")),
        context_parent_id=_text(point.get("context_parent_id")),
        context_user_id=_text(point.get("context_user_id")),
        device_id=_tag(point.get("device_id")),
        area_id=_tag(point.get("area_id")),
        floor_id=_text(point.get("floor_id")),
        origin=Origin(int(point.get("origin") or 0)),
        source=Source(int(point.get("source") or 0)),
    )


def _points(series: list[dict[str, Any]]) -> list[Point]:
    """The rows of a statement's series as dicts (tags of a GROUP BY included)."""
    rows: list[Point] = []
    for one in series:
        columns = one.get("columns", [])
        tags = one.get("tags") or {}
        for values in one.get("values", []):
            point = dict(zip(columns, values, strict=False))
            point.update(tags)
            rows.append(point)
    return rows


class InfluxDBReader:
    """The :class:`~homeiq.sinks.base.EventReader` for InfluxDB."""

    def __init__(self, config: InfluxDBConfig, *, page_size: int = PAGE_SIZE) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.config = config
        self.page_size = page_size
        self.http = HTTPClient(config)
        measurement = quote_ident(config.measurement)
        if config.api == "v1" and config.retention_policy:
            measurement = f"{quote_ident(config.retention_policy)}.{measurement}"
        self._from = measurement

    @classmethod
    def from_settings(cls, settings: Settings, *, page_size: int = PAGE_SIZE) -> InfluxDBReader:
        """A reader of the configured InfluxDB."""
        return cls(InfluxDBConfig.from_settings(settings), page_size=page_size)

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
                raise InfluxDBQueryError(f"InfluxDB could not run a query: {error}")
        if len(results) != len(statements):
            raise InfluxDBQueryError(
                f"InfluxDB answered {len(results)} of {len(statements)} statements"
            )
        return [_points(r.get("series") or []) for r in results]

    async def _database_missing(self) -> bool:
        # Given several statements, 1.6 reports a missing database only as "not executed".
        results = await self._results(f'SELECT "source" FROM {self._from} LIMIT 1')
        error = results[0].get("error") if results else None
        return isinstance(error, str) and error.startswith("database not found")

    async def _results(self, q: str) -> list[dict[str, Any]]:
        status, body = await self.http.request(
            "POST", "/query", {"db": self.config.query_database, "epoch": "u"}, data={"q": q}
        )
        if status == 400:
            text = self.config.scrub(error_text(body))
            raise InfluxDBQueryError(f"InfluxDB refused the query: {text}")
        if status != 200:
            raise self.http.failure(status, body, "to a query")
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InfluxDBQueryError(f"InfluxDB answered a query with non-JSON: {exc}") from exc
        if not isinstance(answer, dict) or isinstance(answer.get("error"), str):
            error = answer.get("error") if isinstance(answer, dict) else answer
            raise InfluxDBQueryError(f"InfluxDB could not run a query: {error}")
        results: list[dict[str, Any]] = answer.get("results") or []
        return results

    async def _page(self, select: str, where: list[str], after: int | None, n: int) -> list[Point]:
        """One page of an entity's points, oldest first, strictly after time ``after``."""
        conditions = [*where, f"time > {_time_ns(after)}"] if after is not None else where
        statement = (
            f"{select} FROM {self._from} WHERE {' AND '.join(conditions)}"
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
            where.append(f"time >= {_time_ns(start)}")
        if end is not None:
            where.append(f"time < {_time_ns(end)}")
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
            bounds.append(f"time >= {_time_ns(start)}")
        if end is not None:
            bounds.append(f"time <= {_time_ns(end)}")

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
        rows = await self.query(f'SHOW TAG VALUES FROM {self._from} WITH KEY = "entity_id"')
        return sorted({decode_tag_value(str(row["value"])) for row in rows[0]})

    async def summary(self) -> StoreSummary:
        """Totals per domain, area and source, and the time span stored."""
        source = f'"source") FROM {self._from}'
        statements = [f'SELECT COUNT({source} GROUP BY "entity_id", "area_id"']
        statements += [f'SELECT COUNT({source} WHERE "source" = {int(s)}' for s in Source]
        statements += [f"SELECT FIRST({source}", f"SELECT LAST({source}"]
        counts, *rest = await self.query(*statements)
        by_source, (first, last) = rest[: len(Source)], rest[len(Source) :]
        result = StoreSummary()
        entities: set[str] = set()
        for row in counts:
            entity_id, count = _tag(row.get("entity_id")), int(row["count"])
            if entity_id is None or count == 0:
                continue
            entities.add(entity_id)
            domain = entity_id.partition(".")[0]
            area = _tag(row.get("area_id")) or NO_AREA
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
        rows = (await self.query(f'SELECT LAST("source") FROM {self._from}'))[0]
        return int(rows[0]["time"]) if rows else None

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.http.close()
