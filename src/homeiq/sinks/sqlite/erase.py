"""Deleting events from events.db: counted, chunked, and the space given back.

These run where the store's one writer runs (:class:`~homeiq.sinks.sqlite.SQLiteSink`
sends them as requests, between write batches): a second connection deleting would fight
the writer for SQLite's one write lock and stall ingest for as long as it held it.

Each :func:`delete_chunk` is one transaction of at most ``limit`` rows, so a process
killed mid-purge leaves whole chunks done and the rest untouched; deleting the same
:class:`~homeiq.sinks.base.Deletion` again finishes the job. Rows are found through the
table's clustering key (entity, time): every chunk is an index range, never a scan.
"""

from __future__ import annotations

import sqlite3

from homeiq.sinks.base import Deletion
from homeiq.sinks.sqlite.store import SQLiteEventStore
from homeiq.sqlitedb import transaction

MIN_US = -(2**63)
MAX_US = 2**63 - 1
VARIABLES_MAX = 500  # stay well under SQLite's bound-variable limit
RECLAIM_PAGES_MAX = 100_000  # pages a reclaim request may free (~400 MB at 4 KiB)


def _where(deletion: Deletion) -> tuple[str, list[int]]:
    """The condition on one entity's rows (its id is the first parameter) and the rest
    of its parameters."""
    sql = "entity = ? AND time >= ? AND time < ?"
    params = [
        MIN_US if deletion.after is None else deletion.after,
        MAX_US if deletion.before is None else deletion.before,
    ]
    if deletion.sources:
        sql += f" AND source IN ({','.join('?' * len(deletion.sources))})"
        params += [int(s) for s in deletion.sources]
    return sql, params


def _ids(conn: sqlite3.Connection, entity_ids: list[str]) -> dict[str, int]:
    """The row ids of the entities that events.db knows, by name."""
    found: dict[str, int] = {}
    for first in range(0, len(entity_ids), VARIABLES_MAX):
        chunk = entity_ids[first : first + VARIABLES_MAX]
        marks = ",".join("?" * len(chunk))
        for row_id, name in conn.execute(
            f"SELECT id, entity_id FROM entities WHERE entity_id IN ({marks})", chunk
        ):
            found[str(name)] = int(row_id)
    return found


def count(store: SQLiteEventStore, deletion: Deletion) -> int:
    """How many stored events ``deletion`` matches."""
    sql, params = _where(deletion)
    total = 0
    with store.locked("count events in") as conn:
        for entity in _ids(conn, list(deletion.entity_ids)).values():
            row = conn.execute(f"SELECT COUNT(*) FROM events WHERE {sql}", (entity, *params))
            total += int(row.fetchone()[0])
    return total


def delete_chunk(
    store: SQLiteEventStore, deletion: Deletion, limit: int
) -> tuple[int, tuple[str, ...]]:
    """Delete up to ``limit`` matching rows in one transaction, entity by entity.

    Returns how many went, and the entities that may still have matching rows (the one
    the chunk stopped in, then those not reached): the next chunk's ``entity_ids``.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    sql, params = _where(deletion)
    deleted = 0
    names = list(deletion.entity_ids)
    with store.locked("delete events from") as conn, transaction(conn):
        ids = _ids(conn, names)
        while names:
            entity = ids.get(names[0])
            if entity is not None:
                wanted = limit - deleted
                # The time of the chunk's last row bounds a plain range delete (one walk
                # along the clustered key; an IN list would seek the key once per row).
                last = conn.execute(
                    f"SELECT time FROM events WHERE {sql} ORDER BY time LIMIT 1 OFFSET ?",
                    (entity, *params, wanted - 1),
                ).fetchone()
                bounded = list(params)
                if last is not None:
                    bounded[1] = int(last[0]) + 1  # `time < before` becomes `time <= last`
                cursor = conn.execute(f"DELETE FROM events WHERE {sql}", (entity, *bounded))
                deleted += cursor.rowcount
                if last is not None:
                    break  # this entity may have more: the next chunk starts with it
            names.pop(0)
    return deleted, tuple(names)


def reclaim(store: SQLiteEventStore, pages: int) -> int:
    """Give up to ``pages`` free pages back to the file system (incremental vacuum);
    how many free pages are left. A no-op on a file made before auto_vacuum was set
    (its ``auto_vacuum`` is 0 until a full VACUUM)."""
    with store.locked("reclaim space in") as conn:
        if int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]) != 2:
            return 0
        conn.execute(f"PRAGMA incremental_vacuum({max(1, min(pages, RECLAIM_PAGES_MAX))})")
        return int(conn.execute("PRAGMA freelist_count").fetchone()[0])


def entity_ids(store: SQLiteEventStore) -> list[str]:
    """Entities with at least one stored event, sorted."""
    with store.locked("read") as conn:
        rows = conn.execute(
            "SELECT entity_id FROM entities n"
            " WHERE EXISTS (SELECT 1 FROM events WHERE entity = n.id) ORDER BY entity_id"
        ).fetchall()
    return [str(r[0]) for r in rows]


def full_vacuum(store: SQLiteEventStore) -> None:
    """Switch an older events.db to incremental auto-vacuum with one full VACUUM.

    Rewrites the whole file (needs as much free disk as the file, and holds the write
    lock throughout): only for ``homeiq purge --vacuum`` while no server runs.
    """
    with store.locked("vacuum") as conn:
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("VACUUM")
