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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from homeiq.errors import SinkRejected, SinkUnavailable
from homeiq.metadata.migrations import connect, migrate, transaction
from homeiq.model import EventRecord, Origin, Source
from homeiq.sinks.base import StoreSummary
from homeiq.sinks.sqlite import schema
from homeiq.sinks.sqlite.codec import decode_context, encode_context

EVENTS_DB = "events.db"
# Attribute sets seen recently; most entities repeat a handful, so this stays hot.
ATTRIBUTE_CACHE_SIZE = 8192

_INSERT = "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_SELECT = """
SELECT n.entity_id, e.time, e.state, e.value, e.previous_state, e.last_changed,
       e.duration_us, a.json, e.context_id, e.context_parent_id, u.user_id,
       p.device_id, p.area_id, p.floor_id, e.origin, e.source, e.dropped_attributes_bytes
FROM events e
JOIN entities n ON n.id = e.entity
LEFT JOIN attributes a ON a.id = e.attributes
LEFT JOIN placements p ON p.id = e.placement
LEFT JOIN users u ON u.id = e.context_user
"""


def _unavailable(exc: sqlite3.Error) -> Exception:
    """Map an SQLite error to the error tree: locked/busy/disk-full may pass, others won't."""
    text = str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError) and (
        "locked" in text or "busy" in text or "disk" in text or "unable to open" in text
    ):
        return SinkUnavailable(f"sqlite: {exc}")
    return SinkRejected(f"sqlite: {exc}")


class SQLiteEventStore:
    """events.db: write batches idempotently, read them back as records."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            if not readonly:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = connect(str(path), readonly=readonly)
            if not readonly:
                migrate(self._conn, schema.STEPS)
        except sqlite3.Error as exc:
            raise _unavailable(exc) from exc
        except OSError as exc:
            raise SinkUnavailable(f"cannot create {path.parent}: {exc.strerror}") from exc
        self._entities: dict[str, int] = {}
        self._users: dict[str, int] = {}
        self._placements: dict[tuple[str | None, str | None, str | None], int] = {}
        self._attributes: dict[bytes, int] = {}
        self._load_ids()

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

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    # -- writing ----------------------------------------------------------------------

    def write(self, batch: Sequence[EventRecord]) -> int:
        """Insert ``batch`` in one transaction, skipping keys already stored; returns new rows."""
        if not batch:
            return 0
        with self._lock:
            conn = self._conn
            try:
                with transaction(conn):
                    cursor = conn.executemany(_INSERT, [self._row(r) for r in batch])
                # executemany's rowcount sums the inserts; OR IGNORE'd duplicates add 0.
                return cursor.rowcount
            except (sqlite3.Error, ValueError, OverflowError) as exc:
                # Ids cached during the rolled-back transaction no longer exist: reload.
                self._attributes.clear()
                with contextlib.suppress(sqlite3.Error):
                    self._load_ids()
                if isinstance(exc, sqlite3.Error):
                    raise _unavailable(exc) from exc
                # A value SQLite cannot bind (lone surrogate, integer over 64 bits).
                raise SinkRejected(f"sqlite cannot store a value: {exc}") from exc

    def _row(self, r: EventRecord) -> tuple[Any, ...]:
        entity = self._entities.get(r.entity_id)
        if entity is None:
            entity = self._insert_id("INSERT INTO entities (entity_id) VALUES (?)", (r.entity_id,))
            self._entities[r.entity_id] = entity
        attributes = self._attributes.get(r.attributes_json)
        if attributes is None:
            attributes = self._attributes_id(r.attributes_json)
        placement = None
        if r.device_id is not None or r.area_id is not None or r.floor_id is not None:
            key = (r.device_id, r.area_id, r.floor_id)
            placement = self._placements.get(key)
            if placement is None:
                placement = self._insert_id(
                    "INSERT INTO placements (device_id, area_id, floor_id) VALUES (?, ?, ?)", key
                )
                self._placements[key] = placement
        user = None
        if r.context_user_id is not None:
            user = self._users.get(r.context_user_id)
            if user is None:
                user = self._insert_id(
                    "INSERT INTO users (user_id) VALUES (?)", (r.context_user_id,)
                )
                self._users[r.context_user_id] = user
        duration = r.duration_in_state_s
        return (
            entity,
            r.time,
            r.state,
            r.value,
            r.previous_state,
            None if r.last_changed == r.time else r.last_changed,
            None if duration is None else round(duration * 1_000_000),
            attributes,
            placement,
            encode_context(r.context_id),
            encode_context(r.context_parent_id),
            user,
            int(r.origin),
            int(r.source),
            r.dropped_attributes_bytes or None,
        )

    def _insert_id(self, sql: str, params: tuple[Any, ...]) -> int:
        cursor = self._conn.execute(sql, params)
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def _attributes_id(self, blob: bytes) -> int:
        digest = zlib.crc32(blob)
        rows = self._conn.execute("SELECT id, json FROM attributes WHERE hash = ?", (digest,))
        row_id = next((int(i) for i, stored in rows if bytes(stored) == blob), None)
        if row_id is None:
            row_id = self._insert_id(
                "INSERT INTO attributes (hash, json) VALUES (?, ?)", (digest, blob)
            )
        if len(self._attributes) >= ATTRIBUTE_CACHE_SIZE:
            self._attributes.clear()
        self._attributes[blob] = row_id
        return row_id

    # -- reading ----------------------------------------------------------------------

    def history(
        self, entity_id: str, start: int | None, end: int | None, limit: int
    ) -> list[EventRecord]:
        """Events of one entity with ``start <= time < end``, oldest first."""
        with self._lock:
            entity = self._conn.execute(
                "SELECT id FROM entities WHERE entity_id = ?", (entity_id,)
            ).fetchone()
            if entity is None:
                return []
            rows = self._conn.execute(
                _SELECT + " WHERE e.entity = ? AND e.time >= ? AND e.time < ?"
                " ORDER BY e.time LIMIT ?",
                (
                    entity[0],
                    start if start is not None else -(2**63),
                    end if end is not None else 2**63 - 1,
                    limit,
                ),
            ).fetchall()
        return [_record(row) for row in rows]

    def keys(self) -> set[tuple[str, int]]:
        """Every stored (entity_id, time): the idempotency keys, for tests and audits."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT n.entity_id, e.time FROM events e JOIN entities n ON n.id = e.entity"
            ).fetchall()
        return {(str(e), int(t)) for e, t in rows}

    def all_records(self) -> list[EventRecord]:
        """Every stored record ordered by time; meant for tests and small stores."""
        with self._lock:
            rows = self._conn.execute(_SELECT + " ORDER BY e.time, n.entity_id").fetchall()
        return [_record(row) for row in rows]

    def summary(self) -> StoreSummary:
        """Totals per domain, area and source, and the span of time stored."""
        result = StoreSummary()
        with self._lock:
            c = self._conn
            names = dict(c.execute("SELECT id, entity_id FROM entities").fetchall())
            areas = dict(c.execute("SELECT id, area_id FROM placements").fetchall())
            counts = c.execute(
                "SELECT entity, placement, source, COUNT(*) FROM events"
                " GROUP BY entity, placement, source"
            ).fetchall()
            first, last = c.execute("SELECT MIN(time), MAX(time) FROM events").fetchone()
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
        with self._lock:
            row = self._conn.execute("SELECT MAX(time) FROM events").fetchone()
        return None if row[0] is None else int(row[0])


def _record(row: tuple[Any, ...]) -> EventRecord:
    (
        entity_id,
        time,
        state,
        value,
        previous,
        last_changed,
        duration_us,
        attributes_json,
        context_id,
        parent_id,
        user_id,
        device_id,
        area_id,
        floor_id,
        origin,
        source,
        dropped,
    ) = row
    blob = bytes(attributes_json) if attributes_json is not None else b"{}"
    return EventRecord(
        entity_id=entity_id,
        time=time,
        state=state,
        value=value,
        previous_state=previous,
        duration_in_state_s=None if duration_us is None else duration_us / 1_000_000,
        last_changed=time if last_changed is None else last_changed,
        attributes=orjson.loads(blob),
        attributes_json=blob,
        dropped_attributes_bytes=dropped or 0,
        context_id=decode_context(context_id),
        context_parent_id=decode_context(parent_id),
        context_user_id=user_id,
        device_id=device_id,
        area_id=area_id,
        floor_id=floor_id,
        origin=Origin(origin),
        source=Source(source),
    )
