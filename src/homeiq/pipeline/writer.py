"""The one writer: takes messages from the queue, normalizes and enriches them, and
writes them to the sink in batches bounded by size and age.

Everything that is the same for every sink lives here, once: batching, retry with
backoff for transient failures, isolating a bad row from a rejected batch, dead letters
and metrics. A write runs while the next batch is being normalized, so the store and the
CPU work overlap.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import orjson

from homeiq.errors import InvalidEvent, SinkRejected, TransientError
from homeiq.metadata.store import MetadataStore
from homeiq.model import DeadLetter, EventRecord, Source
from homeiq.observability.metrics import Metrics
from homeiq.pipeline.normalize import Normalizer
from homeiq.pipeline.queue import EventQueue, Incoming
from homeiq.sinks.base import Sink

log = logging.getLogger(__name__)

# Batches written while the next is being built. Two keep a writer process busy while
# the event loop normalizes; the sink runs them in order (one worker), and writes are
# idempotent, so a retried batch landing after its successor changes nothing.
MAX_BATCHES_IN_FLIGHT = 2
RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0


def now_us() -> int:
    """Wall-clock time in integer microseconds."""
    return time.time_ns() // 1000


def payload_bytes(message: object) -> bytes:
    """A received message as bytes for the dead-letter table (JSON when it can be)."""
    try:
        return orjson.dumps(message)
    except TypeError:
        return repr(message).encode()


class Writer:
    """Drains an :class:`EventQueue` into a :class:`Sink`."""

    def __init__(
        self,
        queue: EventQueue,
        sink: Sink,
        metadata: MetadataStore,
        normalizer: Normalizer,
        metrics: Metrics,
        *,
        batch_max_events: int,
        batch_max_age_s: float,
    ) -> None:
        self.queue = queue
        self.sink = sink
        self.metadata = metadata
        self.normalizer = normalizer
        self.metrics = metrics
        self.batch_max_events = batch_max_events
        self.batch_max_age_s = batch_max_age_s
        self._stopping = asyncio.Event()
        self._in_flight: deque[asyncio.Task[None]] = deque()
        self.entities_seen: set[str] = set()
        self._received = 0

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
                    self._in_flight.append(asyncio.create_task(self._flush(records, letters)))
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
                raw = message.encode() if isinstance(message, str) else message
                letters.append(DeadLetter("invalid_json", str(exc), raw, now_us()))
                return
            for one in parsed if isinstance(parsed, list) else (parsed,):
                self._take_message(one, item.source, records, letters)
        else:
            self._take_message(message, item.source, records, letters)

    def _take_message(
        self,
        message: Any,
        source: Source,
        records: list[EventRecord],
        letters: list[DeadLetter],
    ) -> None:
        self._received += 1
        try:
            record = self.normalizer.message(message, source)
        except InvalidEvent as exc:
            letters.append(self._letter(exc.reason, exc.detail, message))
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
        self, reason: str, detail: str, message: object, entity_id: str | None = None
    ) -> DeadLetter:
        if entity_id is None:
            entity_id = _entity_of(message)
        return DeadLetter(reason, detail, payload_bytes(message), now_us(), entity_id)

    async def _flush(self, records: list[EventRecord], letters: list[DeadLetter]) -> None:
        if records:
            letters = letters + await self._write(records)
        if letters:
            await asyncio.to_thread(self.metadata.add_dead_letters, letters)
            for letter in letters:
                self.metrics.events_rejected.labels(letter.reason).inc()
                log.debug("dead-lettered %s: %s", letter.reason, letter.detail)

    async def _write(self, records: Sequence[EventRecord]) -> list[DeadLetter]:
        """Write with retries; returns dead letters for rows the store refused for good."""
        delay = RETRY_MIN_S
        while True:
            started = time.perf_counter()
            try:
                new = await self.sink.write(records)
            except TransientError as exc:
                self.metrics.sink_errors.labels("transient").inc()
                log.warning("%s unavailable, retrying in %.1fs: %s", self.sink.name, delay, exc)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            except SinkRejected as exc:
                self.metrics.sink_errors.labels("permanent").inc()
                return await self._isolate(records, exc)
            break
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(len(records))
        self.metrics.events_stored.inc(new)
        self.metrics.events_duplicate.inc(len(records) - new)
        self.metrics.last_event_time.set(max(r.time for r in records) / 1_000_000)
        self.entities_seen.update(r.entity_id for r in records)
        return []

    async def _isolate(self, records: Sequence[EventRecord], exc: SinkRejected) -> list[DeadLetter]:
        """Split a refused batch until the refused rows are alone; store all the others."""
        if len(records) == 1:
            record = records[0]
            return [
                DeadLetter(
                    "sink_rejected",
                    str(exc),
                    orjson.dumps(record, default=str),
                    now_us(),
                    record.entity_id,
                )
            ]
        middle = len(records) // 2
        return await self._write(records[:middle]) + await self._write(records[middle:])


def _entity_of(message: object) -> str | None:
    try:
        entity_id = message["event"]["data"]["entity_id"]  # type: ignore[index]
    except (KeyError, TypeError, IndexError):
        return None
    return entity_id[:255] if isinstance(entity_id, str) else None
