"""Deleting events from InfluxDB: the :class:`~homeiq.sinks.base.Eraser` of the store.

InfluxDB deletes by series (tags) and time only: v1 ``DELETE FROM m WHERE <tags> AND
<time>`` (InfluxQL), v2 ``/api/v2/delete`` with a predicate of tag equalities. Neither
can look at a field, and ``source`` is a field. A deletion with ``sources`` is therefore
done point by point: the matching points' times are read (``chunk_rows`` at a time) and
each one deleted by its exact time; a point is one (entity, time), so nothing else goes.
Without ``sources`` a deletion is one request per entity (InfluxDB drops whole blocks
and tombstones the rest, far cheaper than points one by one).

Every request is idempotent: a purge killed part-way and run again deletes what is left.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from homeiq.errors import QueryFailed
from homeiq.settings import InfluxDBSettings
from homeiq.sinks.base import Deletion
from homeiq.sinks.influxdb.client import InfluxDBClient
from homeiq.sinks.influxdb.escaping import (
    decode_tag_value,
    encode_tag_value,
    quote_ident,
    quote_literal,
)
from homeiq.sinks.influxdb.points import Point, points_of, time_ns

STATEMENTS_PER_REQUEST = 200  # exact-time deletes sent together, one request


def _rfc3339_ns(ns: int) -> str:
    """A time for /api/v2/delete, to the nanosecond."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction:09d}Z"


class InfluxDBEraser:
    """Counts and deletes points of the configured measurement, v1 or v2."""

    def __init__(self, config: InfluxDBSettings, http: InfluxDBClient) -> None:
        self.config = config
        self.http = http  # the sink's: its session, closed with the sink
        measurement = quote_ident(config.measurement)
        self._measurement = measurement
        if config.api == "v1" and config.retention_policy:
            measurement = f"{quote_ident(config.retention_policy)}.{measurement}"
        self._from = measurement

    # -- InfluxQL helpers -------------------------------------------------------------

    @staticmethod
    def _entity(entity_id: str) -> str:
        return f'"entity_id" = {quote_literal(encode_tag_value(entity_id))}'

    @staticmethod
    def _time(deletion: Deletion) -> list[str]:
        where = []
        if deletion.after is not None:
            where.append(f"time >= {time_ns(deletion.after)}")
        if deletion.before is not None:
            where.append(f"time < {time_ns(deletion.before)}")
        return where

    @staticmethod
    def _sources(deletion: Deletion) -> list[str]:
        if not deletion.sources:
            return []
        return ["(" + " OR ".join(f'"source" = {int(s)}' for s in deletion.sources) + ")"]

    async def _series(self, q: str) -> list[Point]:
        return points_of(await self._query(q))

    async def _query(self, q: str) -> list[dict[str, Any]]:
        try:
            return await self.http.series(q, self.config.query_database, epoch="u")
        except QueryFailed as exc:
            if "has no database" in str(exc):
                return []  # nothing written yet: nothing to count or delete
            raise

    # -- the Eraser -------------------------------------------------------------------

    async def count(self, deletion: Deletion) -> int:
        """How many stored points ``deletion`` matches (one query per entity)."""
        total = 0
        for entity_id in deletion.entity_ids:
            where = [self._entity(entity_id), *self._time(deletion), *self._sources(deletion)]
            q = f'SELECT COUNT("source") FROM {self._from} WHERE {" AND ".join(where)}'
            for point in await self._series(q):
                total += int(str(point.get("count") or 0))
        return total

    async def delete(self, deletion: Deletion, *, chunk_rows: int) -> int:
        """Delete what ``deletion`` matches; how many points went (counted first)."""
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
        total = 0
        for entity_id in deletion.entity_ids:
            one = Deletion((entity_id,), deletion.before, deletion.after, deletion.sources)
            if deletion.sources:
                total += await self._delete_points(one, chunk_rows)
                continue
            found = await self.count(one)
            if found:
                await self._delete_range(entity_id, deletion.after, deletion.before)
                total += found
        return total

    async def _delete_points(self, deletion: Deletion, chunk_rows: int) -> int:
        """A deletion filtered on ``source``: its points by exact time, a chunk at a time."""
        entity_id = deletion.entity_ids[0]
        where = [self._entity(entity_id), *self._time(deletion), *self._sources(deletion)]
        total = 0
        while True:
            q = (
                f'SELECT "source" FROM {self._from} WHERE {" AND ".join(where)}'
                f" ORDER BY time ASC LIMIT {int(chunk_rows)}"
            )
            times = [int(str(p["time"])) for p in await self._series(q)]
            if not times:
                return total
            for first in range(0, len(times), STATEMENTS_PER_REQUEST):
                part = times[first : first + STATEMENTS_PER_REQUEST]
                if self.config.api == "v2":
                    for t in part:
                        await self._delete_range(entity_id, t, t + 1)
                else:
                    await self._delete_v1(
                        [f"{self._entity(entity_id)} AND time = {time_ns(t)}" for t in part]
                    )
            total += len(times)

    async def _delete_range(self, entity_id: str, after: int | None, before: int | None) -> None:
        if self.config.api == "v2":
            await self._delete_v2(entity_id, after, before)
            return
        deletion = Deletion((entity_id,), before, after)
        await self._delete_v1([" AND ".join([self._entity(entity_id), *self._time(deletion)])])

    async def _delete_v1(self, conditions: list[str]) -> None:
        q = "; ".join(f"DELETE FROM {self._measurement} WHERE {c}" for c in conditions)
        results = await self.http.results(q, self.config.query_database)
        for result in results:
            error = result.get("error")
            if isinstance(error, str) and not error.startswith("database not found"):
                raise QueryFailed(f"InfluxDB could not delete: {self.config.scrub(error)}")

    async def _delete_v2(self, entity_id: str, after: int | None, before: int | None) -> None:
        # /api/v2/delete takes both bounds, inclusive: stop is one nanosecond before.
        start = _rfc3339_ns(max(time_ns(after), 0) if after is not None else 0)
        stop_ns = time_ns(before) - 1 if before is not None else 2**63 - 2
        # Entity ids never hold a double quote (see homeiq.model), so none needs escaping.
        predicate = (
            f'_measurement="{self.config.measurement}" AND'
            f' entity_id="{encode_tag_value(entity_id)}"'
        )
        body = orjson.dumps({"start": start, "stop": _rfc3339_ns(stop_ns), "predicate": predicate})
        params = {"org": self.config.org or "", "bucket": self.config.bucket or ""}
        status, answer = await self.http.request(
            "POST",
            "/api/v2/delete",
            params,
            data=body,
            headers={"Content-Type": "application/json"},
        )
        if status not in (200, 204):
            raise self.http.failure(status, answer, "to a delete")

    async def entity_ids(self) -> list[str]:
        """Entities with a series in the measurement, sorted."""
        q = f'SHOW TAG VALUES FROM {self._from} WITH KEY = "entity_id"'
        rows = points_of(await self._query(q))
        return sorted({decode_tag_value(str(row["value"])) for row in rows})

    # -- InfluxDB's own expiry of raw data (HOMEIQ_RETENTION_INFLUXDB_MANAGE) ---------

    async def raw_retention(self) -> str:
        """What expires raw data now, in words (``retention policy "autogen": 372d``)."""
        if self.config.api == "v2":
            bucket = await self._bucket()
            rules = bucket.get("retentionRules") or [{}]
            seconds = int(rules[0].get("everySeconds") or 0)
            return f"bucket {self.config.bucket!r}: {_duration(seconds)}"
        name, duration, _ = await self._policy()
        return f"retention policy {name!r}: {duration}"

    async def set_raw_retention(self, days: int | None) -> str:
        """Expire raw data after ``days`` (None: never); the new setting in words."""
        seconds = 0 if days is None else days * 86_400
        if self.config.api == "v2":
            bucket = await self._bucket()
            body = orjson.dumps(
                {"retentionRules": [{"type": "expire", "everySeconds": seconds}] if seconds else []}
            )
            status, answer = await self.http.request(
                "PATCH",
                f"/api/v2/buckets/{bucket['id']}",
                {},
                data=body,
                headers={"Content-Type": "application/json"},
            )
            if status != 200:
                raise self.http.failure(status, answer, "setting the bucket's retention")
            return await self.raw_retention()
        name, _, _ = await self._policy()
        # A shard group is dropped whole once all of it is older than the duration; a
        # group longer than the duration is refused, so pick InfluxDB's own defaults.
        hours = seconds // 3600
        shard = "1h" if 0 < hours < 48 else ("1d" if 0 < hours <= 24 * 183 else "7d")
        duration = f"{hours}h" if seconds else "INF"
        q = (
            f"ALTER RETENTION POLICY {quote_ident(name)} ON"
            f" {quote_ident(self.config.database)} DURATION {duration} SHARD DURATION {shard}"
        )
        await self.http.series(q, self.config.database)
        return await self.raw_retention()

    async def _policy(self) -> tuple[str, str, str]:
        """(name, duration, shard group duration) of the policy HomeIQ writes to."""
        q = f"SHOW RETENTION POLICIES ON {quote_ident(self.config.database)}"
        for series in await self.http.series(q):
            columns = series.get("columns") or []
            for row in series.get("values") or []:
                policy = dict(zip(columns, row, strict=False))
                wanted = self.config.retention_policy
                if (wanted and policy.get("name") == wanted) or (
                    not wanted and policy.get("default")
                ):
                    return (
                        str(policy["name"]),
                        str(policy["duration"]),
                        str(policy["shardGroupDuration"]),
                    )
        raise QueryFailed(
            f"InfluxDB database {self.config.database!r} has no retention policy"
            f" {self.config.retention_policy or '(default)'}"
        )

    async def _bucket(self) -> dict[str, Any]:
        params = {"name": self.config.bucket or "", "org": self.config.org or ""}
        status, answer = await self.http.request("GET", "/api/v2/buckets", params)
        if status != 200:
            raise self.http.failure(status, answer, "reading the bucket")
        buckets = orjson.loads(answer).get("buckets") or []
        if not buckets:
            raise QueryFailed(f"InfluxDB has no bucket {self.config.bucket!r}")
        bucket: dict[str, Any] = buckets[0]
        return bucket


def _duration(seconds: int) -> str:
    if not seconds:
        return "forever"
    return f"{seconds // 86_400}d" if seconds % 86_400 == 0 else f"{seconds // 3600}h"
