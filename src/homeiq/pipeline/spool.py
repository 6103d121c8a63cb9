"""The outage spool: whole batches of records kept on disk while the event store is down.

When the store stops taking writes, the writer hands each batch to :class:`Spool`; when
the store returns, batches are drained oldest first (:meth:`Spool.oldest`, write,
:meth:`Spool.remove`), so the store sees events in the order they arrived.

Why SQLite (``spool.db`` in the data directory) rather than files of our own: an append
is one transaction, so a batch is wholly spooled or not at all, even across ``kill -9``
or a full disk; an ``AUTOINCREMENT`` id is a total order never reused, so a stale
:meth:`~Spool.remove` cannot hit a newer batch; and dropping the oldest batches to make
room commits together with the append. Synchronous is FULL, not NORMAL as elsewhere: a
spooled batch is the only copy of its events, and it costs one fsync per batch.

The spool is bounded by the sum of payload sizes. When full, ``drop_newest`` refuses the
batch and ``drop_oldest`` deletes the oldest batches until it fits; the loss is never
silent: an ERROR log, ``homeiq_spool_dropped_events{policy}``, and an
:class:`AppendResult` with the count and time span so the caller can record a gap.

Payloads use a compact, lossless codec (:func:`encode` / :func:`decode`): one orjson
array per record, each distinct ``attributes_json`` stored once (an entity's states
usually repeat it), zlib-compressed; ``attributes`` is rebuilt from it on decode.
"""

from __future__ import annotations

import builtins
import logging
import math
import sqlite3
import struct
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from homeiq.errors import ConfigError
from homeiq.model import EventRecord, Origin, Source
from homeiq.observability.metrics import Metrics
from homeiq.sqlitedb import connect, migrate, sqlite_error, sqlite_errors, transaction

log = logging.getLogger(__name__)

SPOOL_DB = "spool.db"
Policy = Literal["drop_newest", "drop_oldest"]
POLICIES: tuple[Policy, ...] = ("drop_newest", "drop_oldest")
CORRUPT = "corrupt"  # spool_dropped_events label for batches that cannot be decoded

# -- codec ------------------------------------------------------------------------------

CODEC_VERSION = 1
_LENGTH = struct.Struct("<I")
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _float_out(value: float | None) -> float | str | None:
    # orjson writes NaN and infinities as null; a string keeps them distinct from None.
    if value is None or math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def _float_in(value: float | str | None) -> float | None:
    return _NON_FINITE[value] if isinstance(value, str) else value


def encode(records: Sequence[EventRecord]) -> builtins.bytes:
    """Records as compact bytes; :func:`decode` gives them back exactly."""
    blob_index: dict[builtins.bytes, int] = {}
    blobs: list[builtins.bytes] = []
    rows: list[list[Any]] = []
    for r in records:
        index = blob_index.get(r.attributes_json)
        if index is None:
            index = blob_index[r.attributes_json] = len(blobs)
            blobs.append(r.attributes_json)
        # A row follows EventRecord's field order so decode can pass it positionally.
        # fmt: off
        rows.append([
            r.entity_id, r.time, r.state, _float_out(r.value), r.previous_state,
            _float_out(r.duration_in_state_s), r.last_changed, index,
            r.dropped_attributes_bytes, r.context_id, r.context_parent_id, r.context_user_id,
            r.device_id, r.area_id, r.floor_id, int(r.origin), int(r.source),
        ])
        # fmt: on
    head = orjson.dumps([[len(b) for b in blobs], rows])
    body = b"".join([_LENGTH.pack(len(head)), head, *blobs])
    return bytes([CODEC_VERSION]) + zlib.compress(body)


def decode(payload: builtins.bytes) -> list[EventRecord]:
    """Inverse of :func:`encode`; raises ``ValueError`` for bytes it did not make."""
    if not payload or payload[0] != CODEC_VERSION:
        raise ValueError(f"unknown spool codec version {payload[:1]!r}")
    try:
        body = zlib.decompress(payload[1:])
        (head_len,) = _LENGTH.unpack_from(body)
        lengths, rows = orjson.loads(body[_LENGTH.size : _LENGTH.size + head_len])
        offset = _LENGTH.size + head_len
        blobs: list[tuple[builtins.bytes, dict[str, Any]]] = []
        for length in lengths:
            blob = body[offset : offset + length]
            # One dict per distinct blob, shared by its records, as the normalizer does.
            blobs.append((blob, orjson.loads(blob)))
            offset += length
        if offset != len(body):
            raise ValueError("trailing or missing attribute bytes")
        records = []
        for row in rows:
            attributes_json, attributes = blobs[row[7]]
            # fmt: off
            records.append(EventRecord(
                row[0], row[1], row[2], _float_in(row[3]), row[4], _float_in(row[5]), row[6],
                attributes, attributes_json, row[8], row[9], row[10], row[11], row[12],
                row[13], row[14], Origin(row[15]), Source(row[16]),
            ))
            # fmt: on
        return records
    except (zlib.error, struct.error, ValueError, TypeError, IndexError, KeyError) as exc:
        raise ValueError(f"corrupt spool payload: {exc}") from exc


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What :meth:`Spool.append` did: whether the batch was kept, and what was dropped.

    With ``drop_newest`` (or a batch larger than the whole spool) the dropped events are
    the new batch itself and ``kept`` is False; with ``drop_oldest`` they are the oldest
    spooled batches and ``kept`` is True. The span is the dropped records' min/max time.
    """

    kept: bool
    batch_id: int | None = None
    dropped_events: int = 0
    dropped_batches: int = 0
    dropped_start_us: int | None = None
    dropped_end_us: int | None = None

    @property
    def dropped(self) -> bool:
        """True when any event was lost."""
        return self.dropped_events > 0


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    """The oldest spooled batch. ``corrupt`` batches have no records (their payload could
    not be decoded) but keep their count and span so the caller can record the gap."""

    id: int
    records: list[EventRecord] = field(repr=False)
    events: int
    first_us: int
    last_us: int
    corrupt: bool = False


def _span(first_us: int | None, last_us: int | None) -> str:
    if first_us is None or last_us is None:
        return "nothing"
    try:
        lo, hi = (datetime.fromtimestamp(t / 1e6, UTC).isoformat() for t in (first_us, last_us))
    except (OverflowError, ValueError, OSError):  # a time no calendar takes: µs will do
        return f"{first_us}..{last_us} µs"
    return f"{lo} .. {hi} ({first_us}..{last_us} µs)"


def _create_batches(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE batches ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " created_at INTEGER NOT NULL,"  # µs since the epoch
        " events INTEGER NOT NULL,"
        " first_us INTEGER NOT NULL,"
        " last_us INTEGER NOT NULL,"
        " bytes INTEGER NOT NULL,"
        " payload BLOB NOT NULL)"
    )


STEPS = [_create_batches]


class Spool:
    """spool.db behind a lock; synchronous (async callers use ``asyncio.to_thread``)."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int,
        policy: Policy = "drop_newest",
        metrics: Metrics | None = None,
    ) -> None:
        if policy not in POLICIES:
            raise ConfigError("spool_full_policy", f"must be one of {POLICIES}, not {policy!r}")
        if max_bytes < 1:
            raise ConfigError("spool_max_bytes", f"must be positive, not {max_bytes}")
        self.path = path
        self.max_bytes = max_bytes
        self.policy: Policy = policy
        self.metrics = metrics or Metrics()
        self._lock = threading.Lock()
        self._reported_corrupt: set[int] = set()
        conn: sqlite3.Connection | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = connect(str(path))
            conn.execute("PRAGMA synchronous=FULL")
            migrate(conn, STEPS)
            count, events, size = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(events), 0), COALESCE(SUM(bytes), 0) FROM batches"
            ).fetchone()
        except BaseException as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, sqlite3.Error):
                raise ConfigError("data_dir", str(sqlite_error(exc, path, "open"))) from exc
            if isinstance(exc, OSError):
                raise ConfigError("data_dir", f"cannot open the spool {path}: {exc}") from exc
            raise
        self._conn = conn
        self._batches, self._events, self._bytes = int(count), int(events), int(size)
        self.metrics.spool_capacity_bytes.set(max_bytes)
        self._update_gauges()
        if count:
            log.info("spool %s holds %d events in %d batches from before", path, events, count)

    @classmethod
    def in_dir(
        cls,
        data_dir: Path,
        *,
        max_bytes: int,
        policy: Policy = "drop_newest",
        metrics: Metrics | None = None,
    ) -> Spool:
        """The spool at its standard place in the data directory."""
        return cls(data_dir / SPOOL_DB, max_bytes=max_bytes, policy=policy, metrics=metrics)

    def close(self) -> None:
        """Close the database; every appended batch is already on disk."""
        with self._lock:
            self._conn.close()

    @property
    def events(self) -> int:
        """Events waiting in the spool."""
        return self._events

    @property
    def bytes(self) -> int:
        """Payload bytes waiting in the spool (what ``max_bytes`` bounds)."""
        return self._bytes

    @property
    def batches(self) -> int:
        """Batches waiting in the spool."""
        return self._batches

    @property
    def empty(self) -> bool:
        """True when nothing waits in the spool."""
        return self._batches == 0

    def _io(self, action: str) -> sqlite_errors:
        return sqlite_errors(self.path, action)

    def _update_gauges(self) -> None:
        self.metrics.spool_bytes.set(self._bytes)
        self.metrics.spool_events.set(self._events)

    def append(self, records: Sequence[EventRecord]) -> AppendResult:
        """Spool one batch, applying the full-spool policy; durable when this returns.

        Raises :class:`SinkUnavailable` when the file cannot be written (disk full, I/O
        error); then nothing changed, and the batch is still the caller's.
        """
        if not records:
            return AppendResult(kept=True)
        payload = encode(records)
        size = len(payload)
        first_us = min(r.time for r in records)
        last_us = max(r.time for r in records)
        refused = AppendResult(False, None, len(records), 1, first_us, last_us)
        with self._lock:
            if size > self.max_bytes:
                reason = f"a batch of {size} bytes is larger than the whole spool"
                result = refused
            elif self.policy == "drop_newest" and self._bytes + size > self.max_bytes:
                reason = "spool full, new batch refused"
                result = refused
            else:
                reason = "spool full, oldest batches discarded"
                result = self._insert(payload, len(records), first_us, last_us)
            self._update_gauges()
        if result.dropped:
            self.metrics.spool_dropped_events.labels(self.policy).inc(result.dropped_events)
            log.error(
                "%s (policy %s): dropped %d events in %d batches spanning %s;"
                " spool holds %d of %d bytes",
                reason,
                self.policy,
                result.dropped_events,
                result.dropped_batches,
                _span(result.dropped_start_us, result.dropped_end_us),
                self._bytes,
                self.max_bytes,
            )
        return result

    def _insert(
        self, payload: builtins.bytes, events: int, first_us: int, last_us: int
    ) -> AppendResult:
        """Insert (deleting oldest batches first if needed) in one transaction; lock held."""
        last_id, dropped, batches, freed, lo, hi = 0, 0, 0, 0, None, None
        with self._io("append a batch to"), transaction(self._conn):
            excess = self._bytes + len(payload) - self.max_bytes
            if excess > 0:  # only reached with drop_oldest
                # The shortest prefix of batches (oldest first) that frees `excess` bytes.
                last_id, dropped, batches, freed, lo, hi = self._conn.execute(
                    "WITH run AS (SELECT id, events, first_us, last_us, bytes,"
                    "  SUM(bytes) OVER (ORDER BY id) - bytes AS before FROM batches)"
                    " SELECT MAX(id), SUM(events), COUNT(*), SUM(bytes), MIN(first_us),"
                    "  MAX(last_us) FROM run WHERE before < ?",
                    (excess,),
                ).fetchone()
                self._conn.execute("DELETE FROM batches WHERE id <= ?", (last_id,))
            cursor = self._conn.execute(
                "INSERT INTO batches (created_at, events, first_us, last_us, bytes, payload)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (time.time_ns() // 1000, events, first_us, last_us, len(payload), payload),
            )
        self._batches += 1 - batches
        self._events += events - dropped
        self._bytes += len(payload) - freed
        return AppendResult(True, cursor.lastrowid, dropped, batches, lo, hi)

    def oldest(self) -> SpooledBatch | None:
        """The oldest batch (it stays spooled until :meth:`remove`), or None when empty."""
        with self._lock, self._io("read a batch from"):
            row = self._conn.execute(
                "SELECT id, events, first_us, last_us, payload FROM batches ORDER BY id LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        batch_id, events, first_us, last_us, payload = row
        try:
            return SpooledBatch(batch_id, decode(payload), events, first_us, last_us)
        except ValueError as exc:
            with self._lock:
                first_report = batch_id not in self._reported_corrupt
                self._reported_corrupt.add(batch_id)
            if first_report:
                self.metrics.spool_dropped_events.labels(CORRUPT).inc(events)
                log.error(
                    "spooled batch %d is unreadable (%s): %d events spanning %s are lost",
                    batch_id,
                    exc,
                    events,
                    _span(first_us, last_us),
                )
            return SpooledBatch(batch_id, [], events, first_us, last_us, corrupt=True)

    def remove(self, batch_id: int) -> None:
        """Forget a batch once it is stored; removing an absent batch does nothing."""
        with self._lock:
            with self._io("remove a batch from"), transaction(self._conn):
                row = self._conn.execute(
                    "DELETE FROM batches WHERE id = ? RETURNING events, bytes", (batch_id,)
                ).fetchall()
            if row:
                self._batches -= 1
                self._events -= row[0][0]
                self._bytes -= row[0][1]
                self._update_gauges()

    def oldest_time(self) -> int | None:
        """Time of the oldest spooled event (µs), None when empty: a purge never deletes
        at or after it, since those events are not in the store yet."""
        with self._lock, self._io("read"):
            row = self._conn.execute("SELECT MIN(first_us) FROM batches").fetchone()
        return None if row[0] is None else int(row[0])
