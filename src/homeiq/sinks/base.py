"""The tiny interfaces every event store implements.

A sink only knows how to open, write one batch idempotently, and close. Batching,
retries, metrics and dead-lettering live once, in :mod:`homeiq.pipeline.writer`. A
reader answers the queries the CLI and API need, the same way on every backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from homeiq.model import EventRecord


class Sink(Protocol):
    """Where events are written."""

    name: str

    async def open(self) -> None:
        """Connect and prepare the schema; raise SinkUnavailable if the store is down."""

    async def write(self, batch: Sequence[EventRecord]) -> int:
        """Store ``batch`` idempotently on (entity_id, time); return how many were new."""

    async def close(self) -> None:
        """Flush and release resources."""


@dataclass(slots=True)
class StoreSummary:
    """Counts for ``homeiq status``."""

    total: int = 0
    entities: int = 0
    by_domain: dict[str, int] = field(default_factory=dict)
    by_area: dict[str, int] = field(default_factory=dict)
    by_source: dict[str, int] = field(default_factory=dict)
    first_time: int | None = None
    last_time: int | None = None


class EventReader(Protocol):
    """Read access to stored events."""

    async def history(
        self, entity_id: str, start: int | None, end: int | None, limit: int
    ) -> list[EventRecord]:
        """Events of one entity with ``start <= time < end`` (microseconds), oldest first."""

    async def summary(self) -> StoreSummary:
        """Totals per domain, area and source, and the time span stored."""

    async def last_event_time(self) -> int | None:
        """Time of the newest stored event, or None when empty."""

    async def keys(
        self,
        entity_ids: Sequence[str] | None = None,
        start: int | None = None,
        end: int | None = None,
    ) -> set[tuple[str, int]]:
        """Stored (entity_id, time) with ``start <= time <= end``; None = all / unbounded."""

    async def close(self) -> None:
        """Release resources (a reader that is also the sink closes once, as the sink)."""
