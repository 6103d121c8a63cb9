"""Dead letters: what HomeIQ received but cannot store, built and kept in one place.

Every dead letter (a frame that is not JSON, a message that fails validation, a row the
store refuses for good, an invalid row of Home Assistant's history) is built by
:func:`dead_letter` and kept by :class:`DeadLetters`, which counts it by reason in
``homeiq_events_rejected_total{reason}`` and writes it to metadata.db.

metadata.db can refuse a write (a full disk, a lock held too long). The writer must not
stop for that, and the letters must not vanish: they wait in memory and go with the
next write, or with :meth:`DeadLetters.flush` at stop; every failure is counted
(``homeiq_dead_letter_write_failures_total``) and logged. Past ``max_pending`` the
oldest waiting letters are dropped, logged as an error and counted
(``homeiq_dead_letters_lost_total``): memory stays bounded while the disk stays full.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Iterable, Sequence

from homeiq.errors import HomeIQError
from homeiq.metadata.store import MetadataStore
from homeiq.model import DeadLetter, now_us, payload_bytes
from homeiq.observability.metrics import Metrics

log = logging.getLogger(__name__)

MAX_PENDING = 10_000  # dead letters held in memory while metadata.db refuses them


def dead_letter(
    reason: str,
    detail: str,
    message: object,
    *,
    raw: bytes | None = None,
    entity_id: str | None = None,
    received_at: int | None = None,
) -> DeadLetter:
    """A dead letter for ``message`` as received: bytes or text are kept as they are,
    anything else as JSON (else the ``raw`` frame it came in, else its repr)."""
    if isinstance(message, bytes):
        payload = message
    elif isinstance(message, str):
        payload = message.encode("utf-8", "surrogatepass")
    else:
        payload = payload_bytes(message, raw)
    return DeadLetter(
        reason, detail, payload, now_us() if received_at is None else received_at, entity_id
    )


class DeadLetters:
    """Counts dead letters by reason and keeps them in metadata.db, retrying what it refused."""

    def __init__(
        self, metadata: MetadataStore, metrics: Metrics, *, max_pending: int = MAX_PENDING
    ) -> None:
        self.metadata = metadata
        self.metrics = metrics
        self.max_pending = max_pending
        self._pending: deque[DeadLetter] = deque()
        self._writing = asyncio.Lock()  # one write at a time, so order is kept
        self._failing = False

    @property
    def pending(self) -> int:
        """Dead letters waiting for metadata.db to take them."""
        return len(self._pending)

    async def keep(self, letters: Iterable[DeadLetter]) -> None:
        """Count ``letters`` and store them with any still waiting; never raises for a
        store failure (the letters then wait, see the module docstring)."""
        arrived = list(letters)
        for letter in arrived:
            self.metrics.events_rejected.labels(letter.reason).inc()
            log.debug("dead-lettered %s: %s", letter.reason, letter.detail)
        self._pending.extend(arrived)
        await self._write()

    async def flush(self) -> int:
        """Write what is waiting (at stop); what still cannot be written is counted and
        logged as lost. Returns how many were lost."""
        await self._write()
        async with self._writing:
            lost = len(self._pending)
            if lost:
                self._lose(lost, "metadata.db still refuses them at stop")
        return lost

    async def _write(self) -> None:
        async with self._writing:
            self._bound()
            if not self._pending:
                return
            batch = list(self._pending)
            try:
                await asyncio.to_thread(self.metadata.add_dead_letters, batch)
            except Exception as exc:  # a store failure must never stop the writer
                self.metrics.dead_letter_write_failures.inc()
                if not self._failing:
                    self._failing = True
                    log.error(
                        "cannot keep %d dead letters in metadata.db, keeping them in memory"
                        " and retrying with the next ones: %s",
                        len(batch),
                        exc,
                        # A HomeIQError names the file and the cause; anything else is a bug.
                        exc_info=not isinstance(exc, HomeIQError),
                    )
                return
            for _ in batch:  # only what was written: more may have arrived meanwhile
                self._pending.popleft()
            if self._failing:
                self._failing = False
                log.info("metadata.db takes dead letters again: %d written", len(batch))
            self.metrics.dead_letters_pending.set(len(self._pending))

    def _bound(self) -> None:
        """Drop the oldest beyond ``max_pending`` (with the write lock held)."""
        excess = len(self._pending) - self.max_pending
        if excess > 0:
            self._lose(excess, f"more than {self.max_pending} wait for metadata.db")
        self.metrics.dead_letters_pending.set(len(self._pending))

    def _lose(self, count: int, why: str) -> None:
        """Drop the ``count`` oldest waiting letters, loudly (with the write lock held)."""
        dropped: Sequence[DeadLetter] = [self._pending.popleft() for _ in range(count)]
        reasons = Counter(letter.reason for letter in dropped)
        self.metrics.dead_letters_lost.inc(count)
        self.metrics.dead_letters_pending.set(len(self._pending))
        log.error(
            "%d dead letters lost (%s): by reason %s",
            count,
            why,
            ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items())),
        )
