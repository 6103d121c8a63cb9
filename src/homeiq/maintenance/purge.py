"""The retention purge: raw events and rollup buckets older than their tier's keep period.

Per entity, a tier's cutoff is ``reference - keep`` (the entity's override or the
default, see :mod:`homeiq.settings.retention`); rows before it go. The reference is
``min(wall clock, newest stored event)``: a clock that jumps forward (an NTP fix, a
dead RTC battery) cannot purge everything, nor one that jumps back purge the future.

What is never purged:

* a raw event not yet folded into the rollups: before deleting an entity's events
  below a cutoff the purge asks the rollup maintainer to fold them
  (``fold_before``), then caps every cutoff at what is still pending
  (``pending_oldest``), so statistics over a purged range answer from the rollups;
* anything at or after the oldest spooled event (it is not even in the store yet);
* a tier for which ``forever`` is the keep.

The work is chunked and idempotent by cutoff: an interrupted purge (a kill -9, a stop)
leaves whole chunks done, and the next run deletes what is left. A dry run counts
what would go, per tier, and deletes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from homeiq.maintenance.purge_policy import RawPolicy
from homeiq.observability.metrics import Metrics
from homeiq.pipeline.spool import Spool
from homeiq.settings import Settings
from homeiq.settings.retention import TIERS, Keep, RetentionSettings, keep_us
from homeiq.sinks import registry
from homeiq.sinks.base import Deletion, Eraser, EventReader, Sink

log = logging.getLogger(__name__)

#: The rollup period of each rollup tier, as :class:`RollupStore` names them.
PERIODS = {"five_minute": "5m", "hourly": "1h", "daily": "1d"}
LABELS = {"raw": "raw", **PERIODS}


def wall_us() -> int:
    """The wall clock in microseconds."""
    return time.time_ns() // 1000


class Folder(Protocol):
    """What the purge needs of the rollup maintainer
    (:class:`~homeiq.maintenance.statistics.RollupMaintainer`)."""

    async def fold_before(self, entity_ids: Sequence[str], cutoff: int) -> None:
        """Fold every stored raw event of ``entity_ids`` before ``cutoff`` into the rollups."""

    def pending_oldest(self) -> int | None:
        """The oldest event time not yet folded (None: nothing pending)."""


class TierStore(Protocol):
    """What the purge needs of the rollup store
    (:class:`~homeiq.maintenance.rollups.RollupStore`)."""

    def count_before(self, period: str, cutoff_for: Callable[[str], int | None]) -> int:
        """Buckets of ``period`` before their entity's cutoff (None: kept)."""

    def purge(
        self, period: str, cutoff_for: Callable[[str], int | None], *, chunk_rows: int
    ) -> int:
        """Delete them, ``chunk_rows`` per transaction; how many went."""

    def mark_raw_purged(self, entity_id: str, before: int) -> None:
        """Remember that the entity's raw events before ``before`` are gone."""


@dataclass(slots=True)
class TierResult:
    """One tier's part of a purge: rows that went (or would), and their time range
    (``oldest`` only in a dry run of raw events; ``cutoff``: the latest cutoff)."""

    tier: str
    keep: str
    rows: int = 0
    oldest: int | None = None
    cutoff: int | None = None
    note: str = ""
    seconds: float = 0.0  # spent deleting (or counting) this tier


@dataclass(slots=True)
class PurgeReport:
    """What a purge did (or, ``dry_run``, would do)."""

    dry_run: bool
    reference: int | None
    tiers: list[TierResult] = field(default_factory=list)
    held_back: list[str] = field(default_factory=list)  # why cutoffs were moved earlier
    fold_s: float = 0.0  # spent folding raw events into the rollups first

    @property
    def rows(self) -> int:
        """Rows over every tier."""
        return sum(t.rows for t in self.tiers)


def describe_keep(settings: RetentionSettings, tier: str) -> str:
    """A tier's keep in words: the default, and how many overrides change it."""
    default: Keep = getattr(settings, f"{tier}_days")
    text = "forever" if default == "forever" else f"{default} days"
    changed = sum(1 for o in settings.overrides if getattr(o, f"{tier}_days") is not None)
    return text + (f" ({changed} override{'s' * (changed > 1)})" if changed else "")


class Purger:
    """Runs the purge of one store and its rollups (see the module docstring)."""

    def __init__(
        self,
        settings: RetentionSettings,
        *,
        eraser: Eraser,
        reader: EventReader,
        folder: Folder,
        rollups: TierStore,
        spool: Spool | None = None,
        raw_policy: RawPolicy | None = None,
        now_us: Callable[[], int] = wall_us,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.eraser = eraser
        self.reader = reader
        self.folder = folder
        self.rollups = rollups
        self.spool = spool
        self.raw_policy = raw_policy
        self.now_us = now_us
        self.metrics = metrics
        self._lock = asyncio.Lock()  # the schedule and a request never purge at once

    @classmethod
    def for_store(
        cls,
        settings: Settings,
        sink: Sink,
        reader: EventReader,
        *,
        folder: Folder,
        rollups: TierStore,
        spool: Spool | None = None,
        now_us: Callable[[], int] = wall_us,
        metrics: Metrics | None = None,
    ) -> Purger:
        """The purger of the configured store, deleting through its open ``sink`` (and,
        with ``HOMEIQ_RETENTION_INFLUXDB_MANAGE``, setting the store's own expiry)."""
        backend = registry.backend(settings)
        policy = None
        if settings.retention.influxdb_manage:
            retention = backend.raw_retention(sink)
            if retention is not None:
                policy = RawPolicy(retention, settings.retention)
        return cls(
            settings.retention,
            eraser=backend.eraser(sink),
            reader=reader,
            folder=folder,
            rollups=rollups,
            spool=spool,
            raw_policy=policy,
            now_us=now_us,
            metrics=metrics,
        )

    async def reference(self) -> int | None:
        """``min(wall clock, newest stored event)``; None when the store is empty."""
        newest = await self.reader.last_event_time()
        return None if newest is None else min(self.now_us(), newest)

    async def run(self, *, dry_run: bool = False) -> PurgeReport:
        """Purge every tier (or, ``dry_run``, count what would go)."""
        if dry_run or self.metrics is None:
            return await self._run(dry_run)
        try:
            report = await self._run(dry_run)
        except Exception:
            self.metrics.purge_runs.labels("failed").inc()
            raise
        self.metrics.purge_runs.labels("ok").inc()
        self.metrics.purge_last_success.set(time.time())
        for tier in report.tiers:
            self.metrics.purge_rows.labels(tier.tier).inc(tier.rows)
        return report

    async def _run(self, dry_run: bool) -> PurgeReport:
        async with self._lock:
            reference = await self.reference()
            report = PurgeReport(dry_run, reference)
            if reference is None:
                report.tiers = [
                    TierResult(LABELS[t], describe_keep(self.settings, t)) for t in TIERS
                ]
                return report
            ceiling = reference
            if self.spool is not None:
                spooled = await asyncio.to_thread(self.spool.oldest_time)
                if spooled is not None and spooled < ceiling:
                    ceiling = spooled
                    report.held_back.append("events waiting in the spool")
            report.tiers.append(await self._raw(reference, ceiling, report, dry_run))
            for tier, period in PERIODS.items():
                report.tiers.append(await self._rollup(tier, period, reference, ceiling, dry_run))
            if not dry_run and report.rows:
                log.info(
                    "purge: %s",
                    ", ".join(f"{t.rows} {t.tier}" for t in report.tiers if t.rows),
                )
            return report

    def _cutoff(self, reference: int, ceiling: int, keep: Keep) -> int | None:
        keep_for = keep_us(keep)
        return None if keep_for is None else min(reference - keep_for, ceiling)

    async def _raw(
        self, reference: int, ceiling: int, report: PurgeReport, dry_run: bool
    ) -> TierResult:
        result = TierResult("raw", describe_keep(self.settings, "raw"))
        # Entities by cutoff, and whether the store's own expiry removes them instead.
        groups: dict[tuple[int, bool], list[str]] = {}
        policy = self.raw_policy
        for entity_id in await self.eraser.entity_ids():
            cutoff = self._cutoff(reference, ceiling, self.settings.keeps_for(entity_id)["raw"])
            if cutoff is not None:
                expires = policy is not None and policy.covers(entity_id)
                groups.setdefault((cutoff, expires), []).append(entity_id)
        if policy is not None:
            result.note = await policy.apply(dry_run=dry_run)
        for (cutoff, expires), entity_ids in sorted(groups.items()):
            if not dry_run:
                started = time.perf_counter()
                await self.folder.fold_before(entity_ids, cutoff)
                report.fold_s += time.perf_counter() - started
                pending = self.folder.pending_oldest()
                if pending is not None and pending < cutoff:
                    cutoff = pending
                    if "events not yet rolled up" not in report.held_back:
                        report.held_back.append("events not yet rolled up")
            deletion = Deletion(tuple(entity_ids), before=cutoff)
            started = time.perf_counter()
            if dry_run:
                found = await self.eraser.count(deletion)
                if found:
                    result.oldest = _min(result.oldest, await self._oldest(entity_ids, cutoff))
            else:
                if expires:
                    found = 0  # folded above; InfluxDB's expiry deletes them, in its own time
                else:
                    found = await self.eraser.delete(deletion, chunk_rows=self.settings.chunk_rows)
                # Marked either way: a rebuild must not recompute buckets from a range the
                # store has emptied, or is about to (the expiry runs on its own schedule).
                for entity_id in entity_ids:
                    await asyncio.to_thread(self.rollups.mark_raw_purged, entity_id, cutoff)
            result.seconds += time.perf_counter() - started
            result.rows += found
            if found:
                result.cutoff = cutoff if result.cutoff is None else max(result.cutoff, cutoff)
        return result

    async def _oldest(self, entity_ids: Sequence[str], cutoff: int) -> int | None:
        """The oldest stored event of these entities (before ``cutoff``): a dry run's range."""
        oldest: int | None = None
        for entity_id in entity_ids:
            first = await self.reader.history(entity_id, None, cutoff, 1)
            if first:
                oldest = _min(oldest, first[0].time)
        return oldest

    async def _rollup(
        self, tier: str, period: str, reference: int, ceiling: int, dry_run: bool
    ) -> TierResult:
        result = TierResult(period, describe_keep(self.settings, tier))
        pending = self.folder.pending_oldest()
        if pending is not None:
            ceiling = min(ceiling, pending)  # a bucket still folding is not finished
        cutoffs: dict[str, int | None] = {}

        def cutoff_for(entity_id: str) -> int | None:
            if entity_id not in cutoffs:
                keep = self.settings.keeps_for(entity_id)[tier]
                cutoffs[entity_id] = self._cutoff(reference, ceiling, keep)
            return cutoffs[entity_id]

        if all(keep_us(k[tier]) is None for k in self._all_keeps()):
            return result  # forever for everyone: nothing to look at
        started = time.perf_counter()
        if dry_run:
            result.rows = await asyncio.to_thread(self.rollups.count_before, period, cutoff_for)
        else:
            result.rows = await asyncio.to_thread(
                self.rollups.purge, period, cutoff_for, chunk_rows=self.settings.chunk_rows
            )
        result.seconds = time.perf_counter() - started
        known = [c for c in cutoffs.values() if c is not None]
        result.cutoff = max(known) if known and result.rows else None
        return result

    def _all_keeps(self) -> list[dict[str, Keep]]:
        return [self.settings.keeps(), *(self.settings.keeps(o) for o in self.settings.overrides)]


def _min(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else min(a, b)
