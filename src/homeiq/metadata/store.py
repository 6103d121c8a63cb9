"""metadata.db: the registry as Home Assistant last listed it, dead letters, and small
bits of process state (``kv``). Synchronous; async callers run it in a thread."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homeiq.metadata import schema
from homeiq.model import (
    Area,
    BackupRun,
    DeadLetter,
    Device,
    Entity,
    Floor,
    Gap,
    QualityEvent,
    RegistrySnapshot,
)
from homeiq.sqlitedb import SQLiteFile

METADATA_DB = "metadata.db"


@dataclass(slots=True, frozen=True)
class StoredDeadLetter:
    """A dead letter with its row id (what the API browses and re-drives by)."""

    id: int
    letter: DeadLetter


@dataclass(slots=True, frozen=True)
class StoredApiKey:
    """An API key as stored: everything but the key (only its hash is kept, not returned).

    Times are integer microseconds since the epoch.
    """

    id: int
    name: str
    scopes: tuple[str, ...]
    created_at: int
    last_used_at: int | None = None
    revoked_at: int | None = None

    @property
    def revoked(self) -> bool:
        """True once the key was revoked."""
        return self.revoked_at is not None


_KEY_COLUMNS = "id, name, scopes, created_at, last_used_at, revoked_at"


def _key(row: Any) -> StoredApiKey:
    key_id, name, scopes, created_at, last_used_at, revoked_at = row
    return StoredApiKey(
        int(key_id),
        str(name),
        tuple(str(scopes).split()),
        int(created_at),
        None if last_used_at is None else int(last_used_at),
        None if revoked_at is None else int(revoked_at),
    )


class MetadataStore(SQLiteFile):
    """metadata.db behind a lock: the writer, the registry sync and readers share it.

    Every method raises only HomeIQ's errors (:mod:`homeiq.sqlitedb` maps sqlite3's):
    :class:`~homeiq.errors.SinkUnavailable` for a full disk, a lock or an unwritable file.
    """

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        super().__init__(path, schema.STEPS, readonly=readonly)

    @classmethod
    def in_dir(cls, data_dir: Path, *, readonly: bool = False) -> MetadataStore:
        """The store at its standard place in the data directory."""
        return cls(data_dir / METADATA_DB, readonly=readonly)

    # -- registry ---------------------------------------------------------------------

    def replace_registry(self, snapshot: RegistrySnapshot) -> None:
        """Make the stored registry exactly ``snapshot`` (one transaction)."""
        with self._writing() as conn:
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
        with self._reading() as c:
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
        with self._writing() as conn:
            conn.executemany(
                "INSERT INTO dead_letters (received_at, reason, detail, entity_id, payload)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def dead_letter_counts(self) -> dict[str, int]:
        """Dead letters kept, by reason."""
        with self._reading() as conn:
            rows = conn.execute(
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
        with self._reading() as conn:
            rows = conn.execute(sql, (*params, limit)).fetchall()
        return [DeadLetter(r[0], r[1], bytes(r[2]), r[3], r[4]) for r in rows]

    def dead_letter_page(
        self, *, reason: str | None = None, before_id: int | None = None, limit: int = 100
    ) -> list[StoredDeadLetter]:
        """Dead letters newest first, with ids below ``before_id`` (a cursor), of one reason."""
        sql = "SELECT id, reason, detail, payload, received_at, entity_id FROM dead_letters"
        where: list[str] = []
        params: list[object] = []
        if reason is not None:
            where.append("reason = ?")
            params.append(reason)
        if before_id is not None:
            where.append("id < ?")
            params.append(before_id)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        with self._reading() as conn:
            rows = conn.execute(sql, (*params, limit)).fetchall()
        return [_stored_letter(row) for row in rows]

    def oldest_dead_letters(self, reason: str, limit: int) -> list[StoredDeadLetter]:
        """The oldest dead letters of one reason, oldest first (the order they came in)."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT id, reason, detail, payload, received_at, entity_id FROM dead_letters"
                " WHERE reason = ? ORDER BY id LIMIT ?",
                (reason, limit),
            ).fetchall()
        return [_stored_letter(row) for row in rows]

    def dead_letters_by_id(self, ids: Iterable[int]) -> list[StoredDeadLetter]:
        """The dead letters with these ids (unknown ids are skipped), oldest first."""
        wanted = sorted(set(ids))
        found: list[StoredDeadLetter] = []
        with self._reading() as conn:
            # Chunks: SQLite caps the number of bound parameters (999 in old builds).
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    "SELECT id, reason, detail, payload, received_at, entity_id"
                    f" FROM dead_letters WHERE id IN ({marks}) ORDER BY id",
                    chunk,
                ).fetchall()
                found += [_stored_letter(row) for row in rows]
        return found

    def remove_dead_letters(self, ids: Iterable[int]) -> int:
        """Delete dead letters (once re-driven into the store); returns how many went."""
        rows = [(i,) for i in set(ids)]
        if not rows:
            return 0
        with self._writing() as conn:
            before = conn.total_changes
            conn.executemany("DELETE FROM dead_letters WHERE id = ?", rows)
            return conn.total_changes - before

    # -- API keys ---------------------------------------------------------------------

    def add_api_key(
        self, *, name: str, scopes: Sequence[str], key_hash: str, created_at: int
    ) -> StoredApiKey:
        """Store a new key by its hash; returns it with its id."""
        with self._writing() as conn:
            cur = conn.execute(
                "INSERT INTO api_keys (name, key_hash, scopes, created_at) VALUES (?, ?, ?, ?)",
                (name, key_hash, " ".join(scopes), created_at),
            )
        return StoredApiKey(int(cur.lastrowid or 0), name, tuple(scopes), created_at)

    def api_key_by_hash(self, key_hash: str) -> StoredApiKey | None:
        """The key with this hash, revoked or not; None when there is none."""
        with self._reading() as conn:
            row = conn.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_hash = ?", (key_hash,)
            ).fetchone()
        return None if row is None else _key(row)

    def api_key(self, key_id: int) -> StoredApiKey | None:
        """The key with this id, revoked or not."""
        with self._reading() as conn:
            row = conn.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)
            ).fetchone()
        return None if row is None else _key(row)

    def api_keys(self) -> list[StoredApiKey]:
        """Every key ever created (revoked ones too), oldest first."""
        with self._reading() as conn:
            rows = conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY id").fetchall()
        return [_key(row) for row in rows]

    def api_key_count(self) -> int:
        """How many keys were ever created (revoked ones included)."""
        with self._reading() as conn:
            (count,) = conn.execute("SELECT COUNT(*) FROM api_keys").fetchone()
        return int(count)

    def revoke_api_key(self, key_id: int, at: int) -> StoredApiKey | None:
        """Revoke a key (a no-op when it already is); None when no key has this id."""
        with self._writing() as conn:
            conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (at, key_id),
            )
            row = conn.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)
            ).fetchone()
        return None if row is None else _key(row)

    def touch_api_key(self, key_id: int, at: int) -> None:
        """Record that a key was used at ``at``."""
        with self._writing() as conn:
            conn.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (at, key_id))

    # -- small state ------------------------------------------------------------------

    def get(self, key: str) -> str | None:
        """A value from the key/value table."""
        with self._reading() as conn:
            row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, key: str, value: str) -> None:
        """Set a value in the key/value table."""
        with self._writing() as conn:
            conn.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- gaps and data quality --------------------------------------------------------

    def add_gap(self, gap: Gap) -> int:
        """Remember a span whose events backfill has to fetch; returns its id."""
        with self._writing() as conn:
            cur = conn.execute(
                "INSERT INTO gaps (start_us, end_us, reason, created_at) VALUES (?, ?, ?, ?)",
                (gap.start_us, gap.end_us, gap.reason, gap.created_at),
            )
        return int(cur.lastrowid or 0)

    def gaps(self) -> list[Gap]:
        """Spans still to backfill, oldest first."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT start_us, end_us, reason, created_at, id FROM gaps ORDER BY start_us, id"
            ).fetchall()
        return [Gap(*row) for row in rows]

    def remove_gap(self, gap_id: int) -> None:
        """Forget a span once backfilled (or given up on and reported)."""
        with self._writing() as conn:
            conn.execute("DELETE FROM gaps WHERE id = ?", (gap_id,))

    def add_quality_event(self, event: QualityEvent) -> None:
        """Record a data-quality event (a gap not refilled, events dropped, ...)."""
        with self._writing() as conn:
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
        with self._reading() as conn:
            rows = conn.execute(sql, (*params, limit)).fetchall()
        return [QualityEvent(*row) for row in rows]

    def add_backup_run(self, run: BackupRun) -> None:
        """Record a backup or verify outcome."""
        with self._writing() as conn:
            conn.execute(
                "INSERT INTO backup_runs (kind, started_at, finished_at, ok, archive, target,"
                " bytes, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.kind,
                    run.started_at,
                    run.finished_at,
                    int(run.ok),
                    run.archive,
                    run.target,
                    run.bytes,
                    run.detail,
                ),
            )

    def backup_runs(
        self, *, kind: str | None = None, ok: bool | None = None, limit: int = 100
    ) -> list[BackupRun]:
        """The newest backup runs, optionally of one kind and outcome."""
        sql = "SELECT kind, started_at, finished_at, ok, archive, target, bytes, detail"
        sql += " FROM backup_runs WHERE 1 = 1"
        params: list[object] = []
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        if ok is not None:
            sql += " AND ok = ?"
            params.append(int(ok))
        sql += " ORDER BY finished_at DESC, id DESC LIMIT ?"
        with self._reading() as conn:
            rows = conn.execute(sql, (*params, limit)).fetchall()
        return [
            BackupRun(str(k), int(s), int(f), bool(o), a, t, b, str(d))
            for k, s, f, o, a, t, b, d in rows
        ]


def _stored_letter(row: Any) -> StoredDeadLetter:
    letter_id, reason, detail, payload, received_at, entity_id = row
    return StoredDeadLetter(
        int(letter_id),
        DeadLetter(
            str(reason),
            str(detail),
            bytes(payload),
            int(received_at),
            None if entity_id is None else str(entity_id),
        ),
    )
