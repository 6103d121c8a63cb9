"""The embedded default event store: SQLite files in the data directory.

:class:`SQLiteSink` runs the synchronous :class:`SQLiteEventStore` off the event loop,
by default in one dedicated writer *process*. A thread would not do: the store's work is
mostly Python (building rows, binding parameters) and holds the GIL, so a writer thread
and the event loop (parsing and normalizing) only take turns on one core. A process
gives the writer the second core; records cross as plain tuples (:data:`Wire`), which
pickle cheaply. ``HOMEIQ_SQLITE_WRITER=thread`` keeps everything in one process.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path
from typing import Literal, TypeVar

from homeiq.errors import SinkUnavailable
from homeiq.model import EventRecord
from homeiq.sinks.base import Activity, Deletion, EventPage, EventQuery, StoreSummary
from homeiq.sinks.sqlite import rpc
from homeiq.sinks.sqlite.store import EVENTS_DB, SQLiteEventStore, Wire, to_wire
from homeiq.sqlitedb import sqlite_errors

__all__ = [
    "EVENTS_DB",
    "AsyncStore",
    "SQLiteEventStore",
    "SQLiteReader",
    "SQLiteSink",
    "Wire",
    "to_wire",
]

log = logging.getLogger(__name__)

WriterKind = Literal["process", "thread"]
R = TypeVar("R")
PARENT_CHECK_S = 0.5
# Pages one reclaim request frees (8 MiB at SQLite's 4 KiB pages): short enough that a
# write batch queued behind it is not held up noticeably.
RECLAIM_PAGES_PER_CALL = 2048

# The writer process's one store, opened by the first task it runs.
_WORKER_STORE: SQLiteEventStore | None = None
_CALLS = 0
GC_EVERY_CALLS = 100  # a full collection every ~100 batches (a few cycles at most)


def _worker_init() -> None:
    # Ctrl-C reaches the whole process group: the writer must not die of it mid-batch.
    # The parent decides when it stops: close(), or its death (see _exit_with_parent).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(
        target=_exit_with_parent, args=(os.getppid(),), name="parent-watch", daemon=True
    ).start()
    # Batches of tuples, freed by reference counting: the automatic cyclic GC would only
    # walk them. Collect now and then instead (see _worker_call).
    gc.freeze()
    gc.disable()


def _exit_with_parent(parent: int) -> None:
    """A writer whose parent was killed (kill -9) would otherwise wait for work forever,
    holding events.db open: leave as soon as the parent is gone. An open transaction is
    rolled back by SQLite; the batch was the dead parent's to retry."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)


def _worker_open(data_dir: str) -> None:
    global _WORKER_STORE  # the process exists to hold this one store
    _WORKER_STORE = SQLiteEventStore.in_dir(Path(data_dir))


def _worker_call(request: rpc.Request[R]) -> R:
    global _CALLS  # the writer process's own counter
    assert _WORKER_STORE is not None, "writer process not initialised"
    _CALLS += 1
    if _CALLS % GC_EVERY_CALLS == 0:
        gc.collect()
    # The store maps its own errors; this is the process's edge, so nothing of sqlite3's
    # crosses back even if a call path forgot to.
    with sqlite_errors(_WORKER_STORE.path):
        return request.run(_WORKER_STORE)


class StoreReads(ABC):
    """The :class:`~homeiq.sinks.base.EventReader` methods over a synchronous
    :class:`SQLiteEventStore`, written once: each subclass says where a request runs
    (``_run``): the writer process, the calling thread, or a pool of reader threads.
    Sequences become lists on the way, because a request may cross to another process."""

    @abstractmethod
    async def _run(self, request: rpc.Request[R]) -> R:
        """Answer ``request`` wherever this face runs the store."""

    async def history(
        self, entity_id: str, start: int | None, end: int | None, limit: int
    ) -> list[EventRecord]:
        """Events of one entity, oldest first."""
        return await self._run(rpc.History(entity_id, start, end, limit))

    async def summary(self) -> StoreSummary:
        """Totals per domain, area and source."""
        return await self._run(rpc.Summary())

    async def last_event_time(self) -> int | None:
        """Time of the newest stored event."""
        return await self._run(rpc.LastEventTime())

    async def keys(
        self,
        entity_ids: Sequence[str] | None = None,
        start: int | None = None,
        end: int | None = None,
    ) -> set[tuple[str, int]]:
        """Stored (entity_id, time) with ``start <= time <= end``; None = all / unbounded."""
        ids = None if entity_ids is None else list(entity_ids)
        return await self._run(rpc.Keys(ids, start, end))

    async def events(self, query: EventQuery) -> EventPage:
        """One page of events across entities (see :class:`EventQuery`)."""
        return await self._run(rpc.Events(query))

    async def history_many(
        self,
        entity_ids: Sequence[str],
        start: int,
        end: int,
        *,
        include_start_state: bool = True,
        attributes: bool = True,
    ) -> dict[str, list[EventRecord]]:
        """Each entity's state at ``start`` and its events in [start, end), oldest first."""
        return await self._run(
            rpc.HistoryMany(list(entity_ids), start, end, include_start_state, attributes)
        )

    async def last_states(
        self, entity_ids: Sequence[str], before: int | None = None
    ) -> dict[str, EventRecord]:
        """Each entity's newest event before ``before`` (None = newest), no attributes."""
        return await self._run(rpc.LastStates(list(entity_ids), before))

    async def by_context(
        self, context_ids: Sequence[str], *, around: int | None = None
    ) -> list[EventRecord]:
        """Events whose context_id is one of ``context_ids`` (near their creation)."""
        return await self._run(rpc.ByContext(list(context_ids), around))

    async def caused_by(
        self, context_ids: Sequence[str], *, around: int | None = None
    ) -> list[EventRecord]:
        """Events whose context_parent_id is one of ``context_ids`` (near their creation)."""
        return await self._run(rpc.ByContext(list(context_ids), around, caused_by=True))

    async def activity(self, start: int, end: int, *, bucket_s: int, top: int) -> Activity:
        """Event counts in [start, end) by entity, bucket, domain and area."""
        return await self._run(rpc.ActivityCounts(start, end, bucket_s, top))


class SQLiteSink(StoreReads):
    """Async face of :class:`SQLiteEventStore`, run by one writer process (or thread)."""

    name = "sqlite"

    def __init__(self, data_dir: Path, *, writer: WriterKind = "process") -> None:
        self.data_dir = data_dir
        self.writer = writer
        self._executor: Executor | None = None
        self._store: SQLiteEventStore | None = None  # thread mode only
        self._opened = False  # process mode: has the worker opened its store?

    @property
    def store(self) -> SQLiteEventStore:
        """The open store, in thread mode (for tests and tools in the same process)."""
        if self._store is None:
            raise RuntimeError("SQLiteSink.store used before open() (or not in thread mode)")
        return self._store

    def _start(self) -> Executor:
        if self.writer == "process":
            # spawn, not fork: forking a process that runs threads and an event loop
            # can copy held locks into the child.
            self._opened = False
            return ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init,
            )
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="homeiq-sqlite")

    async def _run(self, request: rpc.Request[R]) -> R:
        if self._executor is None:
            raise RuntimeError("SQLiteSink used before open()")
        loop = asyncio.get_running_loop()
        if self._store is not None:
            return await loop.run_in_executor(self._executor, request.run, self._store)
        try:
            if not self._opened:
                # A task, not a pool initializer: an initializer's error only shows as
                # a broken pool, and this one should say what is wrong with the file.
                await loop.run_in_executor(self._executor, _worker_open, str(self.data_dir))
                self._opened = True
            return await loop.run_in_executor(self._executor, _worker_call, request)
        except BrokenProcessPool as exc:
            # The writer process died (killed, out of memory): start a new one for the
            # next attempt; the writer retries this batch.
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = self._start()
            raise SinkUnavailable(f"sqlite writer process died: {exc}") from exc

    async def open(self) -> None:
        """Start the writer and create or migrate events.db."""
        try:
            self._executor = self._start()
        except (OSError, ImportError, NotImplementedError) as exc:
            # Some minimal containers have no working sem_open (/dev/shm): still run.
            log.warning("no writer process (%s); writing from a thread instead", exc)
            self.writer = "thread"
            self._executor = self._start()
        if self.writer == "thread":
            loop = asyncio.get_running_loop()
            self._store = await loop.run_in_executor(
                self._executor, SQLiteEventStore.in_dir, self.data_dir
            )
        else:
            await self._run(rpc.LastEventTime())  # opens the store, or says why it cannot

    async def write(self, batch: Sequence[EventRecord]) -> int:
        """Store a batch idempotently; returns how many rows were new."""
        return await self._run(rpc.WriteBatch([to_wire(r) for r in batch]))

    # -- deleting (the Eraser of events.db): through the one writer, between batches --

    async def count(self, deletion: Deletion) -> int:
        """How many stored events ``deletion`` matches."""
        return await self._run(rpc.CountDeletion(deletion))

    async def delete(self, deletion: Deletion, *, chunk_rows: int) -> int:
        """Delete what ``deletion`` matches in transactions of at most ``chunk_rows`` rows,
        then give the freed pages back; how many rows went.

        Each chunk is one request to the writer, so write batches queued meanwhile run
        between two chunks: ingest waits for one chunk at most, never the whole purge.
        """
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
        total = 0
        pending = deletion
        while pending.entity_ids:
            deleted, rest = await self._run(rpc.DeleteChunk(pending, chunk_rows))
            total += deleted
            pending = replace(pending, entity_ids=rest)
        if total:
            left = await self._run(rpc.Reclaim(RECLAIM_PAGES_PER_CALL))
            while left > 0:  # until no page is free (or, written meanwhile, none goes)
                before, left = left, await self._run(rpc.Reclaim(RECLAIM_PAGES_PER_CALL))
                if left >= before:
                    break
        return total

    async def entity_ids(self) -> list[str]:
        """Entities with stored events, sorted."""
        return await self._run(rpc.StoredEntityIds())

    async def vacuum(self) -> None:
        """One full VACUUM (switches an older events.db to incremental auto-vacuum).

        Rewrites the file while holding the write lock: for ``homeiq purge --vacuum``,
        when no server is writing.
        """
        await self._run(rpc.FullVacuum())

    async def close(self) -> None:
        """Close the database and stop the writer."""
        if self._executor is None:
            return
        try:
            if self._store is not None or self._opened:
                await self._run(rpc.Close())
        finally:
            self._executor.shutdown(wait=True)
            self._executor, self._store = None, None


class AsyncStore(StoreReads):
    """An :class:`~homeiq.sinks.base.EventReader` over an open :class:`SQLiteEventStore`.

    For tools that read a few rows (the CLI): the queries run on the calling thread, so
    the event loop waits for each. :class:`SQLiteReader` is the one for a server.
    """

    def __init__(self, store: SQLiteEventStore) -> None:
        self.store = store

    async def _run(self, request: rpc.Request[R]) -> R:
        return request.run(self.store)

    async def close(self) -> None:
        """Close the store (closing it again, as its owner may, is harmless)."""
        self.store.close()


class SQLiteReader(AsyncStore):
    """Queries for a server: a few read-only connections to events.db, used from worker
    threads, so reads neither wait on the writer process (WAL readers never block the
    writer, nor it them) nor stall the event loop, and run side by side."""

    def __init__(self, data_dir: Path, *, connections: int = 4) -> None:
        self.data_dir = data_dir
        self.connections = connections
        self._free: asyncio.Queue[SQLiteEventStore] | None = None
        self._all: list[SQLiteEventStore] = []

    async def _run(self, request: rpc.Request[R]) -> R:
        if self._free is None:
            # Opened on first use: events.db exists only once the sink has opened it.
            self._free = asyncio.Queue()
            for _ in range(self.connections):
                store = await asyncio.to_thread(
                    SQLiteEventStore.in_dir, self.data_dir, readonly=True
                )
                self._all.append(store)
                self._free.put_nowait(store)
        store = await self._free.get()
        try:
            return await asyncio.to_thread(request.run, store)
        finally:
            self._free.put_nowait(store)

    async def close(self) -> None:
        """Close every connection."""
        for store in self._all:
            store.close()
        self._all.clear()
        self._free = None
