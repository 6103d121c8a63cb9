"""Getting batches into the store exactly once, whatever the store is doing.

The one wrapper around every sink (Telegraf's lesson: outputs stay tiny, the wrapper
does the rest). A batch is *delivered* once it is durable: written to the sink, or
appended to the on-disk :class:`~homeiq.pipeline.spool.Spool`. The path:

* the spool is empty and the circuit breaker lets writes through: write to the sink,
  retrying a transient failure a few times with jittered backoff; if the store stays
  down the batch goes to the spool (and the breaker opens after repeated failures);
* otherwise straight to the spool, so batches keep their order while it drains;
* a drain task writes spooled batches back, oldest first, whenever the breaker allows a
  probe; a batch leaves the spool only after the sink took it.

Rows the store refuses for good (:class:`SinkRejected`) are isolated by bisection and
dead-lettered with the store's message; the rest of their batch is stored. When the
full spool drops events, the span is recorded as a gap for backfill from Home
Assistant's history and as a data-quality event, counted and logged: never silent.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence

import orjson

from homeiq.errors import HomeIQError, SinkRejected, TransientError
from homeiq.metadata.store import MetadataStore
from homeiq.model import DeadLetter, EventRecord, Gap, QualityEvent, now_us
from homeiq.observability.logging import stop_task
from homeiq.observability.metrics import Metrics
from homeiq.pipeline.breaker import BreakerState, CircuitBreaker
from homeiq.pipeline.deadletters import DeadLetters, dead_letter
from homeiq.pipeline.spool import Spool
from homeiq.sinks.base import Sink

log = logging.getLogger(__name__)

RETRY_MIN_S = 0.25
RETRY_MAX_S = 2.0
DRAIN_IDLE_S = 1.0  # longest nap of the drain task while the breaker is open


class Delivery:
    """Writes batches to one sink with retry, a circuit breaker and an outage spool."""

    def __init__(
        self,
        sink: Sink,
        spool: Spool,
        breaker: CircuitBreaker,
        metadata: MetadataStore,
        metrics: Metrics,
        *,
        retry_attempts: int = 3,
        dead_letters: DeadLetters | None = None,
        on_gap: Callable[[], None] | None = None,
        on_stored: Sequence[Callable[[Sequence[EventRecord]], None]] = (),
    ) -> None:
        """``on_gap`` wakes backfill when the spool lost a span; each of ``on_stored`` is
        told of every batch the store took (rollups and data quality follow the stored
        events)."""
        self.sink = sink
        self.spool = spool
        self.breaker = breaker
        self.metadata = metadata
        self.metrics = metrics
        self.retry_attempts = retry_attempts
        self.dead_letters = dead_letters or DeadLetters(metadata, metrics)
        self.entities_seen: set[str] = set()
        self.on_gap = on_gap
        self.on_stored = list(on_stored)
        self._spooled = asyncio.Event()  # set while the spool may hold batches
        self._drained = asyncio.Event()  # set while the spool is empty
        self._drain_task: asyncio.Task[None] | None = None
        if spool.empty:
            self._drained.set()
        else:
            self._spooled.set()

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Start draining whatever a previous run left in the spool."""
        if self._drain_task is None:
            self._drain_task = asyncio.create_task(self._drain(), name="spool-drain")

    async def stop(self) -> None:
        """Stop draining; what is still spooled stays on disk for the next start."""
        await stop_task(self._drain_task, log)
        self._drain_task = None

    async def wait_drained(self) -> None:
        """Return once the spool is empty and the store took the last write."""
        await self._drained.wait()

    @property
    def store_ready(self) -> bool:
        """True when nothing waits in the spool and the breaker is closed."""
        return self.spool.empty and self.breaker.state is BreakerState.CLOSED

    # -- delivering -------------------------------------------------------------------

    async def deliver(self, records: Sequence[EventRecord]) -> list[DeadLetter]:
        """Make ``records`` durable (stored or spooled); returns rows refused for good."""
        if not records:
            return []
        if self.spool.empty and self.breaker.allow():
            try:
                return await self._write_with_retries(records)
            except TransientError as exc:
                log.warning(
                    "%s unavailable (%s): spooling %d events", self.sink.name, exc, len(records)
                )
        await self._spool(records)
        return []

    async def _write_with_retries(self, records: Sequence[EventRecord]) -> list[DeadLetter]:
        delay = RETRY_MIN_S
        for attempt in range(1, self.retry_attempts + 1):
            try:
                letters = await self._write(records)
            except TransientError:
                self.breaker.failure()
                if attempt == self.retry_attempts or not self.breaker.allow():
                    raise
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            except asyncio.CancelledError:
                self.breaker.failure()  # an unanswered probe must not hold the breaker
                raise
            self.breaker.success()
            return letters
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _write(self, records: Sequence[EventRecord]) -> list[DeadLetter]:
        """One attempt; rows refused for good come back as dead letters."""
        started = time.perf_counter()
        try:
            new = await self.sink.write(records)
        except TransientError:
            self.metrics.sink_errors.labels("transient").inc()
            raise
        except SinkRejected as exc:
            self.metrics.sink_errors.labels("permanent").inc()
            return await self._isolate(records, exc)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(len(records))
        self.metrics.events_stored.inc(new)
        self.metrics.events_duplicate.inc(len(records) - new)
        self.metrics.last_event_time.set(max(r.time for r in records) / 1_000_000)
        self.entities_seen.update(r.entity_id for r in records)
        for follower in self.on_stored:
            try:
                follower(records)
            except Exception:  # the batch is stored: a follower's failure is not the store's
                log.exception("a follower of stored events failed on %d events", len(records))
        return []

    async def _isolate(self, records: Sequence[EventRecord], exc: SinkRejected) -> list[DeadLetter]:
        """Split a refused batch until the refused rows are alone; store all the others."""
        if len(records) == 1:
            record = records[0]
            payload = orjson.dumps(record, default=_plain)
            return [dead_letter("sink_rejected", str(exc), payload, entity_id=record.entity_id)]
        middle = len(records) // 2
        return await self._write(records[:middle]) + await self._write(records[middle:])

    # -- the spool --------------------------------------------------------------------

    async def _spool(self, records: Sequence[EventRecord]) -> None:
        result = await asyncio.to_thread(self.spool.append, list(records))
        if not self.spool.empty:
            self._drained.clear()
            self._spooled.set()
        if result.dropped_events:
            await self._record_drop(
                result.dropped_events, result.dropped_start_us, result.dropped_end_us, "full"
            )

    async def _record_drop(
        self, events: int, start_us: int | None, end_us: int | None, why: str
    ) -> None:
        """The spool lost events: remember the span for backfill and tell users."""
        if start_us is None or end_us is None:
            return
        if why == "full":
            cause = f"the spool was full ({self.spool.max_bytes} bytes, policy {self.spool.policy})"
        else:
            cause = "a spooled batch could not be read back"
        detail = (
            f"{cause}: {events} events dropped; backfill from Home Assistant's history"
            " refills the span if it still has it"
        )
        quality = QualityEvent(now_us(), "spool_dropped", start_us, end_us, events, detail)
        try:
            await asyncio.to_thread(
                self.metadata.add_gap, Gap(start_us - 1, end_us, f"spool_{why}", now_us())
            )
            await asyncio.to_thread(self.metadata.add_quality_event, quality)
        except HomeIQError as exc:
            # The spool already logged the loss; without the gap backfill cannot refill it.
            log.error("cannot record the span the spool lost (%s); %s", exc, detail)
        else:
            if self.on_gap is not None:
                self.on_gap()
        self.metrics.quality_events.labels("spool_dropped").inc()

    async def _drain(self) -> None:
        """Write spooled batches back in order whenever the breaker allows."""
        while True:
            await self._spooled.wait()
            try:
                await self._drain_one()
            except HomeIQError as exc:
                # spool.db itself failed (a full disk): the batch stays spooled; try later.
                log.warning("spool drain paused: %s", exc)
                await asyncio.sleep(DRAIN_IDLE_S)

    async def _drain_one(self) -> None:
        batch = await asyncio.to_thread(self.spool.oldest)
        if batch is None:
            # Read the count now, not the answer above: an append may have landed
            # in between, and its own wake-up may already have run.
            if self.spool.empty:
                self._spooled.clear()
                self._drained.set()
            return
        if batch.corrupt:
            # The spool already logged and counted it; backfill may still refill it.
            await self._record_drop(batch.events, batch.first_us, batch.last_us, "corrupt")
            await asyncio.to_thread(self.spool.remove, batch.id)
            return
        if not self.breaker.allow():
            await asyncio.sleep(min(max(self.breaker.retry_in(), 0.05), DRAIN_IDLE_S))
            return
        try:
            letters = await self._write(batch.records)
        except TransientError as exc:
            self.breaker.failure()
            log.debug("spool drain: %s still unavailable: %s", self.sink.name, exc)
            return
        except asyncio.CancelledError:
            self.breaker.failure()  # an unanswered probe must not hold the breaker
            raise
        self.breaker.success()
        if letters:
            await self.dead_letters.keep(letters)
        await asyncio.to_thread(self.spool.remove, batch.id)
        if self.spool.empty:
            log.info("spool drained: %s has every spooled event", self.sink.name)


def _plain(value: object) -> str:
    """JSON for what orjson cannot write itself (a record's attributes_json bytes)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
