"""Keeping rollups current as events are written, rebuilding them, and folding what the
retention purge is about to delete.

:class:`RollupMaintainer` is told which entities got events (and the oldest time among
them) after every write, and every few seconds recomputes those entities' buckets from
the hour holding that oldest time. Recomputing whole buckets from the stored events
(rather than adding each event to a running sum) keeps them exact when events arrive
late or out of order, as backfill's do: an old event just moves the recomputation's
start back. It reads through the store's reader, so it works the same on every backend.

The folding itself, and the watermark the retention relies on, are
:mod:`homeiq.maintenance.folding`'s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from homeiq.errors import HomeIQError
from homeiq.maintenance.folding import REFRESH_S, Folding
from homeiq.maintenance.queries import Statistics, StatisticsLimits, statistics
from homeiq.maintenance.rollups import (
    FROM_FIRST,
    PERIODS,
    US,
    Accumulator,
    Change,
    RollupStore,
    align,
)
from homeiq.model import EventRecord, now_us
from homeiq.observability.logging import stop_task
from homeiq.sinks.base import EventReader

__all__ = [
    "RollupMaintainer",
    "Statistics",
    "StatisticsLimits",
    "rebuild_range",
    "statistics",
]

log = logging.getLogger(__name__)

ENTITIES_PER_READ = 50
DAY = 86400 * US
# The counter of late events older than the raw purge (not folded), in rollups.db.
LATE_BEYOND_RETENTION = "late_beyond_retention"


class RollupMaintainer(Folding):
    """Keeps rollups current as events are stored; recomputes what arrived out of order."""

    def __init__(
        self, reader: EventReader, store: RollupStore, *, refresh_s: float = REFRESH_S
    ) -> None:
        super().__init__(reader, store, refresh_s=refresh_s)
        self._task: asyncio.Task[None] | None = None

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
        saves: list[Change] = []
        folded: list[tuple[str, int, int]] = []
        for entity_id in changed:
            accumulators = self._folding.get(entity_id)
            if accumulators is None:
                continue
            for period, a in zip(PERIODS, accumulators, strict=True):
                buckets = a.take(until)
                if buckets:
                    saves.append((period, entity_id, buckets[0].start, None, buckets))
            last = accumulators[0].last_time
            if entity_id in self._continuous and last is not None:
                folded.append((entity_id, FROM_FIRST, last + 1))
                self._marks_of(entity_id)[0] = last + 1
        late, self._late_unsaved = self._late_unsaved, 0
        if saves or late:
            try:
                counters = {LATE_BEYOND_RETENTION: late} if late else None
                await asyncio.to_thread(
                    self.store.replace_many, saves, folded=folded, counters=counters
                )
            except BaseException:
                self._late_unsaved += late
                raise
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

    async def fold_before(self, entity_ids: Sequence[str], cutoff: int) -> None:
        """Make sure every raw event of ``entity_ids`` stored before ``cutoff`` is in
        their 5m, 1h and 1d buckets, computed from the raw events: what the retention
        calls before purging raw events. Reads only what was not folded since the last
        time: an entity folded continuously in this process with its watermark at or
        past ``cutoff`` costs nothing; another is recomputed from its watermark (from its
        first event when it has none), which also makes it continuous."""
        await self.refresh()  # late events first: they lower watermarks
        marks = await asyncio.to_thread(self.store.folded_through, entity_ids)
        by_start: dict[int, list[str]] = {}
        for entity_id in entity_ids:
            mark = marks.get(entity_id)
            if mark is not None and mark >= cutoff and entity_id in self._continuous:
                continue
            by_start.setdefault(FROM_FIRST if mark is None else mark, []).append(entity_id)
        for start, todo in sorted(by_start.items()):
            for at in range(0, len(todo), ENTITIES_PER_READ):
                chunk = todo[at : at + ENTITIES_PER_READ]
                await self.rebuild(chunk, start, keep_folding=True)
        left = self.pending_oldest()  # stored while this ran: recompute those too
        if left is not None and left < cutoff:
            await self.refresh()

    async def rebuild(
        self,
        entity_ids: Sequence[str],
        start: int,
        end: int | None = None,
        *,
        keep_folding: bool = False,
    ) -> int:
        """Recompute the buckets of ``entity_ids`` from the hour holding ``start`` (or,
        :data:`~homeiq.maintenance.rollups.FROM_FIRST`, from each one's first event)
        until ``end`` (default now) from the stored events, a UTC day at a time; returns
        how many buckets were written. Never from before the day after the entity's raw
        events were purged. With ``keep_folding`` the entities' live events are folded
        from here on."""
        until = now_us() if end is None else end
        groups: dict[int, list[str]] = {}
        firsts: list[tuple[str, int]] = []
        for entity_id in entity_ids:
            floor = self._marks_of(entity_id)[1]  # one indexed read, the first time
            if start > FROM_FIRST or floor is not None:
                first = align(start if floor is None else max(start, floor), 3600)
                groups.setdefault(first, []).append(entity_id)
            else:
                oldest = await self.reader.history(entity_id, None, None, 1)
                firsts.append((entity_id, oldest[0].time if oldest else until))
        if firsts:  # read together from the oldest: nothing is read before each's first
            groups.setdefault(align(min(t for _, t in firsts), 3600), []).extend(
                e for e, _ in firsts
            )
        written = 0
        for first, ids in groups.items():
            fold_start = FROM_FIRST if start <= FROM_FIRST else first
            written += await self._rebuild(
                ids, min(first, align(until, 3600)), until, keep_folding, fold_start
            )
        return written

    async def _rebuild(
        self, entity_ids: list[str], start: int, until: int, keep_folding: bool, fold_start: int
    ) -> int:
        if keep_folding:
            for entity_id in entity_ids:
                self._waiting.setdefault(entity_id, [])
        try:
            return await self._recompute(entity_ids, start, until, keep_folding, fold_start)
        except BaseException:
            for entity_id in entity_ids:  # not rebuilt: what waited makes it dirty again
                for record in self._waiting.pop(entity_id, []):
                    self._mark_dirty(record)
            raise

    async def _start_states(
        self, entity_ids: list[str], start: int, history: dict[str, list[EventRecord]]
    ) -> dict[str, tuple[Accumulator, ...]]:
        """Each entity's accumulators at ``start``: the state from the last event before
        it (or, where the raw events were purged, from the buckets, if they know a later
        one), and the day's bucket so far from the stored hours."""
        out: dict[str, tuple[Accumulator, ...]] = {}
        for entity_id in entity_ids:
            records = history.get(entity_id, [])
            before = records[0] if records and records[0].time < start else None
            if self._marks_of(entity_id)[1] is not None:
                kept = await asyncio.to_thread(self.store.state_before, entity_id, start)
                if kept is not None and (before is None or (kept.last_time or 0) > before.time):
                    before = EventRecord(
                        entity_id,
                        kept.last_time or kept.start,
                        kept.last_state,
                        kept.last_value,
                    )
            day: Accumulator | None = None
            if start % DAY:
                prefix = await asyncio.to_thread(self.store.day_prefix, entity_id, start)
                if prefix is not None:
                    day = Accumulator.resume(prefix, entity_id, 86400)
            out[entity_id] = (
                Accumulator(entity_id, 300, before),
                Accumulator(entity_id, 3600, before),
                day or Accumulator(entity_id, 86400, before),
            )
        return out

    async def _recompute(
        self, entity_ids: list[str], start: int, until: int, keep_folding: bool, fold_start: int
    ) -> int:
        written = 0
        accumulators: dict[str, tuple[Accumulator, ...]] = {}
        read: dict[str, set[int]] = {}
        w0 = start
        while True:
            w1 = min(align(w0, 86400) + DAY, until)
            history = await self.reader.history_many(
                entity_ids, w0, w1, include_start_state=w0 == start, attributes=False
            )
            if w0 == start:
                accumulators = await self._start_states(entity_ids, start, history)
            changes: list[Change] = []
            for entity_id in entity_ids:
                events = [r for r in history.get(entity_id, []) if r.time >= w0]
                read[entity_id] = {e.time for e in events}
                for period, a in zip(PERIODS, accumulators[entity_id], strict=True):
                    for event in events:
                        a.add(event)
                    buckets = a.take(w1, close=w1 < until)
                    first = align(w0, PERIODS[period])
                    changes.append((period, entity_id, first, w1 if w1 < until else None, buckets))
                    written += len(buckets)
            if w1 >= until:
                break
            await asyncio.to_thread(self.store.replace_many, changes)
            w0 = w1
        folded, continuous = [], set()
        for entity_id in entity_ids:
            # An event stored while this read, and not read, is in no bucket yet.
            waited = self._waiting.get(entity_id, [])
            through = min([until, *(r.time for r in waited if r.time not in read[entity_id])])
            folded.append((entity_id, fold_start, through))
            marks = self._marks_of(entity_id)
            mark, floor = marks[0], marks[1]
            if (
                fold_start <= FROM_FIRST
                or (mark is not None and mark >= fold_start)
                or (floor is not None and floor >= fold_start)
            ):
                # Before the commit: an event stored while it runs is checked against it.
                marks[0] = through if mark is None else max(mark, through)
                continuous.add(entity_id)
        await asyncio.to_thread(self.store.replace_many, changes, folded=folded)
        if keep_folding:
            for entity_id in entity_ids:
                self._resume(
                    entity_id, accumulators[entity_id], read[entity_id], entity_id in continuous
                )
        return written


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
