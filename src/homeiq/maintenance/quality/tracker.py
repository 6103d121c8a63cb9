"""The quality tracker: follows every stored batch, keeps the day's measures, persists
them, publishes them as metrics and answers the API, the CLI and the alert engine.

Fed by :class:`~homeiq.pipeline.delivery.Delivery` (``on_stored``), so it measures the
same on every store. Per entity it holds one :class:`EntityState` (O(entities) memory,
nothing per event). Pipeline counters it does not see in the records (duplicates,
dead letters, excluded events) are read from their cumulative sources and kept as the
day's difference, plus what was saved before a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final

from homeiq.errors import HomeIQError
from homeiq.maintenance.quality.history import QualityHistory, day_of
from homeiq.maintenance.quality.measures import (
    FIELDS,
    DayCounts,
    EntityState,
    Expected,
    expected_in,
)
from homeiq.maintenance.quality.report import (
    EntityQuality,
    PipelineCounts,
    QualityReport,
    build_report,
    judge,
)
from homeiq.metadata.registry import Registry
from homeiq.metadata.store import MetadataStore
from homeiq.model import EventRecord, Gap, now_us
from homeiq.observability.logging import stop_task
from homeiq.observability.metrics import Metrics
from homeiq.selectors import KNOWN_DOMAINS

log = logging.getLogger(__name__)

LATE_AFTER_S: Final = 60.0  # a live event stored later than this after its time is late
# Silence shorter than this is never stale, whatever the usual interval: a sensor that
# reports every second and pauses a minute is not worth a user's attention.
STALE_MIN_S: Final = 900.0
SAVE_EVERY_S: Final = 60.0  # persist the day's counters (a crash loses at most this)
MIN_EVENTS: Final = 100  # the overall score waits for this many events today
FORGET_AFTER_DAYS: Final = 30  # entities silent this long leave the tracker


def no_exclusions() -> Mapping[str, int]:
    """The default ``excluded_counts``: nothing is excluded."""
    return {}


class QualityTracker:
    """Data quality per entity, per domain and overall, for the current UTC day.

    ``excluded_counts`` returns the ingest filter's cumulative counts of excluded events
    by domain since the process started (first called after construction, so it may
    reach a part built later); ``clock`` is now in microseconds. The duplicates and dead
    letters are read from ``metrics``, which count from process start too.
    """

    def __init__(
        self,
        registry: Registry,
        metadata: MetadataStore,
        metrics: Metrics,
        *,
        excluded_counts: Callable[[], Mapping[str, int]] = no_exclusions,
        clock: Callable[[], int] = now_us,
        late_after_s: float = LATE_AFTER_S,
        stale_min_s: float = STALE_MIN_S,
        save_every_s: float = SAVE_EVERY_S,
        min_events: int = MIN_EVENTS,
    ) -> None:
        self.registry = registry
        self.metadata = metadata
        self.metrics = metrics
        self.history = QualityHistory(metadata)
        self.excluded_counts = excluded_counts
        self.clock = clock
        self.late_after_s = late_after_s
        self.stale_min_s = stale_min_s
        self.save_every_s = save_every_s
        self.min_events = min_events
        self.states: dict[str, EntityState] = {}
        self.day = day_of(clock())
        self._carried = PipelineCounts()  # the day's counts saved before a restart
        # Cumulative counts when the day began; the sources count from process start, so
        # zero until the first midnight (and excluded_counts may name a part built later).
        self._base = PipelineCounts()
        self._gaps: list[Gap] = []
        self._finished: list[tuple[QualityReport, dict[str, dict[str, Any]]]] = []
        self._task: asyncio.Task[None] | None = None

    # -- following the store ------------------------------------------------------------

    def stored(self, records: Sequence[EventRecord]) -> None:
        """Follower of stored batches (``Delivery(on_stored=[...])``)."""
        now = self.clock()
        self._roll_day(now)
        late_after_us = int(self.late_after_s * 1e6)
        states = self.states
        for record in records:
            state = states.get(record.entity_id)
            if state is None:
                state = states[record.entity_id] = EntityState()
            state.observe(record, now, late_after_us)

    def expected(self, entity_id: str) -> Expected:
        """What the registry says the entity has now (device, area)."""
        return expected_in(self.registry, entity_id)

    # -- answers --------------------------------------------------------------------------

    def report(self, gaps: Sequence[Gap] | None = None) -> QualityReport:
        """Today's report as of now (``gaps``: the open gaps, else the last ones read)."""
        now = self.clock()
        self._roll_day(now)
        if gaps is not None:
            self._gaps = list(gaps)
        report = build_report(
            self.day,
            self.states,
            self.expected,
            self.pipeline(),
            self._gaps,
            now,
            self.stale_min_s,
            self.min_events,
        )
        return report

    def score(self) -> float | None:
        """The overall score today (0..100), None until ``min_events`` were stored.

        Builds the report (O(entities): a few milliseconds for thousands), with the open
        gaps as last read by the save loop."""
        return self.report().overall.score

    def entity(self, entity_id: str) -> EntityQuality | None:
        """One entity's measures now; None for an entity never seen."""
        state = self.states.get(entity_id)
        if state is None:
            return None
        return judge(entity_id, state, self.expected(entity_id), self.clock(), self.stale_min_s)

    def pipeline(self) -> PipelineCounts:
        """Today's duplicates, dead letters by reason and excluded events by domain."""
        now = self._cumulative()
        base, carried = self._base, self._carried
        return PipelineCounts(
            duplicates=carried.duplicates + now.duplicates - base.duplicates,
            dead_letters=_plus(carried.dead_letters, _minus(now.dead_letters, base.dead_letters)),
            excluded=_plus(carried.excluded, _minus(now.excluded, base.excluded)),
        )

    def _cumulative(self) -> PipelineCounts:
        rejected: dict[str, int] = {}
        for metric in self.metrics.registry.collect():
            if metric.name == "homeiq_events_rejected":
                for sample in metric.samples:
                    if sample.name.endswith("_total"):
                        rejected[sample.labels["reason"]] = int(sample.value)
        try:
            excluded = {str(k): int(v) for k, v in self.excluded_counts().items()}
        except Exception:  # the filter's bug must not stop quality from answering
            log.exception("excluded_counts failed; excluded events are not counted")
            excluded = {}
        return PipelineCounts(
            duplicates=int(self.metrics.value("homeiq_events_duplicate_total")),
            dead_letters=rejected,
            excluded=excluded,
        )

    # -- days -------------------------------------------------------------------------

    def _roll_day(self, now: int) -> None:
        """At a new UTC day: keep the finished day for saving, start counting afresh."""
        today = day_of(now)
        if today == self.day:
            return
        finished = build_report(
            self.day,
            self.states,
            self.expected,
            self.pipeline(),
            self._gaps,
            now,
            self.stale_min_s,
            self.min_events,
        )
        self._finished.append((finished, self._rows()))
        self.day = today
        self._carried = PipelineCounts()
        self._base = self._cumulative()
        forget_before = now - FORGET_AFTER_DAYS * 86_400_000_000
        for entity_id, state in list(self.states.items()):
            if state.newest_us is not None and state.newest_us < forget_before:
                del self.states[entity_id]
            else:
                state.day = DayCounts()
        if self._task is not None:
            log.info("data quality of %s: score %s", finished.day, finished.overall.score)

    def _rows(self) -> dict[str, dict[str, Any]]:
        return {entity_id: state.to_json() for entity_id, state in self.states.items()}

    # -- persistence --------------------------------------------------------------------

    def load(self) -> None:
        """Take up today's counters saved by a previous run (or the entity intervals of
        the last day saved), so a restart does not zero the day."""
        saved = self.history.load_day(self.day)
        if saved is not None:
            self.states = saved.states
            self._carried = saved.pipeline
            return
        last = self.history.last_day()
        before = self.history.load_day(last) if last is not None else None
        if before is not None:
            self.states = {e: replace(s, day=DayCounts()) for e, s in before.states.items()}

    def start(self) -> None:
        """Save and publish every ``save_every_s`` until :meth:`stop`."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="quality")

    async def stop(self) -> None:
        """Stop the loop and save the day as it is (metadata.db must still be open)."""
        await stop_task(self._task, log)
        self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.save_every_s)
            await self.flush()

    async def flush(self) -> None:
        """Read the open gaps, publish the metrics and save the day's rows."""
        try:
            gaps = await asyncio.to_thread(self.metadata.gaps)
            report = self.report(gaps)
            self.publish(report)
            while self._finished:  # finished days first; each leaves once it is saved
                old, rows = self._finished[0]
                await asyncio.to_thread(self.history.save, old, rows)
                self._finished.pop(0)
            await asyncio.to_thread(self.history.save, report, self._rows())
        except HomeIQError as exc:  # a full disk: the counters stay in memory, try later
            log.warning("data quality not saved: %s", exc)

    def publish(self, report: QualityReport) -> None:
        """Set the per-domain gauges (domains outside Home Assistant's list are ``other``)."""
        m = self.metrics
        for gauge in (m.quality_score, m.quality_completeness, m.quality_unavailable):
            gauge.clear()
        m.quality_stale_entities.clear()
        for group in [report.overall, *report.domains]:
            label = "all" if not group.name else _domain_label(group.name)
            if group.score is not None:
                m.quality_score.labels(label).set(group.score)
            for name in FIELDS:
                value = group.completeness[name]
                if value is not None:
                    m.quality_completeness.labels(label, name).set(value)
            if group.unavailable_share is not None:
                m.quality_unavailable.labels(label).set(group.unavailable_share)
            m.quality_stale_entities.labels(label).inc(group.stale_entities)
        m.quality_open_gaps.set(report.open_gaps)


def _domain_label(domain: str) -> str:
    return domain if domain in KNOWN_DOMAINS else "other"


def _plus(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    keys = set(a) | set(b)
    return {k: a.get(k, 0) + b.get(k, 0) for k in sorted(keys) if a.get(k, 0) + b.get(k, 0)}


def _minus(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    # A counter below its base restarted with the process: count it from zero.
    return {k: v - b.get(k, 0) if v >= b.get(k, 0) else v for k, v in a.items()}
