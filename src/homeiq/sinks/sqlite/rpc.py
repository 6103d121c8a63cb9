"""The calls the SQLite store answers from another thread or process, as typed requests.

A request is a small frozen dataclass holding its arguments; ``run`` makes the call on
the store, and its return type is the reply's. :class:`~homeiq.sinks.sqlite.SQLiteSink`
pickles a request to its writer process and gets the reply back, and mypy checks both
ends: the arguments against the store's method, the reply against what the caller
expects (``Request[int]`` for a write, ``Request[EventPage]`` for a page, ...).

Arguments are plain values (lists, not any Sequence) because they may cross to another
process and pickle there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Generic, TypeVar

from homeiq.model import EventRecord
from homeiq.sinks.base import Activity, Deletion, EventPage, EventQuery, StoreSummary
from homeiq.sinks.sqlite import erase
from homeiq.sinks.sqlite.store import SQLiteEventStore, Wire

R_co = TypeVar("R_co", covariant=True)


class Request(ABC, Generic[R_co]):
    """One call to the store; ``run`` answers it with a reply of type ``R_co``."""

    __slots__ = ()

    @abstractmethod
    def run(self, store: SQLiteEventStore) -> R_co:
        """Make the call on ``store`` (in whichever thread or process holds it)."""


@dataclass(frozen=True, slots=True)
class WriteBatch(Request[int]):
    """Store a batch of records in their wire form; the reply is how many were new."""

    batch: list[Wire]

    def run(self, store: SQLiteEventStore) -> int:
        """Write the batch."""
        return store.write_wire(self.batch)


@dataclass(frozen=True, slots=True)
class Close(Request[None]):
    """Close the store (the writer process then holds no file open)."""

    def run(self, store: SQLiteEventStore) -> None:
        """Close it."""
        store.close()


@dataclass(frozen=True, slots=True)
class History(Request[list[EventRecord]]):
    """Events of one entity with ``start <= time < end``, oldest first."""

    entity_id: str
    start: int | None
    end: int | None
    limit: int

    def run(self, store: SQLiteEventStore) -> list[EventRecord]:
        """Read them."""
        return store.history(self.entity_id, self.start, self.end, self.limit)


@dataclass(frozen=True, slots=True)
class Summary(Request[StoreSummary]):
    """Totals per domain, area and source."""

    def run(self, store: SQLiteEventStore) -> StoreSummary:
        """Count them."""
        return store.summary()


@dataclass(frozen=True, slots=True)
class LastEventTime(Request[int | None]):
    """Time of the newest stored event (also how the writer process opens its store)."""

    def run(self, store: SQLiteEventStore) -> int | None:
        """Read it."""
        return store.last_event_time()


@dataclass(frozen=True, slots=True)
class Keys(Request[set[tuple[str, int]]]):
    """Stored (entity_id, time) with ``start <= time <= end``; None = all / unbounded."""

    entity_ids: list[str] | None
    start: int | None
    end: int | None

    def run(self, store: SQLiteEventStore) -> set[tuple[str, int]]:
        """Read them."""
        return store.keys(self.entity_ids, self.start, self.end)


@dataclass(frozen=True, slots=True)
class Events(Request[EventPage]):
    """One page of events across entities."""

    query: EventQuery

    def run(self, store: SQLiteEventStore) -> EventPage:
        """Read it."""
        return store.events(self.query)


@dataclass(frozen=True, slots=True)
class HistoryMany(Request[dict[str, list[EventRecord]]]):
    """Each entity's state at ``start`` and its events in [start, end)."""

    entity_ids: list[str]
    start: int
    end: int
    include_start_state: bool
    attributes: bool

    def run(self, store: SQLiteEventStore) -> dict[str, list[EventRecord]]:
        """Read them."""
        return store.history_many(
            self.entity_ids, self.start, self.end, self.include_start_state, self.attributes
        )


@dataclass(frozen=True, slots=True)
class LastStates(Request[dict[str, EventRecord]]):
    """Each entity's newest event before ``before`` (None: the newest), no attributes."""

    entity_ids: list[str]
    before: int | None

    def run(self, store: SQLiteEventStore) -> dict[str, EventRecord]:
        """Read them."""
        return store.last_states(self.entity_ids, self.before)


@dataclass(frozen=True, slots=True)
class ByContext(Request[list[EventRecord]]):
    """Events whose context_id (or, ``caused_by``, context_parent_id) is one of these."""

    context_ids: list[str]
    around: int | None
    caused_by: bool = False

    def run(self, store: SQLiteEventStore) -> list[EventRecord]:
        """Read them."""
        if self.caused_by:
            return store.caused_by(self.context_ids, self.around)
        return store.by_context(self.context_ids, self.around)


@dataclass(frozen=True, slots=True)
class ActivityCounts(Request[Activity]):
    """Event counts in [start, end) by entity, bucket, domain and area."""

    start: int
    end: int
    bucket_s: int
    top: int

    def run(self, store: SQLiteEventStore) -> Activity:
        """Count them."""
        return store.activity(self.start, self.end, self.bucket_s, self.top)


@dataclass(frozen=True, slots=True)
class CountDeletion(Request[int]):
    """How many stored events a deletion matches."""

    deletion: Deletion

    def run(self, store: SQLiteEventStore) -> int:
        """Count them."""
        return erase.count(store, self.deletion)


@dataclass(frozen=True, slots=True)
class DeleteChunk(Request[tuple[int, tuple[str, ...]]]):
    """One transaction of a deletion: rows deleted, and the entities still to visit."""

    deletion: Deletion
    limit: int

    def run(self, store: SQLiteEventStore) -> tuple[int, tuple[str, ...]]:
        """Delete up to ``limit`` rows."""
        return erase.delete_chunk(store, self.deletion, self.limit)


@dataclass(frozen=True, slots=True)
class Reclaim(Request[int]):
    """Free up to ``pages`` pages (incremental vacuum); the free pages left."""

    pages: int

    def run(self, store: SQLiteEventStore) -> int:
        """Reclaim them."""
        return erase.reclaim(store, self.pages)


@dataclass(frozen=True, slots=True)
class StoredEntityIds(Request[list[str]]):
    """Entities with stored events."""

    def run(self, store: SQLiteEventStore) -> list[str]:
        """List them."""
        return erase.entity_ids(store)


@dataclass(frozen=True, slots=True)
class FullVacuum(Request[None]):
    """One full VACUUM, switching an older file to incremental auto-vacuum."""

    def run(self, store: SQLiteEventStore) -> None:
        """Vacuum."""
        erase.full_vacuum(store)
