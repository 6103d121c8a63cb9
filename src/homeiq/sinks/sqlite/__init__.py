"""The embedded default event store: SQLite files in the data directory."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from homeiq.model import EventRecord
from homeiq.sinks.base import StoreSummary
from homeiq.sinks.sqlite.store import EVENTS_DB, SQLiteEventStore

__all__ = ["EVENTS_DB", "SQLiteEventStore", "SQLiteSink"]

T = TypeVar("T")


class SQLiteSink:
    """Async face of :class:`SQLiteEventStore`: every call runs on one dedicated thread,
    so SQLite work never blocks the event loop and the connection has a single user."""

    name = "sqlite"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="homeiq-sqlite")
        self._store: SQLiteEventStore | None = None

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    @property
    def store(self) -> SQLiteEventStore:
        """The open store (after :meth:`open`)."""
        if self._store is None:
            raise RuntimeError("SQLiteSink used before open()")
        return self._store

    async def open(self) -> None:
        """Create or migrate events.db."""
        self._store = await self._run(lambda: SQLiteEventStore.in_dir(self.data_dir))

    async def write(self, batch: Sequence[EventRecord]) -> int:
        """Store a batch idempotently; returns how many rows were new."""
        store = self.store
        return await self._run(lambda: store.write(batch))

    async def close(self) -> None:
        """Close the database and the thread."""
        if self._store is not None:
            store, self._store = self._store, None
            await self._run(store.close)
        self._executor.shutdown(wait=True)

    async def history(
        self, entity_id: str, start: int | None, end: int | None, limit: int
    ) -> list[EventRecord]:
        """Events of one entity, oldest first."""
        store = self.store
        return await self._run(lambda: store.history(entity_id, start, end, limit))

    async def summary(self) -> StoreSummary:
        """Totals per domain, area and source."""
        return await self._run(self.store.summary)

    async def last_event_time(self) -> int | None:
        """Time of the newest stored event."""
        return await self._run(self.store.last_event_time)
