"""Cleanups: which stored events a request means, a dry run, a recorded run, a resume.

A request names entities (ids or globs), a source, a time before which events go, or
"what the current exclude rules would have left out". :func:`plan` resolves it against
the entities the store holds into one :class:`~homeiq.sinks.base.Deletion` (explicit
entity ids, a time bound, record sources), which the store's eraser counts and deletes
in chunks. Every run is recorded (:mod:`.history`) before it deletes, with that exact
deletion, so a run killed part-way is finished by the next one (:func:`resume_interrupted`):
deleting again what is already gone changes nothing.

Sources: ``live``, ``backfill``, ``import`` and ``snapshot`` select by the record's
source; ``simulator`` selects every event of the entities seen only from HomeIQ's
simulator (:mod:`.provenance`).
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import orjson

from homeiq.errors import HomeIQError
from homeiq.maintenance.cleanup.history import DONE, FAILED, CleanupHistory, CleanupRun
from homeiq.maintenance.cleanup.provenance import Provenance
from homeiq.metadata.store import MetadataStore
from homeiq.model import Source
from homeiq.observability.metrics import Metrics
from homeiq.pipeline.filter import IngestFilter
from homeiq.pipeline.normalize import format_time_us
from homeiq.selectors import EntitySelector
from homeiq.settings import Settings
from homeiq.settings.cleanup import CleanupRule
from homeiq.sinks.base import Deletion, Eraser, EventQuery, EventReader

log = logging.getLogger(__name__)

# Rows one delete transaction removes: small enough that the writer's batches queued
# behind a chunk wait milliseconds, as Home Assistant's recorder purges.
CHUNK_ROWS = 5_000
SCHEDULE = "schedule"
RECORD_SOURCES = {s.name.lower(): s for s in Source}


@dataclass(frozen=True, slots=True)
class CleanupRequest:
    """What a user (or a saved rule) asked to delete; see the module docstring."""

    entities: tuple[str, ...] = ()
    source: str | None = None
    before: int | None = None
    excluded: bool = False

    def describe(self) -> str:
        """The request as the history shows it."""
        parts = [" ".join(self.entities)] if self.entities else []
        if self.excluded:
            parts.append("excluded by the ingest rules")
        if self.source is not None:
            parts.append(f"source={self.source}")
        if self.before is not None:
            parts.append(f"before={format_time_us(self.before)}")
        return " ".join(parts) or "nothing"


def who_am_i() -> str:
    """The OS user running this process (its uid when the system has no name for it)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def spec_of(deletion: Deletion) -> str:
    """A deletion as JSON, kept with its run so an interrupted run can be finished."""
    return orjson.dumps(
        {
            "entity_ids": list(deletion.entity_ids),
            "before": deletion.before,
            "after": deletion.after,
            "sources": [int(s) for s in deletion.sources],
        }
    ).decode()


def deletion_of(spec: str) -> Deletion:
    """The deletion :func:`spec_of` wrote."""
    data = orjson.loads(spec)
    return Deletion(
        tuple(data["entity_ids"]), data["before"], data["after"], tuple(data["sources"])
    )


async def _device_class(reader: EventReader, entity_id: str) -> str | None:
    page = await reader.events(EventQuery(entity_ids=(entity_id,), newest_first=True, limit=1))
    return page.records[0].device_class if page.records else None


async def excluded_entities(
    candidates: Iterable[str], rules: IngestFilter, reader: EventReader | None
) -> list[str]:
    """The entities the ingest rules would leave out now. Where a device-class rule
    could decide, an entity's device class is its newest stored event's."""
    by_class = bool(rules.include.device_classes or rules.exclude.device_classes)
    found = []
    for entity_id in candidates:
        device_class = None
        if by_class and reader is not None:
            device_class = await _device_class(reader, entity_id)
        if not rules.keep(entity_id, device_class):
            found.append(entity_id)
    return found


async def plan(
    request: CleanupRequest,
    eraser: Eraser,
    metadata: MetadataStore,
    *,
    rules: IngestFilter | None = None,
    reader: EventReader | None = None,
) -> Deletion:
    """The one deletion ``request`` means, its entities resolved against the store."""
    candidates = await eraser.entity_ids()
    if request.entities:
        chosen = EntitySelector(entity_globs=tuple(request.entities))
        candidates = [e for e in candidates if chosen.matches(e)]
    if request.source == "simulator":
        simulated = await asyncio.to_thread(Provenance(metadata).simulator_only)
        candidates = [e for e in candidates if e in simulated]
    if request.excluded:
        candidates = [] if rules is None else await excluded_entities(candidates, rules, reader)
    source = RECORD_SOURCES.get(request.source or "")
    return Deletion(
        tuple(sorted(candidates)),
        before=request.before,
        sources=(source,) if source is not None else (),
    )


async def count_by_entity(eraser: Eraser, deletion: Deletion) -> dict[str, int]:
    """What a run would delete, per entity (entities with nothing to delete left out)."""
    counts = {}
    for entity_id in deletion.entity_ids:
        one = Deletion((entity_id,), deletion.before, deletion.after, deletion.sources)
        found = await eraser.count(one)
        if found:
            counts[entity_id] = found
    return counts


async def execute(
    deletion: Deletion,
    rule: str,
    who: str,
    eraser: Eraser,
    history: CleanupHistory,
    *,
    chunk_rows: int = CHUNK_ROWS,
    metrics: Metrics | None = None,
) -> CleanupRun:
    """Record, delete, record again; the finished run. A failure is recorded as such
    and raised; a cancellation (shutdown) leaves the run to be resumed."""
    planned = await eraser.count(deletion) if deletion.entity_ids else 0
    run_id = await asyncio.to_thread(history.start, who, rule, spec_of(deletion), planned)
    return await _finish(run_id, deletion, 0, eraser, history, chunk_rows, metrics, who)


async def _finish(
    run_id: int,
    deletion: Deletion,
    already: int,
    eraser: Eraser,
    history: CleanupHistory,
    chunk_rows: int,
    metrics: Metrics | None,
    who: str,
) -> CleanupRun:
    deleted = 0
    try:
        if deletion.entity_ids:
            deleted = await eraser.delete(deletion, chunk_rows=chunk_rows)
    except HomeIQError as exc:
        await asyncio.to_thread(history.finish, run_id, FAILED, already, str(exc))
        raise
    await asyncio.to_thread(history.finish, run_id, DONE, already + deleted)
    if metrics is not None:
        metrics.cleanup_deleted.labels("schedule" if who == SCHEDULE else "cli").inc(deleted)
    run = await asyncio.to_thread(history.get, run_id)
    assert run is not None  # written just above
    return run


async def resume_interrupted(
    eraser: Eraser,
    history: CleanupHistory,
    *,
    chunk_rows: int = CHUNK_ROWS,
    metrics: Metrics | None = None,
) -> list[CleanupRun]:
    """Finish every run a dead process left ``running``: the same deletion again. What
    it had deleted before it died is estimated as planned minus what is left."""
    resumed = []
    for run in await asyncio.to_thread(history.interrupted):
        deletion = deletion_of(run.spec)
        left = await eraser.count(deletion) if deletion.entity_ids else 0
        before = max(0, (run.planned or 0) - left)
        detail = f"resumed: process {run.pid} was interrupted"
        if not await asyncio.to_thread(history.take_over, run, before, detail):
            continue  # another resume (the schedule, a start) is finishing it
        log.warning("cleanup run %d (%s) was interrupted; finishing it", run.id, run.rule)
        done = await _finish(
            run.id, deletion, before, eraser, history, chunk_rows, metrics, run.who
        )
        resumed.append(done)
    return resumed


def rule_request(rule: CleanupRule, now_s: float) -> CleanupRequest:
    """The request a saved rule makes at ``now_s`` (its ``older_than`` from now)."""
    span = rule.older_than_s
    before = None if span is None else int((now_s - span) * 1_000_000)
    return CleanupRequest(tuple(rule.entities), rule.source, before)


async def run_saved_rules(
    settings: Settings,
    eraser: Eraser,
    metadata: MetadataStore,
    *,
    metrics: Metrics | None = None,
    chunk_rows: int = CHUNK_ROWS,
    now_s: float | None = None,
) -> list[CleanupRun]:
    """The daily job: finish interrupted runs, then run every saved rule
    (``HOMEIQ_CLEANUP_RULES``), each recorded with who = ``schedule``."""
    history = CleanupHistory(metadata)
    runs = await resume_interrupted(eraser, history, chunk_rows=chunk_rows, metrics=metrics)
    now = time.time() if now_s is None else now_s
    for rule in settings.cleanup.rules:
        request = rule_request(rule, now)
        deletion = await plan(request, eraser, metadata)
        run = await execute(
            deletion, rule.describe(), SCHEDULE, eraser, history,
            chunk_rows=chunk_rows, metrics=metrics,
        )  # fmt: skip
        log.info("cleanup rule %r deleted %d events", run.rule, run.deleted)
        runs.append(run)
    return runs


def totals(counts: Mapping[str, int]) -> int:
    """The sum of per-entity counts."""
    return sum(counts.values())
