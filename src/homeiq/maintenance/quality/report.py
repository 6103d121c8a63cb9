"""A quality report: per entity, per domain and overall, built from the measures.

Built the same way by the live tracker (API, metrics, alerts) and by ``homeiq quality``
from what was persisted, so both say the same thing about the same counters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from homeiq.maintenance.quality.measures import (
    DayCounts,
    EntityState,
    Expected,
    completeness,
    entity_flags,
    entity_score,
    share,
)
from homeiq.model import Gap

DAY_US: Final = 86_400_000_000


@dataclass(slots=True, frozen=True)
class EntityQuality:
    """One entity's measures today."""

    entity_id: str
    domain: str
    counts: DayCounts
    expected: Expected
    completeness: dict[str, float | None]
    unavailable_share: float | None
    stale: bool
    silent_s: float | None
    usual_interval_s: float | None
    score: float | None
    flags: tuple[str, ...]


@dataclass(slots=True)
class PipelineCounts:
    """Today's counters that belong to the pipeline, not to one entity."""

    duplicates: int = 0  # events the store already held (overall: Delivery counts no more)
    dead_letters: dict[str, int] = field(default_factory=dict)  # by reason
    excluded: dict[str, int] = field(default_factory=dict)  # by domain (the ingest filter)


@dataclass(slots=True, frozen=True)
class GroupQuality:
    """Measures over a set of entities (a domain, or all of them)."""

    name: str  # the domain, or "" for everything
    entities: int
    counts: DayCounts
    completeness: dict[str, float | None]
    unavailable_share: float | None
    backfilled_share: float | None
    stale_entities: int
    flagged_entities: int
    excluded: int
    score: float | None


@dataclass(slots=True, frozen=True)
class QualityReport:
    """Everything measured for one day, as of ``as_of_us``."""

    day: str
    as_of_us: int
    overall: GroupQuality
    domains: list[GroupQuality]
    entities: list[EntityQuality]  # entities with events today or stale, by entity_id
    pipeline: PipelineCounts
    dead_letter_rate: float | None
    open_gaps: int
    open_gap_s: float  # seconds of the last 24 h inside open gaps
    stale_min_s: float  # the stale floor the report was judged with

    def worst(self) -> list[EntityQuality]:
        """Scored entities, worst first (ties by entity_id)."""
        scored = [e for e in self.entities if e.score is not None]
        return sorted(scored, key=lambda e: (e.score, e.entity_id))

    def entity(self, entity_id: str) -> EntityQuality | None:
        """One entity's measures, None when it is not in today's report."""
        return next((e for e in self.entities if e.entity_id == entity_id), None)


def judge(
    entity_id: str, state: EntityState, expected: Expected, now_us: int, min_silence_s: float
) -> EntityQuality:
    """One entity's measures, score and flags as of ``now_us``."""
    stale = state.stale(now_us, min_silence_s)
    complete = completeness(state.day, expected)
    return EntityQuality(
        entity_id=entity_id,
        domain=entity_id.partition(".")[0],
        counts=state.day,
        expected=expected,
        completeness=complete,
        unavailable_share=share(state.day.unavailable, state.day.events),
        stale=stale,
        silent_s=state.silent_s(now_us),
        usual_interval_s=state.interval_s,
        score=entity_score(state, complete, stale),
        flags=entity_flags(state, complete, stale),
    )


def _group(name: str, members: Sequence[EntityQuality], excluded: int) -> GroupQuality:
    total = DayCounts()
    # Event-weighted over the entities expected to carry the field: [carrying, events].
    device, area = [0, 0], [0, 0]
    for m in members:
        c = m.counts
        total.add(c)
        if m.expected.device_id:
            device[0] += c.device_id
            device[1] += c.events
        if m.expected.area_id:
            area[0] += c.area_id
            area[1] += c.events
    complete: dict[str, float | None] = {
        "context_id": share(total.context_id, total.events),
        "device_id": share(*device),
        "area_id": share(*area),
    }
    scores = [m.score for m in members if m.score is not None]
    return GroupQuality(
        name=name,
        entities=len(members),
        counts=total,
        completeness=complete,
        unavailable_share=share(total.unavailable, total.events),
        backfilled_share=share(total.backfilled, total.events),
        stale_entities=sum(1 for m in members if m.stale),
        flagged_entities=sum(1 for m in members if m.flags),
        excluded=excluded,
        score=round(sum(scores) / len(scores), 2) if scores else None,
    )


def gap_seconds(gaps: Sequence[Gap], now_us: int) -> float:
    """Seconds of the last 24 hours that open gaps cover (overlaps counted once)."""
    start = now_us - DAY_US
    spans = sorted((max(g.start_us, start), min(g.end_us, now_us)) for g in gaps)
    covered, reach = 0, start
    for lo, hi in spans:
        lo = max(lo, reach)
        if hi > lo:
            covered += hi - lo
            reach = hi
    return covered / 1e6


def build_report(
    day: str,
    states: Mapping[str, EntityState],
    expected_of: Callable[[str], Expected],
    pipeline: PipelineCounts,
    gaps: Sequence[Gap],
    now_us: int,
    min_silence_s: float,
    min_events: int,
) -> QualityReport:
    """The report for ``day`` as of ``now_us``; the overall score needs ``min_events``."""
    judged = []
    for entity_id in sorted(states):
        state = states[entity_id]
        quality = judge(entity_id, state, expected_of(entity_id), now_us, min_silence_s)
        if state.day.events or quality.stale:
            judged.append(quality)
    by_domain: dict[str, list[EntityQuality]] = {}
    for quality in judged:
        by_domain.setdefault(quality.domain, []).append(quality)
    excluded = pipeline.excluded
    names = sorted(set(by_domain) | {d for d, n in excluded.items() if n})
    domains = [_group(d, by_domain.get(d, []), excluded.get(d, 0)) for d in names]
    overall = _group("", judged, sum(excluded.values()))
    dead = sum(pipeline.dead_letters.values())
    rate = share(dead, overall.counts.events + pipeline.duplicates + dead)
    covered = gap_seconds(gaps, now_us)
    score = overall.score
    if overall.counts.events < min_events or score is None:
        score = None
    else:
        # What the entities cannot show: events never stored (dead letters) and spans
        # the store is missing (open gaps), as shares of what there should be.
        score = round(score * (1.0 - (rate or 0.0)) * (1.0 - covered / 86_400), 2)
    overall = replace(overall, score=score)
    return QualityReport(
        day=day,
        as_of_us=now_us,
        overall=overall,
        domains=domains,
        entities=judged,
        pipeline=pipeline,
        dead_letter_rate=rate,
        open_gaps=len(gaps),
        open_gap_s=covered,
        stale_min_s=min_silence_s,
    )
