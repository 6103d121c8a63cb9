"""The bounded queue between the Home Assistant reader and the writer.

Items are state_changed messages (parsed dicts), whole raw frames of them still to be
parsed, or dead letters the reader already made. Raw frames are the fast path: the
reader hands a frame of pure events over without parsing it, so the parse happens once,
in the writer, and the queue holds one compact string instead of thousands of dicts
(which also keeps Python's cyclic GC from walking them over and over).

The bound counts messages, not items. The reader never waits on storage: ``offer``
returns at once while there is room. Only when the queue is full does it wait, and that
is counted and logged, because it means the store cannot keep up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from homeiq.model import DeadLetter, Source
from homeiq.observability.metrics import Metrics

log = logging.getLogger(__name__)

FULL_WARNING_INTERVAL_S = 10.0


@dataclass(slots=True, frozen=True)
class Incoming:
    """Messages for the writer: a parsed message, or a raw frame (``str``/``bytes``) of
    ``weight`` messages; tagged with where they came from."""

    message: Any
    source: Source = Source.LIVE
    weight: int = 1


QueueItem = Incoming | DeadLetter


def _weight(item: QueueItem) -> int:
    return item.weight if isinstance(item, Incoming) else 1


class EventQueue:
    """A FIFO bounded in messages, its depth exported as a gauge."""

    def __init__(self, max_events: int, metrics: Metrics) -> None:
        self.max_events = max_events
        self._items: deque[QueueItem] = deque()
        self._events = 0
        self._not_empty = asyncio.Event()
        self._space = asyncio.Event()
        self._metrics = metrics
        self._last_warning = -FULL_WARNING_INTERVAL_S
        metrics.queue_capacity.set(max_events)
        metrics.queue_depth.set_function(self.qsize)

    def qsize(self) -> int:
        """Messages waiting."""
        return self._events

    def empty(self) -> bool:
        """True when nothing waits."""
        return not self._items

    async def offer(self, item: QueueItem) -> None:
        """Enqueue ``item``; waits only when the queue is full (counted as backpressure)."""
        weight = _weight(item)
        if self._events and self._events + weight > self.max_events:
            self._metrics.queue_full.inc()
            now = time.monotonic()
            if now - self._last_warning >= FULL_WARNING_INTERVAL_S:
                self._last_warning = now
                log.warning("event queue full (%d): the store is not keeping up", self.max_events)
            # Never refuse an item larger than the bound: wait for an empty queue instead.
            while self._events and self._events + weight > self.max_events:
                self._space.clear()
                await self._space.wait()
        self._items.append(item)
        self._events += weight
        self._not_empty.set()

    async def get(self) -> QueueItem:
        """Wait for the next item (safe to cancel: nothing is taken until it returns)."""
        while not self._items:
            self._not_empty.clear()
            await self._not_empty.wait()
        return self.get_nowait()

    def get_nowait(self) -> QueueItem:
        """The next item, or raise ``asyncio.QueueEmpty``."""
        if not self._items:
            raise asyncio.QueueEmpty
        item = self._items.popleft()
        self._events -= _weight(item)
        self._space.set()
        return item
