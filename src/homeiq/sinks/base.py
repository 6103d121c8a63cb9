"""The tiny interfaces every event store implements.

A sink only knows how to open, write one batch idempotently, and close. Batching,
retries, metrics and dead-lettering live once, in :mod:`homeiq.pipeline.writer`. A
reader answers the queries the CLI and API need, the same way on every backend: the
contract suite (tests/sinks/test_contract.py) runs every reader against the same data.
The pieces both backends share (cursors, context time windows, activity assembly) are in
:mod:`homeiq.sinks.reading`. An :class:`Eraser` deletes stored events (retention purge,
cleanup rules), one implementation per store, reached through the backend registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from homeiq.model import EventRecord, Source


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


@dataclass(slots=True, frozen=True)
class EventQuery:
    """One page of events across entities, for the API's event list.

    Filters: an empty tuple means "any"; several values of one filter match any of them,
    different filters must all match. ``device_ids``, ``area_ids`` and ``floor_ids``
    match the placement stored with each event (where the entity was when it changed),
    not where it is now. ``start <= time < end`` in microseconds (None = unbounded).

    Order is (time, entity_id), ascending or (``newest_first``) descending. A page holds
    up to ``limit`` records strictly after ``cursor``, the opaque ``next_cursor`` of the
    previous page of the same query (ValueError when it is not one).
    """

    entity_ids: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    device_ids: tuple[str, ...] = ()
    area_ids: tuple[str, ...] = ()
    floor_ids: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    sources: tuple[Source, ...] = ()
    start: int | None = None
    end: int | None = None
    newest_first: bool = False
    limit: int = 100
    cursor: str | None = None

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"limit must be at least 1, not {self.limit}")
        # Lists are accepted too (and must not be shared with the caller): tuples pickle
        # to the writer process and hash.
        for name in ("entity_ids", "domains", "device_ids", "area_ids", "floor_ids", "states"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "sources", tuple(Source(s) for s in self.sources))


@dataclass(slots=True)
class EventPage:
    """A page of :class:`EventQuery`; ``next_cursor`` is None on the last page."""

    records: list[EventRecord]
    next_cursor: str | None = None


@dataclass(slots=True)
class Activity:
    """What happened in ``start <= time < end``: counts by entity, time, domain and area.

    ``buckets`` is every bucket of ``bucket_s`` seconds overlapping the range, as
    (bucket start in microseconds, events), zeros included, aligned to the Unix epoch
    (UTC), so the first and last may be partial. ``top_entities`` is the ``top`` busiest
    (entity_id, events), busiest first, ties by entity_id. Areas are those stored with
    each event; events without one count under ``"(no area)"``.
    """

    start: int
    end: int
    bucket_s: int
    total: int = 0
    top_entities: list[tuple[str, int]] = field(default_factory=list)
    buckets: list[tuple[int, int]] = field(default_factory=list)
    by_domain: dict[str, int] = field(default_factory=dict)
    by_area: dict[str, int] = field(default_factory=dict)


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

    async def events(self, query: EventQuery) -> EventPage:
        """One page of events matching ``query``, in its order (see :class:`EventQuery`)."""

    async def history_many(
        self,
        entity_ids: Sequence[str],
        start: int,
        end: int,
        *,
        include_start_state: bool = True,
        attributes: bool = True,
    ) -> dict[str, list[EventRecord]]:
        """Each entity's events in ``start <= time < end``, oldest first.

        Every requested entity is a key (an empty list when it has no events). With
        ``include_start_state`` the entity's last event before ``start`` comes first, as
        is (its time is not moved to ``start``): the state at the start of the range, as
        Home Assistant's history shows it. ``attributes=False`` leaves ``attributes``
        empty, which is cheaper to read.
        """

    async def last_states(
        self, entity_ids: Sequence[str], before: int | None = None
    ) -> dict[str, EventRecord]:
        """Each entity's newest stored event with ``time < before`` (None = the newest of
        all), without attributes; entities with none are not keys."""

    async def by_context(
        self, context_ids: Sequence[str], *, around: int | None = None
    ) -> list[EventRecord]:
        """Events whose ``context_id`` is one of ``context_ids``, by (time, entity_id).

        Searched only near each context's creation: see
        :func:`homeiq.sinks.reading.context_window` for the bounds, and for ids that are
        not ULIDs (searched around ``around``, default the newest stored event).
        """

    async def caused_by(
        self, context_ids: Sequence[str], *, around: int | None = None
    ) -> list[EventRecord]:
        """Events whose ``context_parent_id`` is one of ``context_ids``; bounds as
        :meth:`by_context`."""

    async def activity(self, start: int, end: int, *, bucket_s: int, top: int) -> Activity:
        """Event counts in ``start <= time < end`` (see :class:`Activity`); ValueError for
        a bucket under one second or more than :data:`~homeiq.sinks.reading.MAX_BUCKETS`."""

    async def close(self) -> None:
        """Release resources (a reader that is also the sink closes once, as the sink)."""


@dataclass(frozen=True, slots=True)
class Deletion:
    """Which stored events to delete: those of ``entity_ids`` with ``after <= time < before``
    (microseconds; None = unbounded) and, when ``sources`` is not empty, a source among
    them. No entity ids means no events: a deletion never reaches "everything" by default.
    """

    entity_ids: tuple[str, ...]
    before: int | None = None
    after: int | None = None
    sources: tuple[Source, ...] = ()

    def __post_init__(self) -> None:
        # Lists are accepted too: tuples pickle to the writer process and hash.
        object.__setattr__(self, "entity_ids", tuple(dict.fromkeys(self.entity_ids)))
        object.__setattr__(self, "sources", tuple(Source(s) for s in self.sources))
        if self.before is not None and self.after is not None and self.after > self.before:
            raise ValueError(f"after ({self.after}) is later than before ({self.before})")


class Eraser(Protocol):
    """Deletes stored events, in chunks that each commit on their own.

    A delete that is killed part-way leaves every chunk either done or not: the store
    stays consistent and running the same deletion again finishes the job (a deletion is
    idempotent). Between chunks it yields, so the pipeline's writes go on.
    """

    async def count(self, deletion: Deletion) -> int:
        """How many stored events ``deletion`` matches (what a dry run shows)."""

    async def delete(self, deletion: Deletion, *, chunk_rows: int) -> int:
        """Delete what ``deletion`` matches, at most ``chunk_rows`` per chunk; how many went."""

    async def entity_ids(self) -> list[str]:
        """Entities with stored events, sorted (to resolve globs and domains against)."""


class RawRetention(Protocol):
    """A store's own expiry of old events (InfluxDB's retention policy or bucket
    retention), which HomeIQ may set instead of deleting by time."""

    async def raw_retention(self) -> str:
        """What expires events now, in words."""

    async def set_raw_retention(self, days: int | None) -> str:
        """Expire events after ``days`` (None: never); the new setting in words."""


@runtime_checkable
class SupportsVacuum(Protocol):
    """An eraser whose store must be rewritten once to give freed space back (SQLite)."""

    async def vacuum(self) -> None:
        """Rewrite the store, giving every free page back (slow; no server running)."""
