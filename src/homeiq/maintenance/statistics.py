"""Keeping rollups current as events are written, rebuilding them, and answering
statistics queries from them.

:class:`RollupMaintainer` is told which entities got events (and the oldest time among
them) after every write, and every few seconds recomputes those entities' buckets from
the hour holding that oldest time. Recomputing whole buckets from the stored events
(rather than adding each event to a running sum) keeps them exact when events arrive
late or out of order, as backfill's do: an old event just moves the recomputation's
start back. It reads through the store's reader, so it works the same on every backend.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from homeiq.errors import HomeIQError
from homeiq.maintenance.rollups import (
    PERIODS,
    Accumulator,
    Bucket,
    RollupStore,
    align,
    fill,
    merge,
)
from homeiq.model import EventRecord, now_us
from homeiq.observability.logging import stop_task
from homeiq.sinks.base import EventReader

log = logging.getLogger(__name__)

REFRESH_S = 5.0
ENTITIES_PER_READ = 50
STAT_PERIODS = {"5m": 300, "1h": 3600, "1d": 86400}


class RollupMaintainer:
    """Keeps rollups current as events are stored; recomputes what arrived out of order."""

    def __init__(
        self, reader: EventReader, store: RollupStore, *, refresh_s: float = REFRESH_S
    ) -> None:
        self.reader = reader
        self.store = store
        self.refresh_s = refresh_s
        self._folding: dict[str, tuple[Accumulator, ...]] = {}  # one per period
        self._changed: set[str] = set()
        self._dirty: dict[str, int] = {}  # entity -> oldest event time to recompute from
        # Entities being recomputed: their events wait here, then fold on top of it.
        self._waiting: dict[str, list[EventRecord]] = {}
        self._task: asyncio.Task[None] | None = None
        self.passes = 0  # completed refreshes (tests wait on it)

    def stored(self, records: Sequence[EventRecord]) -> None:
        """Take a batch the store took (called after every successful write)."""
        folding, dirty, changed = self._folding, self._dirty, self._changed
        waiting = self._waiting
        for record in records:
            entity_id = record.entity_id
            if entity_id in waiting:
                waiting[entity_id].append(record)
                continue
            accumulators = folding.get(entity_id)
            if accumulators is None and entity_id not in dirty:
                accumulators = self._resume_saved(entity_id)
            if accumulators is None or entity_id in dirty:
                known = dirty.get(entity_id)
                if known is None or record.time < known:
                    dirty[entity_id] = record.time
                continue
            last = accumulators[0].last_time
            if last is not None and record.time <= last:  # out of order, or a repeat
                del folding[entity_id]
                dirty[entity_id] = record.time
                continue
            for accumulator in accumulators:
                accumulator.add(record)
            changed.add(entity_id)

    def _resume_saved(self, entity_id: str) -> tuple[Accumulator, ...] | None:
        """Go on folding where the saved buckets stopped (the first event of an entity
        since start-up): two indexed lookups instead of reading an hour of events."""
        resumed = []
        for name, seconds in PERIODS.items():
            try:
                saved = self.store.before(name, entity_id, 2**62)
            except HomeIQError as exc:  # rollups.db unreadable now: recompute later
                log.warning("cannot resume the rollups of %s: %s", entity_id, exc)
                return None
            if saved is not None and saved.credited_to is None:
                return None  # saved before resuming was possible: recompute once
            resumed.append(Accumulator.resume(saved, entity_id, seconds))
        accumulators = tuple(resumed)
        self._folding[entity_id] = accumulators
        return accumulators

    def start(self) -> None:
        """Refresh every ``refresh_s`` until stopped."""
        self._task = asyncio.create_task(self._run(), name="rollups")

    async def stop(self) -> None:
        """Stop refreshing (one last refresh first, so nothing written is left out)."""
        await stop_task(self._task, log)
        self._task = None
        try:
            await self.refresh()
        except Exception as exc:
            log.warning(
                "the last rollup refresh failed at stop (%s): the rollups may miss the last"
                " seconds of events (homeiq rollups rebuild --since 1h recomputes them)",
                exc,
                exc_info=not isinstance(exc, HomeIQError),  # a traceback only for a bug
            )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
            except Exception:  # the store may be down: keep the work for the next pass
                log.warning("rollup refresh failed; retrying later", exc_info=True)

    async def refresh(self) -> int:
        """Save the buckets folded since the last pass and recompute dirty entities;
        returns how many entities were recomputed."""
        until = now_us()
        changed, self._changed = self._changed, set()
        saves = [
            (a.period_s, entity_id, a.take(until))
            for entity_id in changed
            if entity_id in self._folding
            for a in self._folding[entity_id]
        ]
        if saves:
            await asyncio.to_thread(self._save, saves)
        dirty, self._dirty = self._dirty, {}
        try:
            by_start: dict[int, list[str]] = {}
            for entity_id, oldest in dirty.items():
                by_start.setdefault(align(oldest, 3600), []).append(entity_id)
            for start, entity_ids in by_start.items():
                for first in range(0, len(entity_ids), ENTITIES_PER_READ):
                    chunk = entity_ids[first : first + ENTITIES_PER_READ]
                    await self.rebuild(chunk, start, keep_folding=True)
                    for entity_id in chunk:
                        dirty.pop(entity_id, None)
        finally:
            for entity_id, oldest in dirty.items():  # not done: try again next pass
                self._dirty[entity_id] = min(oldest, self._dirty.get(entity_id, oldest))
        self.passes += 1
        return len(by_start)

    def _save(self, saves: list[tuple[int, str, list[Bucket]]]) -> None:
        names = {seconds: name for name, seconds in PERIODS.items()}
        self.store.replace_many(
            [(names[p], entity_id, b[0].start, b) for p, entity_id, b in saves if b]
        )

    async def rebuild(
        self,
        entity_ids: Sequence[str],
        start: int,
        end: int | None = None,
        *,
        keep_folding: bool = False,
    ) -> int:
        """Recompute the buckets of ``entity_ids`` from the hour holding ``start`` until
        ``end`` (default now) from the stored events; returns how many buckets were
        written. With ``keep_folding`` the entities' live events are folded from here on."""
        start = align(start, 3600)
        until = now_us() if end is None else end
        if keep_folding:
            for entity_id in entity_ids:
                self._waiting.setdefault(entity_id, [])
        try:
            history = await self.reader.history_many(
                entity_ids, start, until, include_start_state=True, attributes=False
            )
        except BaseException:
            for entity_id in entity_ids:  # not rebuilt: what waited makes it dirty again
                for record in self._waiting.pop(entity_id, []):
                    self._mark_dirty(record)
            raise
        written = 0
        changes: list[tuple[str, str, int, Sequence[Bucket]]] = []
        for entity_id in entity_ids:
            records = history.get(entity_id, [])
            before = records[0] if records and records[0].time < start else None
            events = records[1:] if before is not None else records
            accumulators = tuple(Accumulator(entity_id, s, before) for s in PERIODS.values())
            for period, accumulator in zip(PERIODS, accumulators, strict=True):
                for event in events:
                    accumulator.add(event)
                buckets = accumulator.take(until)
                changes.append((period, entity_id, start, buckets))
                written += len(buckets)
            if keep_folding:
                self._resume(entity_id, accumulators, {e.time for e in events})
        await asyncio.to_thread(self.store.replace_many, changes)
        return written

    def _resume(
        self, entity_id: str, accumulators: tuple[Accumulator, ...], read: set[int]
    ) -> None:
        """Fold, on top of a recompute, the events stored while it read: the ones it did
        not see. One older than what it saw is out of order: recompute again later."""
        waited = self._waiting.pop(entity_id, [])
        if entity_id in self._dirty:
            return
        self._folding[entity_id] = accumulators
        for record in waited:
            last = accumulators[0].last_time
            if record.time in read:
                continue
            if last is not None and record.time <= last:
                del self._folding[entity_id]
                self._mark_dirty(record)
                return
            for accumulator in accumulators:
                accumulator.add(record)
            self._changed.add(entity_id)

    def _mark_dirty(self, record: EventRecord) -> None:
        known = self._dirty.get(record.entity_id)
        if known is None or record.time < known:
            self._dirty[record.entity_id] = record.time


async def rebuild_range(
    maintainer: RollupMaintainer,
    start: int,
    end: int,
    entity_ids: Sequence[str] | None = None,
) -> tuple[int, int]:
    """Rebuild the rollups of ``entity_ids`` (default: every entity with events since
    ``start``) from ``start`` on; returns (entities, buckets written)."""
    if entity_ids is None:
        span = max(1, (end - start) // 1_000_000 + 1)
        found = await maintainer.reader.activity(start, end, bucket_s=span, top=10**9)
        entity_ids = [e for e, _ in found.top_entities]
    written = 0
    for at in range(0, len(entity_ids), ENTITIES_PER_READ):
        chunk = entity_ids[at : at + ENTITIES_PER_READ]
        written += await maintainer.rebuild(chunk, start, end)
    return len(entity_ids), written


@dataclass(frozen=True, slots=True)
class Statistics:
    """Buckets of one entity over a range, quiet ones included."""

    entity_id: str
    period: str
    buckets: list[Bucket]


def statistics(
    store: RollupStore, entity_id: str, period: str, start: int, end: int, *, now: int
) -> Statistics:
    """Buckets of ``period`` (5m, 1h or 1d) over ``[start, end)`` from the rollups:
    never from the events. Days are UTC days merged from hours."""
    if period not in STAT_PERIODS:
        raise ValueError(f"period must be one of {', '.join(STAT_PERIODS)}")
    base = "1h" if period == "1d" else period
    seconds = PERIODS[base]
    first = align(start, STAT_PERIODS[period])
    stored = store.buckets(base, entity_id, first, end)
    carried = store.before(base, entity_id, first)
    buckets = list(fill(stored, carried, entity_id, seconds, first, min(end, now)))
    if period == "1d":
        buckets = merge(buckets, 86400)
    return Statistics(entity_id, period, buckets)
