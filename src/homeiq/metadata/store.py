"""metadata.db: the registry as Home Assistant last listed it, dead letters, and small
bits of process state (``kv``). Synchronous; async callers run it in a thread."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from homeiq.metadata import schema
from homeiq.metadata.migrations import check_version, connect, migrate, transaction
from homeiq.model import (
    Area,
    DeadLetter,
    Device,
    Entity,
    Floor,
    Gap,
    QualityEvent,
    RegistrySnapshot,
)

METADATA_DB = "metadata.db"


class MetadataStore:
    """metadata.db behind a lock: the writer, the registry sync and readers share it."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self._lock = threading.Lock()
        if not readonly:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._conn: sqlite3.Connection = connect(str(path), readonly=readonly)
        try:
            if readonly:
                check_version(self._conn, schema.STEPS)
            else:
                migrate(self._conn, schema.STEPS)
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def in_dir(cls, data_dir: Path, *, readonly: bool = False) -> MetadataStore:
        """The store at its standard place in the data directory."""
        return cls(data_dir / METADATA_DB, readonly=readonly)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    # -- registry ---------------------------------------------------------------------

    def replace_registry(self, snapshot: RegistrySnapshot) -> None:
        """Make the stored registry exactly ``snapshot`` (one transaction)."""
        with self._lock, transaction(self._conn) as conn:
            for table in ("floors", "areas", "devices", "entities"):
                conn.execute(f"DELETE FROM {table}")
            conn.executemany(
                "INSERT INTO floors VALUES (?, ?, ?)",
                [(f.floor_id, f.name, f.level) for f in snapshot.floors],
            )
            conn.executemany(
                "INSERT INTO areas VALUES (?, ?, ?)",
                [(a.area_id, a.name, a.floor_id) for a in snapshot.areas],
            )
            conn.executemany(
                "INSERT INTO devices VALUES (?, ?, ?, ?, ?)",
                [
                    (d.device_id, d.name, d.area_id, d.manufacturer, d.model)
                    for d in snapshot.devices
                ],
            )
            conn.executemany(
                "INSERT INTO entities VALUES (?, ?, ?, ?, ?)",
                [
                    (e.entity_id, e.device_id, e.area_id, e.platform, e.name)
                    for e in snapshot.entities
                ],
            )

    def load_registry(self) -> RegistrySnapshot:
        """The registry as last stored."""
        with self._lock:
            c = self._conn
            return RegistrySnapshot(
                floors=tuple(Floor(*r) for r in c.execute("SELECT * FROM floors ORDER BY 1")),
                areas=tuple(Area(*r) for r in c.execute("SELECT * FROM areas ORDER BY 1")),
                devices=tuple(Device(*r) for r in c.execute("SELECT * FROM devices ORDER BY 1")),
                entities=tuple(Entity(*r) for r in c.execute("SELECT * FROM entities ORDER BY 1")),
            )

    # -- dead letters -----------------------------------------------------------------

    def add_dead_letters(self, letters: Iterable[DeadLetter]) -> int:
        """Keep messages that could not be stored; returns how many were added."""
        rows = [(d.received_at, d.reason, d.detail, d.entity_id, d.payload) for d in letters]
        if not rows:
            return 0
        with self._lock, transaction(self._conn) as conn:
            conn.executemany(
                "INSERT INTO dead_letters (received_at, reason, detail, entity_id, payload)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def dead_letter_counts(self) -> dict[str, int]:
        """Dead letters kept, by reason."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT reason, COUNT(*) FROM dead_letters GROUP BY reason ORDER BY reason"
            ).fetchall()
        return {str(reason): int(count) for reason, count in rows}

    def dead_letters(self, *, reason: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters, optionally of one reason."""
        sql = "SELECT reason, detail, payload, received_at, entity_id FROM dead_letters"
        params: tuple[object, ...] = ()
        if reason is not None:
            sql += " WHERE reason = ?"
            params = (reason,)
        sql += " ORDER BY id DESC LIMIT ?"
        with self._lock:
            rows = self._conn.execute(sql, (*params, limit)).fetchall()
        return [DeadLetter(r[0], r[1], bytes(r[2]), r[3], r[4]) for r in rows]

    # -- small state ------------------------------------------------------------------

    def get(self, key: str) -> str | None:
        """A value from the key/value table."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, key: str, value: str) -> None:
        """Set a value in the key/value table."""
        with self._lock, transaction(self._conn) as conn:
            conn.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- gaps and data quality --------------------------------------------------------

    def add_gap(self, gap: Gap) -> int:
        """Remember a span whose events backfill has to fetch; returns its id."""
        with self._lock, transaction(self._conn) as conn:
            cur = conn.execute(
                "INSERT INTO gaps (start_us, end_us, reason, created_at) VALUES (?, ?, ?, ?)",
                (gap.start_us, gap.end_us, gap.reason, gap.created_at),
            )
        return int(cur.lastrowid or 0)

    def gaps(self) -> list[Gap]:
        """Spans still to backfill, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT start_us, end_us, reason, created_at, id FROM gaps ORDER BY start_us, id"
            ).fetchall()
        return [Gap(*row) for row in rows]

    def remove_gap(self, gap_id: int) -> None:
        """Forget a span once backfilled (or given up on and reported)."""
        with self._lock, transaction(self._conn) as conn:
            conn.execute("DELETE FROM gaps WHERE id = ?", (gap_id,))

    def add_quality_event(self, event: QualityEvent) -> None:
        """Record a data-quality event (a gap not refilled, events dropped, ...)."""
        with self._lock, transaction(self._conn) as conn:
            conn.execute(
                "INSERT INTO quality_events (time, kind, start_us, end_us, events, detail)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (event.time, event.kind, event.start_us, event.end_us, event.events, event.detail),
            )

    def quality_events(self, *, kind: str | None = None, limit: int = 100) -> list[QualityEvent]:
        """The newest data-quality events, optionally of one kind."""
        sql = "SELECT time, kind, start_us, end_us, events, detail FROM quality_events"
        params: tuple[object, ...] = ()
        if kind is not None:
            sql += " WHERE kind = ?"
            params = (kind,)
        sql += " ORDER BY id DESC LIMIT ?"
        with self._lock:
            rows = self._conn.execute(sql, (*params, limit)).fetchall()
        return [QualityEvent(*row) for row in rows]
