"""Statistics from the rollups (never from the raw events), and rebuilding them.

Numeric entities get count, mean, min, max, last and the time-weighted mean per
bucket; every entity gets the time spent in each state (a light's on-time, a climate
mode, a binary sensor), which Home Assistant's own long-term statistics do not keep.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from homeiq.api.auth import require
from homeiq.api.context import Host, Rollups
from homeiq.api.errors import ApiError, JSONBody, error_responses
from homeiq.api.routes.events import Text, checked_entity_ids
from homeiq.api.times import (
    ENTITY_EXAMPLE,
    MIN_TIME_US,
    TIME_EXAMPLE,
    TIME_HELP,
    Iso,
    now_us,
    or_now,
    to_us,
)
from homeiq.errors import RangePurged
from homeiq.maintenance.queries import StatisticsLimits, statistics
from homeiq.maintenance.rollups import Bucket
from homeiq.maintenance.statistics import rebuild_range
from homeiq.pipeline.normalize import format_time_us

router = APIRouter(
    prefix="/api/v1/statistics",
    tags=["statistics"],
    dependencies=[Depends(require("read"))],
    responses=error_responses(400, 401, 403, 409, 413, 414, 422, 429, 500),
)
admin = APIRouter(
    prefix="/api/v1/admin/rollups",
    tags=["admin"],
    dependencies=[Depends(require("admin"))],
    responses=error_responses(400, 401, 403, 413, 414, 422, 429, 500),
)

ENTITIES_MAX = 20
# Per answer, all entities together: one entity gets 35 days of 5-minute buckets or 13
# months of hours, ten entities a tenth of that each.
BUCKETS_MAX = 10_000
PERIOD_S = {"5m": 300, "1h": 3600, "1d": 86400}


class BucketOut(BaseModel):
    """One bucket of one entity."""

    start: str
    count: int = Field(description="Events in the bucket.")
    mean: float | None = Field(description="Mean of the numeric values reported.")
    min: float | None
    max: float | None
    last: float | None = Field(description="Last numeric value (null if not numeric).")
    last_state: str | None
    time_weighted_mean: float | None = Field(
        description="Mean of the value over the time it was numeric in the bucket."
    )
    state_seconds: dict[str, float] = Field(description="Seconds spent in each state.")


class StatisticsOut(BaseModel):
    """Buckets per entity; buckets without events carry the previous state."""

    period: Literal["5m", "1h", "1d"]
    start: str
    end: str
    entities: dict[str, list[BucketOut]]


def bucket_out(b: Bucket) -> dict[str, Any]:
    """The JSON shape of a bucket."""
    return {
        "start": format_time_us(b.start),
        "count": b.count,
        "mean": b.mean,
        "min": b.min,
        "max": b.max,
        "last": b.last_value,
        "last_state": b.last_state,
        "time_weighted_mean": b.time_weighted_mean,
        "state_seconds": b.state_seconds,
    }


@router.get("", response_model=StatisticsOut)
async def get_statistics(
    rollups: Rollups,
    host: Host,
    entity_id: Annotated[
        list[Text], Query(min_length=1, max_length=ENTITIES_MAX, examples=[[ENTITY_EXAMPLE]])
    ],
    start: Annotated[Iso, Query(description=TIME_HELP, examples=[TIME_EXAMPLE])],
    end: Annotated[Iso | None, Query(description=f"{TIME_HELP} Default: now.")] = None,
    period: Literal["5m", "1h", "1d"] = "1h",
) -> JSONBody:
    """Bucketed statistics of one or more entities over ``[start, end)``.

    About 10,000 buckets at most per answer, all entities together: when the range holds
    more, its start moves forward and the answer's ``start`` says where; ask again with
    ``end`` set to that ``start`` for the older part.

    409 ``range_purged`` when the period's buckets of the range were purged by the
    retention (raw events purged do not matter: statistics never read them); the message
    names the keep period, where the tier starts, and the coarser period that answers."""
    now = now_us()
    first = to_us(start, "start")
    last = min(or_now(to_us(end, "end"), now), now)
    assert first is not None
    entities = checked_entity_ids(entity_id)
    per_entity = BUCKETS_MAX // len(entities)
    # An older start moves forward (the answer says where).
    first = max(first, last - (per_entity - 1) * PERIOD_S[period] * 1_000_000, MIN_TIME_US)
    last = max(last, first)  # an empty range (or one in the future) holds nothing
    # The retention's keep-period settings, named in the 409 (wired by the runtime).
    limits: StatisticsLimits = getattr(host, "statistics_limits", None) or StatisticsLimits()
    out: dict[str, list[dict[str, Any]]] = {}
    for entity in entities:
        try:
            found = await asyncio.to_thread(
                statistics, rollups, entity, period, first, last, now=now, limits=limits
            )
        except RangePurged as exc:
            raise ApiError(409, str(exc), code="range_purged") from exc
        out[entity] = [bucket_out(b) for b in found.buckets]
    return JSONBody(
        {
            "period": period,
            "start": format_time_us(first),
            "end": format_time_us(last),
            "entities": out,
        }
    )


class RebuildIn(BaseModel):
    """What to rebuild: every entity with events since ``start``, or the ones named."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"start": TIME_EXAMPLE}]}
    )

    start: Iso = Field(description=TIME_HELP, examples=[TIME_EXAMPLE])
    entity_ids: list[Text] | None = Field(
        default=None, max_length=1000, examples=[[ENTITY_EXAMPLE]]
    )


class RebuildOut(BaseModel):
    """What was rebuilt."""

    entities: int
    buckets: int


@admin.post("/rebuild", response_model=RebuildOut)
async def rebuild(body: RebuildIn, host: Host) -> dict[str, Any]:
    """Recompute the rollups from ``start`` until now from the stored events."""
    first = to_us(body.start, "start")
    now = now_us()
    assert first is not None
    if first >= now:  # nothing stored after now: nothing to rebuild
        return {"entities": 0, "buckets": 0}
    named = None if body.entity_ids is None else list(checked_entity_ids(body.entity_ids))
    entities, written = await rebuild_range(host.rollup_maintainer, first, now, named)
    return {"entities": entities, "buckets": written}
