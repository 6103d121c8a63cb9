"""Data quality: today's measures overall, per domain and per entity, the worst
entities, and the daily history (docs/quality.md).

Answered from the tracker's memory (O(entities) per request) plus two small reads of
metadata.db (open gaps, history rows) in a worker thread.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from homeiq.api.auth import require
from homeiq.api.context import Host
from homeiq.api.errors import ApiError, error_responses
from homeiq.maintenance.quality import EntityQuality, GroupQuality
from homeiq.maintenance.quality.history import DayRow
from homeiq.pipeline.normalize import format_time_us

router = APIRouter(
    prefix="/api/v1/quality",
    tags=["quality"],
    dependencies=[Depends(require("read"))],
    responses=error_responses(401, 403, 413, 414, 422, 429, 500),
)

ENTITIES_MAX = 1000
EntityId = Annotated[
    str,
    Path(
        min_length=3,
        max_length=255,
        pattern=r"^[a-z0-9_]+\.[a-z0-9_]+$",
        examples=["sensor.kitchen_temperature"],
    ),
]


class Completeness(BaseModel):
    """Share of events carrying each critical field, among the entities the registry
    gives it (null: no such entity, or no events)."""

    context_id: float | None
    device_id: float | None
    area_id: float | None


class Counts(BaseModel):
    """Today's counters."""

    events: int
    live: int
    backfilled: int
    unavailable: int = Field(description="Events whose state is unavailable or unknown.")
    late: int = Field(description="Live events stored more than a minute after their time.")
    out_of_order: int = Field(description="Live events older than the entity's newest.")


class GroupOut(BaseModel):
    """Measures over a domain, or over every entity."""

    domain: str | None = Field(description="Null for the overall measures.")
    score: float | None = Field(description="0-100; null until there is enough data.")
    entities: int
    counts: Counts
    completeness: Completeness
    unavailable_share: float | None
    backfilled_share: float | None
    stale_entities: int
    flagged_entities: int
    excluded: int = Field(description="Events the include/exclude rules left out today.")


class EntityOut(BaseModel):
    """One entity's measures today."""

    entity_id: str
    score: float | None
    flags: list[str] = Field(description="Defects found: see docs/quality.md.")
    counts: Counts
    completeness: Completeness
    unavailable_share: float | None
    stale: bool
    silent_s: float | None = Field(description="Seconds since its newest live event.")
    usual_interval_s: float | None


class DayOut(BaseModel):
    """One day of the history."""

    day: str
    score: float | None
    events: int


class QualityOut(BaseModel):
    """Today's data quality."""

    day: str
    as_of: str
    overall: GroupOut
    duplicates: int = Field(description="Events the store already held (overall).")
    dead_letters: dict[str, int] = Field(description="Dead letters today, by reason.")
    dead_letter_rate: float | None
    open_gaps: int
    open_gap_s: float = Field(description="Seconds of the last 24 h inside open gaps.")
    domains: list[GroupOut]
    stale: list[EntityOut] = Field(description="Stale entities (at most `limit`).")
    worst: list[EntityOut] = Field(description="Flagged entities, worst score first.")
    next_cursor: str | None = Field(description="Pass as `after` for more of `worst`.")
    history: list[DayOut] = Field(description="The last `days` days, newest first.")


@router.get("", summary="Data quality today")
async def quality(
    host: Host,
    limit: Annotated[int, Query(ge=1, le=ENTITIES_MAX, description="Entities per list.")] = 20,
    after: Annotated[
        str | None, Query(min_length=1, max_length=300, description="`next_cursor` of a page.")
    ] = None,
    days: Annotated[int, Query(ge=0, le=400, description="Days of history.")] = 30,
) -> QualityOut:
    """Overall and per-domain measures, stale and worst entities, and the history."""
    tracker = host.quality
    gaps = await asyncio.to_thread(host.metadata.gaps)
    report = tracker.report(gaps)
    history = await asyncio.to_thread(tracker.history.days, limit=days) if days else []
    flagged = [e for e in report.worst() if e.flags]
    # The cursor is the last entity's sort key (score, then entity_id) as text that
    # sorts the same way; whatever comes after it is the next page.
    rest = [e for e in flagged if after is None or _cursor(e) > after]
    page, more = rest[:limit], len(rest) > limit
    stale = [e for e in report.entities if e.stale][:limit]
    return QualityOut(
        day=report.day,
        as_of=format_time_us(report.as_of_us),
        overall=_group(report.overall),
        duplicates=report.pipeline.duplicates,
        dead_letters=report.pipeline.dead_letters,
        dead_letter_rate=report.dead_letter_rate,
        open_gaps=report.open_gaps,
        open_gap_s=report.open_gap_s,
        domains=[_group(g) for g in report.domains],
        stale=[entity_out(e) for e in stale],
        worst=[entity_out(e) for e in page],
        next_cursor=_cursor(page[-1]) if more and page else None,
        history=[_day(d) for d in history],
    )


@router.get("/{entity_id}", summary="Data quality of one entity", responses=error_responses(404))
async def entity_quality(host: Host, entity_id: EntityId) -> EntityOut:
    """One entity's measures today; 404 for an entity HomeIQ has not seen."""
    found = host.quality.entity(entity_id)
    if found is None:
        raise ApiError(404, f"no quality measures for {entity_id}: HomeIQ has not seen it")
    return entity_out(found)


def _cursor(entity: EntityQuality) -> str:
    return f"{entity.score:08.2f}|{entity.entity_id}"


def _counts(group: GroupQuality | EntityQuality) -> Counts:
    c = group.counts
    return Counts(
        events=c.events,
        live=c.live,
        backfilled=c.backfilled,
        unavailable=c.unavailable,
        late=c.late,
        out_of_order=c.out_of_order,
    )


def _group(group: GroupQuality) -> GroupOut:
    return GroupOut(
        domain=group.name or None,
        score=group.score,
        entities=group.entities,
        counts=_counts(group),
        completeness=Completeness(**group.completeness),
        unavailable_share=group.unavailable_share,
        backfilled_share=group.backfilled_share,
        stale_entities=group.stale_entities,
        flagged_entities=group.flagged_entities,
        excluded=group.excluded,
    )


def entity_out(entity: EntityQuality) -> EntityOut:
    """The API's view of one entity's measures."""
    return EntityOut(
        entity_id=entity.entity_id,
        score=entity.score,
        flags=list(entity.flags),
        counts=_counts(entity),
        completeness=Completeness(**entity.completeness),
        unavailable_share=entity.unavailable_share,
        stale=entity.stale,
        silent_s=None if entity.silent_s is None else round(entity.silent_s, 3),
        usual_interval_s=(
            None if entity.usual_interval_s is None else round(entity.usual_interval_s, 3)
        ),
    )


def _day(row: DayRow) -> DayOut:
    return DayOut(day=row.day, score=row.score, events=row.events)
