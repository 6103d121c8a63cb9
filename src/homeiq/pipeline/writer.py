"""The one writer: takes messages from the queue, normalizes and enriches them, and
hands them to :class:`~homeiq.pipeline.delivery.Delivery` in batches bounded by size
and age.

Batching, the ingest filter (:mod:`~homeiq.pipeline.filter`: excluded events are
counted and dropped before normalization), dead letters for invalid messages and the
durable watermark live here;
retries, the circuit breaker and the outage spool live in the delivery wrapper. A batch
is delivered while the next is being normalized, so the store and the CPU overlap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from homeiq.errors import HomeIQError, InvalidEvent
from homeiq.metadata.store import MetadataStore
from homeiq.model import DeadLetter, EventRecord, Source
from homeiq.observability.metrics import Metrics
from homeiq.pipeline.deadletters import dead_letter
from homeiq.pipeline.delivery import Delivery
from homeiq.pipeline.filter import IngestFilter
from homeiq.pipeline.normalize import Normalizer
from homeiq.pipeline.queue import EventQueue, Incoming

log = logging.getLogger(__name__)

# Batches written while the next is being built. Two keep a writer process busy while
# the event loop normalizes; the sink runs them in order (one worker), and writes are
# idempotent, so a retried batch landing after its successor changes nothing.
MAX_BATCHES_IN_FLIGHT = 2

__all__ = ["MAX_BATCHES_IN_FLIGHT", "Watermark", "Writer"]


class Writer:
    """Drains an :class:`EventQueue` into a :class:`Sink`."""

    def __init__(
        self,
        queue: EventQueue,
        delivery: Delivery,
        metadata: MetadataStore,
        normalizer: Normalizer,
        metrics: Metrics,
        *,
        batch_max_events: int,
        batch_max_age_s: float,
        ingest_filter: IngestFilter | None = None,
    ) -> None:
        """``ingest_filter``: the include/exclude rules every event passes (None: all
        stored), here so that live, snapshot and backfill events are filtered alike."""
        self.queue = queue
        self.ingest_filter = ingest_filter
        self.delivery = delivery
        self.dead_letters = delivery.dead_letters
        self.watermark = Watermark(metadata)
        self.metadata = metadata
        self.normalizer = normalizer
        self.metrics = metrics
        self.batch_max_events = batch_max_events
        self.batch_max_age_s = batch_max_age_s
        self._stopping = asyncio.Event()
        self._in_flight: deque[asyncio.Task[None]] = deque()
        self._received = 0

    def excluded_counts(self) -> Mapping[str, int]:
        """Events the ingest rules left out since start, by domain (empty without rules):
        the callable data quality reads."""
        return {} if self.ingest_filter is None else self.ingest_filter.counts()

    def stop(self) -> None:
        """Ask :meth:`run` to write what is queued and return."""
        self._stopping.set()

    async def run(self) -> None:
        """Batch and write until stopped and the queue is empty."""
        try:
            while not (self._stopping.is_set() and self.queue.empty()):
                records, letters = await self._collect()
                if records or letters:
                    if len(self._in_flight) >= MAX_BATCHES_IN_FLIGHT:
                        await self._in_flight.popleft()
                    seq = self.watermark.begin(records)
                    self._in_flight.append(asyncio.create_task(self._flush(seq, records, letters)))
        finally:
            while self._in_flight:
                await self._in_flight.popleft()

    async def _collect(self) -> tuple[list[EventRecord], list[DeadLetter]]:
        """Gather one batch: up to batch_max_events, or whatever came within its age."""
        records: list[EventRecord] = []
        letters: list[DeadLetter] = []
        deadline = time.monotonic() + self.batch_max_age_s
        while len(records) < self.batch_max_events:
            try:
                item = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                if self._stopping.is_set():
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                waited = await self._get_within(remaining)
                if waited is None:
                    break
                item = waited
            self._take(item, records, letters)
        # Counted once a batch: a prometheus increment takes a lock, too dear per event.
        self.metrics.events_received.inc(self._received)
        self._received = 0
        if self.ingest_filter is not None:
            self.ingest_filter.publish()
        return records, letters

    async def _get_within(self, seconds: float) -> Incoming | DeadLetter | None:
        get = asyncio.ensure_future(self.queue.get())
        stop = asyncio.ensure_future(self._stopping.wait())
        done, _ = await asyncio.wait({get, stop}, timeout=seconds, return_when="FIRST_COMPLETED")
        stop.cancel()
        if get in done:
            return get.result()
        get.cancel()
        try:
            await get
        except asyncio.CancelledError:
            return None
        # The get won the race with its own cancellation: keep the item.
        return get.result()

    def _take(
        self, item: Incoming | DeadLetter, records: list[EventRecord], letters: list[DeadLetter]
    ) -> None:
        if isinstance(item, DeadLetter):
            letters.append(item)
            return
        message = item.message
        if isinstance(message, str | bytes):  # a raw frame from the reader's fast path
            try:
                parsed = orjson.loads(message)
            except orjson.JSONDecodeError as exc:
                letters.append(dead_letter("invalid_json", str(exc), message))
                return
            frame = message.encode() if isinstance(message, str) else message
            for one in parsed if isinstance(parsed, list) else (parsed,):
                self._take_message(one, item.source, records, letters, frame)
        else:
            self._take_message(message, item.source, records, letters)

    def _take_message(
        self,
        message: Any,
        source: Source,
        records: list[EventRecord],
        letters: list[DeadLetter],
        frame: bytes | None = None,
    ) -> None:
        self._received += 1
        if self.ingest_filter is not None and not self.ingest_filter.admit_message(message):
            return  # excluded: counted by the filter, never stored nor dead-lettered
        try:
            record = self.normalizer.message(message, source)
        except InvalidEvent as exc:
            letters.append(self._letter(exc.reason, exc.detail, message, frame=frame))
            return
        except Exception as exc:  # a bug must cost one message, never the pipeline
            log.exception("normalizing a message failed")
            detail = f"{type(exc).__name__} while normalizing"
            letters.append(self._letter("normalize_failed", detail, message, frame=frame))
            return
        if record.dropped_attributes_bytes:
            # The state is stored without its attributes; the full message is kept too.
            letters.append(
                self._letter(
                    "attributes_too_large",
                    f"{record.dropped_attributes_bytes} bytes of attributes exceed the cap;"
                    " state stored without them",
                    message,
                    record.entity_id,
                )
            )
        records.append(record)

    def _letter(
        self,
        reason: str,
        detail: str,
        message: object,
        entity_id: str | None = None,
        *,
        frame: bytes | None = None,
    ) -> DeadLetter:
        if entity_id is None:
            entity_id = _entity_of(message)
        return dead_letter(reason, detail, message, raw=frame, entity_id=entity_id)

    async def _flush(self, seq: int, records: list[EventRecord], letters: list[DeadLetter]) -> None:
        try:
            if records:
                letters = letters + await self.delivery.deliver(records)
        finally:
            # Kept even when delivery failed; letters an earlier write could not keep
            # (metadata.db full) are retried here too. Never raises for a store failure.
            if letters or self.dead_letters.pending:
                await self.dead_letters.keep(letters)
        await self.watermark.done(seq)

    async def deliver(self, records: list[EventRecord]) -> None:
        """Store records that did not come through the queue (backfill), durably; the
        ingest rules apply to them as to queued events."""
        if self.ingest_filter is not None:
            records = self.ingest_filter.admit_records(records)
            self.ingest_filter.publish()
        letters = await self.delivery.deliver(records)
        if letters:
            await self.dead_letters.keep(letters)


class Watermark:
    """The time up to which every received event is durable: stored, spooled or
    dead-lettered. Batches finish out of order (two are in flight), so it only moves
    over the finished prefix. Kept in metadata.db, it tells backfill after a crash or a
    disconnect where the gap starts."""

    KEY = "durable_until_us"

    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata
        stored = metadata.get(self.KEY)
        self.value: int | None = int(stored) if stored is not None else None
        self._next = 0
        self._pending: dict[int, int | None] = {}  # seq -> newest time, once finished
        self._oldest = 0  # first unfinished seq
        self._max_time: dict[int, int | None] = {}
        self._persist = asyncio.Lock()

    def seed(self, value: int) -> None:
        """Start from ``value`` when nothing was ever stored (a new data directory)."""
        if self.value is None:
            self.value = value
            self.metadata.put(self.KEY, str(value))

    def begin(self, records: Sequence[EventRecord]) -> int:
        """Register a batch about to be delivered; returns its sequence number."""
        seq = self._next
        self._next += 1
        self._max_time[seq] = max((r.time for r in records), default=None)
        return seq

    async def done(self, seq: int) -> None:
        """Mark a batch durable; moves (and saves) the watermark over finished batches."""
        self._pending[seq] = self._max_time.pop(seq)
        moved = False
        while self._oldest in self._pending:
            newest = self._pending.pop(self._oldest)
            self._oldest += 1
            if newest is not None and (self.value is None or newest > self.value):
                self.value, moved = newest, True
        if moved:
            async with self._persist:  # one save at a time, always the latest value
                value = self.value
                if value is not None:
                    await self._save(value)

    async def _save(self, value: int) -> None:
        try:
            await asyncio.to_thread(self.metadata.put, self.KEY, str(value))
        except HomeIQError as exc:
            # The writer goes on: the value stays in memory and the next batch saves it.
            # After a crash before then, backfill starts from the older saved value,
            # which only refetches events already stored (writes are idempotent).
            log.warning("cannot save the durable watermark (kept in memory): %s", exc)


def _entity_of(message: object) -> str | None:
    try:
        entity_id = message["event"]["data"]["entity_id"]  # type: ignore[index]
    except (KeyError, TypeError, IndexError):
        return None
    return entity_id[:255] if isinstance(entity_id, str) else None
