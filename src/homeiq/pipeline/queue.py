"""The bounded queue between the Home Assistant reader and the writer.

Items are raw ``state_changed`` messages (dicts, still unvalidated) or dead letters the
reader already made (frames that were not JSON). The reader never waits on storage:
``offer`` returns at once while there is room. Only when the queue is full does it wait,
and that is counted and logged, because it means the store cannot keep up.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from homeiq.model import DeadLetter, Source
from homeiq.observability.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class Incoming:
    """A message for the writer, tagged with where it came from."""

    message: Any
    source: Source = Source.LIVE


QueueItem = Incoming | DeadLetter


class EventQueue:
    """A bounded FIFO with its depth exported as a gauge."""

    def __init__(self, max_events: int, metrics: Metrics) -> None:
        self.max_events = max_events
        self._queue: asyncio.Queue[QueueItem] = asyncio.Queue(max_events)
        self._metrics = metrics
        metrics.queue_capacity.set(max_events)
        metrics.queue_depth.set_function(self._queue.qsize)

    def qsize(self) -> int:
        """Messages waiting."""
        return self._queue.qsize()

    def empty(self) -> bool:
        """True when nothing waits."""
        return self._queue.empty()

    async def offer(self, item: QueueItem) -> None:
        """Enqueue ``item``; waits only when the queue is full (counted as backpressure)."""
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._metrics.queue_full.inc()
            log.warning("event queue full (%d): the store is not keeping up", self.max_events)
            await self._queue.put(item)

    async def get(self) -> QueueItem:
        """Wait for the next item."""
        return await self._queue.get()

    def get_nowait(self) -> QueueItem:
        """The next item, or raise ``asyncio.QueueEmpty``."""
        return self._queue.get_nowait()
