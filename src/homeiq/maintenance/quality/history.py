"""The daily quality history in metadata.db: what the tracker saves and reloads, and
what ``homeiq quality`` reads when HomeIQ is not running.

Rows (schema step ``_quality`` in :mod:`homeiq.metadata.schema`): ``quality_days`` holds
one row per day overall and one per domain (kept ``DAYS_KEEP`` days); ``quality_entities``
one per entity and day, with its counters and interval state (kept ``ENTITY_DAYS_KEEP``
days: a few thousand entities a day). Saving a day replaces that day's rows, so saving
every minute and at stop costs the same rows, not more.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import orjson

from homeiq.maintenance.quality.measures import DAY_FIELDS, DayCounts, EntityState
from homeiq.maintenance.quality.report import GroupQuality, PipelineCounts, QualityReport
from homeiq.metadata.store import MetadataStore

DAYS_KEEP: Final = 400  # a year of history and a month to compare with last year's
ENTITY_DAYS_KEEP: Final = 31


def day_of(time_us: int) -> str:
    """The UTC day (``YYYY-MM-DD``) of a time in microseconds."""
    return datetime.fromtimestamp(time_us / 1e6, UTC).date().isoformat()


@dataclass(slots=True, frozen=True)
class DayRow:
    """One saved day of one scope: the score and the measures behind it."""

    day: str
    scope: str  # "overall" or "domain"
    name: str  # "" overall, else the domain
    score: float | None
    events: int
    detail: dict[str, Any]
    saved_at: int


@dataclass(slots=True, frozen=True)
class SavedDay:
    """What was saved for one day: enough to rebuild its report offline."""

    day: str
    saved_at: int
    states: dict[str, EntityState]
    pipeline: PipelineCounts
    stale_min_s: float | None  # the running tracker's stale floor


def _group_detail(group: GroupQuality) -> dict[str, Any]:
    return {
        "entities": group.entities,
        "counts": asdict(group.counts),
        "completeness": group.completeness,
        "unavailable_share": group.unavailable_share,
        "backfilled_share": group.backfilled_share,
        "stale_entities": group.stale_entities,
        "flagged_entities": group.flagged_entities,
        "excluded": group.excluded,
    }


class QualityHistory:
    """Reads and writes the quality tables through the metadata store's connection."""

    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata

    def save(self, report: QualityReport, states: Mapping[str, dict[str, Any]]) -> None:
        """Replace ``report.day``'s rows with these (``states``: each entity's
        :meth:`EntityState.to_json`, made where the states live) and prune what is past
        keeping."""
        day, at = report.day, report.as_of_us
        overall = _group_detail(report.overall) | {
            "duplicates": report.pipeline.duplicates,
            "dead_letters": report.pipeline.dead_letters,
            "excluded_by_domain": report.pipeline.excluded,
            "dead_letter_rate": report.dead_letter_rate,
            "open_gaps": report.open_gaps,
            "open_gap_s": report.open_gap_s,
            "stale_min_s": report.stale_min_s,
        }
        rows = [("overall", "", report.overall, overall)]
        rows += [("domain", g.name, g, _group_detail(g)) for g in report.domains]
        scores = {e.entity_id: e.score for e in report.entities}
        oldest = _days_before(day, DAYS_KEEP)
        oldest_entity = _days_before(day, ENTITY_DAYS_KEEP)
        with self.metadata._writing() as conn:
            conn.execute("DELETE FROM quality_days WHERE day = ? OR day < ?", (day, oldest))
            conn.execute(
                "DELETE FROM quality_entities WHERE day = ? OR day < ?", (day, oldest_entity)
            )
            conn.executemany(
                "INSERT INTO quality_days VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (day, scope, name, g.score, g.counts.events, orjson.dumps(d).decode(), at)
                    for scope, name, g, d in rows
                ],
            )
            conn.executemany(
                "INSERT INTO quality_entities VALUES (?, ?, ?, ?, ?)",
                [
                    (day, eid, scores.get(eid), orjson.dumps(s).decode(), at)
                    for eid, s in states.items()
                ],
            )

    def last_day(self) -> str | None:
        """The newest day with a saved overall row."""
        with self.metadata._reading() as conn:
            row = conn.execute(
                "SELECT MAX(day) FROM quality_days WHERE scope = 'overall'"
            ).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def load_day(self, day: str) -> SavedDay | None:
        """The entity states and pipeline counters saved for ``day``; None if never saved."""
        with self.metadata._reading() as conn:
            head = conn.execute(
                "SELECT detail, saved_at FROM quality_days"
                " WHERE day = ? AND scope = 'overall' AND name = ''",
                (day,),
            ).fetchone()
            if head is None:
                return None
            rows = conn.execute(
                "SELECT entity_id, state FROM quality_entities WHERE day = ?", (day,)
            ).fetchall()
        detail: dict[str, Any] = orjson.loads(head[0])
        pipeline = PipelineCounts(
            duplicates=int(detail.get("duplicates") or 0),
            dead_letters={str(k): int(v) for k, v in (detail.get("dead_letters") or {}).items()},
            excluded={str(k): int(v) for k, v in (detail.get("excluded_by_domain") or {}).items()},
        )
        states = {str(eid): EntityState.from_json(orjson.loads(state)) for eid, state in rows}
        floor = detail.get("stale_min_s")
        return SavedDay(
            day, int(head[1]), states, pipeline, None if floor is None else float(floor)
        )

    def days(self, *, limit: int = 30, name: str | None = None) -> list[DayRow]:
        """The newest saved days, newest first: overall, or one domain's with ``name``."""
        scope, key = ("overall", "") if name is None else ("domain", name)
        with self.metadata._reading() as conn:
            rows = conn.execute(
                "SELECT day, scope, name, score, events, detail, saved_at FROM quality_days"
                " WHERE scope = ? AND name = ? ORDER BY day DESC LIMIT ?",
                (scope, key, limit),
            ).fetchall()
        return [
            DayRow(str(d), str(s), str(n), sc, int(ev), orjson.loads(det), int(at))
            for d, s, n, sc, ev, det, at in rows
        ]


def _days_before(day: str, days: int) -> str:
    return (date.fromisoformat(day) - timedelta(days=days)).isoformat()


def counts_of(detail: Mapping[str, Any]) -> DayCounts:
    """The summed counters in a saved row's detail."""
    raw = detail.get("counts") or {}
    return DayCounts(**{k: int(v) for k, v in raw.items() if k in DAY_FIELDS})
