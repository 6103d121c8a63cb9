"""Folding stored events into rollups as they come, and the watermark that says how far
that is durable.

The watermark (``rollup_folded`` in ``rollups.db``) says up to when an entity's raw
events are all in its buckets; the purge relies on it (:meth:`~homeiq.maintenance.statistics.
RollupMaintainer.fold_before`), so it only ever claims what is durable:

* a rebuild moves it to the end of what it read, if nothing before its start was left
  unfolded, in the transaction that saves the buckets, less any event that arrived
  while it read and is not in them yet;
* live folding moves it to the last event saved, only for an entity whose buckets came
  from a rebuild in this process and took every event since in order ("continuous"):
  after a restart the events folded in memory but not saved when the process died are
  not in the buckets, so a resumed entity's watermark stays where it was;
* an event older than the watermark (late, backfilled) moves it back at once, in
  rollups.db, before it is recomputed: a kill -9 before then leaves a watermark that
  says so, and the next ``fold_before`` reads it again.

One gap is the pipeline's: an event the store took in the instant before the process
died, before its followers were told, is in no bucket and may be under the watermark;
``homeiq rollups rebuild`` recomputes it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from homeiq.errors import HomeIQError
from homeiq.maintenance.rollups import PERIODS, Accumulator, RollupStore, align_up
from homeiq.model import EventRecord
from homeiq.sinks.base import EventReader

log = logging.getLogger("homeiq.maintenance.statistics")  # one logger for the rollups

REFRESH_S = 5.0
STALE = -1  # a floor to read again (floors are times after 1970: never negative)


class Folding:
    """What :class:`~homeiq.maintenance.statistics.RollupMaintainer` knows between
    passes: the entities folded live, the ones waiting for a recompute, the watermarks."""

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
        # Folded from a rebuild in this process, every event since in order.
        self._continuous: set[str] = set()
        # entity -> [watermark, first foldable time (the day after the raw purge)]
        self._marks: dict[str, list[int | None]] = {}
        self._floors_seen = store.raw_purges
        self._late_unsaved = 0
        self.passes = 0  # completed refreshes (tests wait on it)
        self.late_beyond_retention = 0  # since start; rollups.db keeps the total

    def _marks_of(self, entity_id: str) -> list[int | None]:
        """[watermark, first foldable time], cached; the floor is read again once the
        store recorded a raw purge (the purge tells the store, not this)."""
        if self._floors_seen != self.store.raw_purges:
            self._floors_seen = self.store.raw_purges
            for cached in self._marks.values():
                cached[1] = STALE
        marks = self._marks.get(entity_id)
        if marks is None or marks[1] == STALE:
            mark, purged = self.store.marks(entity_id)
            floor = None if purged is None else align_up(purged, 86400)
            if marks is None:
                marks = self._marks[entity_id] = [mark, floor]
            marks[1] = floor
        return marks

    def stored(self, records: Sequence[EventRecord]) -> None:
        """Take a batch the store took (called after every successful write)."""
        folding, dirty, changed = self._folding, self._dirty, self._changed
        waiting = self._waiting
        lower: dict[str, int] = {}
        for record in records:
            entity_id = record.entity_id
            try:
                mark, floor = self._marks_of(entity_id)
            except HomeIQError as exc:  # rollups.db unreadable now: recompute later
                log.warning("cannot resume the rollups of %s: %s", entity_id, exc)
                self._mark_dirty(record)
                continue
            if floor is not None and record.time < floor:
                # Its day's raw events were purged: recomputing would clobber exact
                # buckets with the few events left. Counted, not folded.
                self.late_beyond_retention += 1
                self._late_unsaved += 1
                continue
            if mark is not None and record.time < mark:
                lower[entity_id] = min(record.time, lower.get(entity_id, record.time))
                self._marks[entity_id][0] = record.time
            if entity_id in waiting:
                waiting[entity_id].append(record)
                continue
            accumulators = folding.get(entity_id)
            if accumulators is None and entity_id not in dirty:
                accumulators = self._resume_saved(entity_id)
            if accumulators is None or entity_id in dirty:
                self._mark_dirty(record)
                continue
            last = accumulators[0].last_time
            if last is not None and record.time <= last:  # out of order, or a repeat
                self._mark_dirty(record)
                continue
            for accumulator in accumulators:
                accumulator.add(record)
            changed.add(entity_id)
        if lower:
            self._lower(lower)

    def _lower(self, lower: dict[str, int]) -> None:
        """Say in rollups.db, now, that these entities have an event under their
        watermark: a crash before it is recomputed must not leave a watermark over it.
        Rare (late events only), one small transaction a batch."""
        try:
            self.store.replace_many([], lower=lower)
        except HomeIQError as exc:
            # The recompute will not move the watermark past it either (see rebuild).
            log.warning("cannot lower the rollup watermarks of late events: %s", exc)

    def _resume_saved(self, entity_id: str) -> tuple[Accumulator, ...] | None:
        """Go on folding where the saved buckets stopped (the first event of an entity
        since start-up): three indexed lookups instead of reading an hour of events."""
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

    def pending_oldest(self) -> int | None:
        """The oldest time of an event stored but not folded yet (entities waiting for
        a recompute, or stored while one reads): the purge keeps raw events from here."""
        waited = (r.time for records in self._waiting.values() for r in records)
        return min([*self._dirty.values(), *waited], default=None)

    def _resume(
        self,
        entity_id: str,
        accumulators: tuple[Accumulator, ...],
        read: set[int],
        continuous: bool,
    ) -> None:
        """Fold, on top of a recompute, the events stored while it read: the ones it did
        not see. One older than what it saw is out of order: recompute again later."""
        waited = self._waiting.pop(entity_id, [])
        if entity_id in self._dirty:
            return
        self._folding[entity_id] = accumulators
        if continuous:
            self._continuous.add(entity_id)
        for record in waited:
            last = accumulators[0].last_time
            if record.time in read:
                continue
            if last is not None and record.time <= last:
                self._mark_dirty(record)
                return
            for accumulator in accumulators:
                accumulator.add(record)
            self._changed.add(entity_id)

    def _mark_dirty(self, record: EventRecord) -> None:
        entity_id = record.entity_id
        self._folding.pop(entity_id, None)  # recomputed, then folded again
        self._continuous.discard(entity_id)
        known = self._dirty.get(entity_id)
        if known is None or record.time < known:
            self._dirty[entity_id] = record.time
