"""The embedded event store: synchronous SQLite code, driven from one thread.

:class:`~homeiq.sinks.sqlite.SQLiteSink` runs it on a dedicated thread for the pipeline;
the CLI uses it directly. Lookups of small-integer ids are cached in memory, so a batch
costs one ``executemany`` of plain tuples plus an insert for anything new.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from homeiq.errors import SinkRejected, SinkUnavailable
from homeiq.model import EventRecord, Source
from homeiq.sinks.base import Activity, EventPage, EventQuery, StoreSummary
from homeiq.sinks.sqlite import queries, schema
from homeiq.sinks.sqlite.codec import decode_attributes, encode_attributes, encode_context
from homeiq.sqlitedb import (
    check_version,
    connect,
    migrate,
    sqlite_error,
    sqlite_errors,
    transaction,
)

EVENTS_DB = "events.db"
# Attribute sets seen recently; most entities repeat a handful, so this stays hot.
ATTRIBUTE_CACHE_SIZE = 8192
_NOWHERE = (None, None, None)

# Idempotent on (entity, time). One exception: a live row replaces a backfilled one, so
# whichever arrives first, the row with the real context ids and attributes wins.
_COLUMNS = (
    "state, value, previous_state, last_changed, duration_us, attributes, placement,"
    " context_id, context_parent_id, context_user, origin, source, dropped_attributes_bytes"
)
_INSERT = (
    "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    f" ON CONFLICT (entity, time) DO UPDATE SET ({_COLUMNS}) = ("
    + ", ".join(f"excluded.{c.strip()}" for c in _COLUMNS.split(","))
    + f") WHERE excluded.source = {int(Source.LIVE)} AND events.source <> {int(Source.LIVE)}"
)
# MIN/MAX of time over the whole table, as one index seek per entity: with events
# clustered on (entity, time) a plain MAX(time) would read every row.
_SPAN = """
SELECT MIN(first), MAX(last) FROM (
    SELECT (SELECT MIN(time) FROM events WHERE entity = n.id) AS first,
           (SELECT MAX(time) FROM events WHERE entity = n.id) AS last
    FROM entities n)
"""


# A record as it crosses to the writer process: plain values in this order. A tuple
# pickles about five times faster than the dataclass, and the attribute dict is not
# needed there, its canonical JSON is.
Wire = tuple[
    str,  # 0 entity_id
    int,  # 1 time
    str | None,  # 2 state
    float | None,  # 3 value
    str | None,  # 4 previous_state
    int | None,  # 5 last_changed
    float | None,  # 6 duration_in_state_s
    bytes,  # 7 attributes_json
    int,  # 8 dropped_attributes_bytes
    str | None,  # 9 context_id
    str | None,  # 10 context_parent_id
    str | None,  # 11 context_user_id
    str | None,  # 12 device_id
    str | None,  # 13 area_id
    str | None,  # 14 floor_id
    int,  # 15 origin
    int,  # 16 source
]


def to_wire(r: EventRecord) -> Wire:
    """The plain-tuple form of a record that :meth:`SQLiteEventStore.write_wire` takes."""
    return (
        r.entity_id,
        r.time,
        r.state,
        r.value,
        r.previous_state,
        r.last_changed,
        r.duration_in_state_s,
        r.attributes_json,
        r.dropped_attributes_bytes,
        r.context_id,
        r.context_parent_id,
        r.context_user_id,
        r.device_id,
        r.area_id,
        r.floor_id,
        int(r.origin),
        int(r.source),
    )


class SQLiteEventStore:
    """events.db: write batches idempotently, read them back as records."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entities: dict[str, int] = {}
        self._users: dict[str, int] = {}
        self._placements: dict[tuple[str | None, str | None, str | None], int] = {}
        self._attributes: dict[bytes, int] = {}
        try:
            if not readonly:
                path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkUnavailable(f"cannot create {path.parent}: {exc.strerror}") from exc
        with sqlite_errors(path, "open"):
            self._conn = connect(str(path), readonly=readonly)
            try:
                if (
                    not readonly
                    and not self._conn.execute("SELECT 1 FROM sqlite_master").fetchone()
                ):
                    # A new events.db: purges give pages back with incremental_vacuum. Set
                    # by a VACUUM of the empty file (instant), as WAL already wrote its
                    # header. An older file needs one full VACUUM (`homeiq purge --vacuum`).
                    self._conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
                    self._conn.execute("VACUUM")
                if readonly:
                    check_version(self._conn, schema.STEPS)
                else:
                    migrate(self._conn, schema.STEPS)
                self._load_ids()
            except BaseException:
                self._conn.close()
                raise

    @classmethod
    def in_dir(cls, data_dir: Path, *, readonly: bool = False) -> SQLiteEventStore:
        """The store at its standard place in the data directory."""
        return cls(data_dir / EVENTS_DB, readonly=readonly)

    def _load_ids(self) -> None:
        c = self._conn
        self._entities = {
            str(n): int(i) for i, n in c.execute("SELECT id, entity_id FROM entities")
        }
        self._users = {str(u): int(i) for i, u in c.execute("SELECT id, user_id FROM users")}
        self._placements = {
            (d, a, f): int(i)
            for i, d, a, f in c.execute("SELECT id, device_id, area_id, floor_id FROM placements")
        }
        # One writer owns events.db, so attribute ids are handed out here, in bulk.
        self._last_attribute_id = int(
            c.execute("SELECT MAX(id) FROM attributes").fetchone()[0] or 0
        )

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def locked(self, action: str) -> Iterator[sqlite3.Connection]:
        """The connection under the store's lock, sqlite3's errors mapped naming
        ``action`` (for the deletes of :mod:`~homeiq.sinks.sqlite.erase`)."""
        with self._lock, sqlite_errors(self.path, action):
            yield self._conn

    # -- writing ----------------------------------------------------------------------

    def write(self, batch: Sequence[EventRecord]) -> int:
        """Insert ``batch`` in one transaction, skipping keys already stored; returns new rows."""
        return self.write_wire([to_wire(r) for r in batch])

    def write_wire(self, batch: Sequence[Wire]) -> int:
        """:meth:`write` for records already in their :data:`Wire` form."""
        if not batch:
            return 0
        with self._lock:
            conn = self._conn
            try:
                with transaction(conn):
                    attribute_ids = self._attribute_ids(batch)
                    rows = [self._row(r, a) for r, a in zip(batch, attribute_ids, strict=True)]
                    cursor = conn.executemany(_INSERT, rows)
                # executemany's rowcount sums inserts (and live-over-backfill updates);
                # duplicates add 0.
                return cursor.rowcount
            except (sqlite3.Error, ValueError, OverflowError) as exc:
                # Ids cached during the rolled-back transaction no longer exist: reload.
                self._attributes.clear()
                with contextlib.suppress(sqlite3.Error):
                    self._load_ids()
                if isinstance(exc, sqlite3.Error):
                    raise sqlite_error(exc, self.path, "write") from exc
                # A value SQLite cannot bind (lone surrogate, integer over 64 bits).
                raise SinkRejected(f"sqlite cannot store a value: {exc}") from exc

    def _row(self, w: Wire, attributes: int) -> tuple[Any, ...]:
        entity_id, time = w[0], w[1]
        entity = self._entities.get(entity_id)
        if entity is None:
            entity = self._insert_id("INSERT INTO entities (entity_id) VALUES (?)", (entity_id,))
            self._entities[entity_id] = entity
        placement = None
        key = (w[12], w[13], w[14])
        if key != _NOWHERE:
            placement = self._placements.get(key)
            if placement is None:
                placement = self._insert_id(
                    "INSERT INTO placements (device_id, area_id, floor_id) VALUES (?, ?, ?)", key
                )
                self._placements[key] = placement
        user = None
        user_id = w[11]
        if user_id is not None:
            user = self._users.get(user_id)
            if user is None:
                user = self._insert_id("INSERT INTO users (user_id) VALUES (?)", (user_id,))
                self._users[user_id] = user
        duration, parent = w[6], w[10]
        return (
            entity,
            time,
            w[2],
            w[3],
            w[4],
            None if w[5] == time else w[5],
            None if duration is None else round(duration * 1_000_000),
            attributes,
            placement,
            encode_context(w[9]),
            None if parent is None else encode_context(parent),
            user,
            w[15],
            w[16],
            w[8] or None,
        )

    def _insert_id(self, sql: str, params: tuple[Any, ...]) -> int:
        cursor = self._conn.execute(sql, params)
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def _attribute_ids(self, batch: Sequence[Wire]) -> list[int]:
        """The attributes row of every record, inserting new sets: a few queries a batch."""
        cache = self._attributes
        ids: list[int] = []
        missing: dict[bytes, list[int]] = {}
        for index, record in enumerate(batch):
            blob = record[7]
            found = cache.get(blob)
            if found is None:
                missing.setdefault(blob, []).append(index)
                found = 0
            ids.append(found)
        if not missing:
            return ids
        hashes = {blob: zlib.crc32(blob) for blob in missing}
        stored = self._attributes_by_hash(set(hashes.values()))
        new_rows = []
        if len(cache) + len(missing) > ATTRIBUTE_CACHE_SIZE:
            cache.clear()
        for blob, indexes in missing.items():
            digest = hashes[blob]
            row_id = next((i for i, b in stored.get(digest, ()) if b == blob), None)
            if row_id is None:
                self._last_attribute_id += 1
                row_id = self._last_attribute_id
                new_rows.append((row_id, digest, *encode_attributes(blob)))
            cache[blob] = row_id
            for index in indexes:
                ids[index] = row_id
        self._conn.executemany(
            "INSERT INTO attributes (id, hash, json, codec) VALUES (?, ?, ?, ?)", new_rows
        )
        return ids

    def _attributes_by_hash(self, digests: set[int]) -> dict[int, list[tuple[int, bytes]]]:
        """Stored attribute sets (decoded) whose hash is one of ``digests``."""
        found: dict[int, list[tuple[int, bytes]]] = {}
        wanted = list(digests)
        for start in range(0, len(wanted), 500):  # stay under SQLite's variable limit
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row_id, digest, blob, codec in self._conn.execute(
                f"SELECT id, hash, json, codec FROM attributes WHERE hash IN ({marks})", chunk
            ):
                found.setdefault(digest, []).append((row_id, decode_attributes(blob, codec)))
        return found

    # -- reading ----------------------------------------------------------------------

    def history(
        self, entity_id: str, start: int | None, end: int | None, limit: int
    ) -> list[EventRecord]:
        """Events of one entity with ``start <= time < end``, oldest first."""
        with self._lock, sqlite_errors(self.path, "read"):
            entity = self._conn.execute(
                "SELECT id FROM entities WHERE entity_id = ?", (entity_id,)
            ).fetchone()
            if entity is None:
                return []
            rows = self._conn.execute(
                queries.SELECT + " WHERE e.entity = ? AND e.time >= ? AND e.time < ?"
                " ORDER BY e.time LIMIT ?",
                (
                    entity[0],
                    start if start is not None else -(2**63),
                    end if end is not None else 2**63 - 1,
                    limit,
                ),
            ).fetchall()
        return queries.records(rows)

    def keys(
        self,
        entity_ids: Sequence[str] | None = None,
        start: int | None = None,
        end: int | None = None,
    ) -> set[tuple[str, int]]:
        """Stored (entity_id, time) with ``start <= time <= end``; None = all / unbounded.

        The idempotency keys: backfill skips what is stored; tests and audits compare.
        """
        low = -(2**63) if start is None else start
        high = 2**63 - 1 if end is None else end
        # Entities outer, one seek each: the other join order scans every event.
        sql = (
            "SELECT n.entity_id, e.time FROM entities n CROSS JOIN events e ON e.entity = n.id"
            " WHERE e.time >= ? AND e.time <= ?"
        )
        with self._lock, sqlite_errors(self.path, "read"):
            if entity_ids is None:
                rows = self._conn.execute(sql, (low, high)).fetchall()
            else:
                # By name, not the id cache: a read-only store may be older than the rows.
                wanted = list(dict.fromkeys(entity_ids))
                rows = []
                for first in range(0, len(wanted), 500):  # under SQLite's variable limit
                    chunk = wanted[first : first + 500]
                    marks = ",".join("?" * len(chunk))
                    rows += self._conn.execute(
                        f"{sql} AND n.entity_id IN ({marks})", (low, high, *chunk)
                    ).fetchall()
        return {(str(e), int(t)) for e, t in rows}

    def events(self, query: EventQuery) -> EventPage:
        """One page of events across entities (see :class:`EventQuery`)."""
        with self._lock, sqlite_errors(self.path, "read"):
            return queries.events(self._conn, query)

    def history_many(
        self,
        entity_ids: Sequence[str],
        start: int,
        end: int,
        include_start_state: bool = True,
        attributes: bool = True,
    ) -> dict[str, list[EventRecord]]:
        """Each entity's state at ``start`` and its events in [start, end), oldest first."""
        with self._lock, sqlite_errors(self.path, "read"):
            return queries.history_many(
                self._conn, entity_ids, start, end, include_start_state, attributes
            )

    def last_states(
        self, entity_ids: Sequence[str], before: int | None = None
    ) -> dict[str, EventRecord]:
        """Each entity's newest event before ``before`` (None = newest), no attributes."""
        with self._lock:
            return queries.last_states(self._conn, entity_ids, before)

    def by_context(
        self, context_ids: Sequence[str], around: int | None = None
    ) -> list[EventRecord]:
        """Events whose context_id is one of ``context_ids`` (near their creation)."""
        with self._lock, sqlite_errors(self.path, "read"):
            return queries.by_context(self._conn, context_ids, "context_id", around)

    def caused_by(self, context_ids: Sequence[str], around: int | None = None) -> list[EventRecord]:
        """Events whose context_parent_id is one of ``context_ids`` (near their creation)."""
        with self._lock, sqlite_errors(self.path, "read"):
            return queries.by_context(self._conn, context_ids, "context_parent_id", around)

    def activity(self, start: int, end: int, bucket_s: int, top: int) -> Activity:
        """Event counts in [start, end) by entity, bucket, domain and area."""
        with self._lock, sqlite_errors(self.path, "read"):
            return queries.activity(self._conn, start, end, bucket_s, top)

    def all_records(self) -> list[EventRecord]:
        """Every stored record ordered by time; meant for tests and small stores."""
        with self._lock, sqlite_errors(self.path, "read"):
            rows = self._conn.execute(queries.SELECT + " ORDER BY e.time, n.entity_id").fetchall()
        return queries.records(rows)

    def summary(self) -> StoreSummary:
        """Totals per domain, area and source, and the span of time stored."""
        result = StoreSummary()
        with self._lock, sqlite_errors(self.path, "read"):
            c = self._conn
            names = dict(c.execute("SELECT id, entity_id FROM entities").fetchall())
            areas = dict(c.execute("SELECT id, area_id FROM placements").fetchall())
            counts = c.execute(
                "SELECT entity, placement, source, COUNT(*) FROM events"
                " GROUP BY entity, placement, source"
            ).fetchall()
            first, last = c.execute(_SPAN).fetchone()
        seen: set[int] = set()
        for entity, placement, source, count in counts:
            seen.add(entity)
            domain = str(names[entity]).partition(".")[0]
            area = areas.get(placement) or "(no area)"
            source_name = Source(source).name.lower()
            result.total += count
            result.by_domain[domain] = result.by_domain.get(domain, 0) + count
            result.by_area[area] = result.by_area.get(area, 0) + count
            result.by_source[source_name] = result.by_source.get(source_name, 0) + count
        result.entities = len(seen)
        result.first_time, result.last_time = first, last
        return result

    def last_event_time(self) -> int | None:
        """Time of the newest stored event."""
        with self._lock, sqlite_errors(self.path, "read"):
            row = self._conn.execute(_SPAN).fetchone()[1:]
        return None if row[0] is None else int(row[0])
