"""The alert history in metadata.db: one row per firing and per resolve, bounded.

Kept in this module rather than in :mod:`homeiq.metadata.store` (which stays the size of
one idea): it borrows the store's locked connection helpers. Every write also prunes,
so the table never holds more than ``max_rows`` rows nor rows older than ``keep_days``:
two indexed deletes, cheap at the rate alerts change.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from homeiq.metadata.store import MetadataStore

Status = Literal["firing", "resolved"]
DAY_US = 86_400_000_000


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One change of an alert's state. ``at`` is µs since the epoch."""

    id: int
    alert: str
    status: Status
    message: str
    at: int


class AlertHistory:
    """Reads and writes ``alert_history`` (synchronous: async callers use a thread)."""

    def __init__(
        self,
        store: MetadataStore,
        *,
        keep_days: int = 90,
        max_rows: int = 10_000,
        wall_us: Callable[[], int] = lambda: time.time_ns() // 1000,
    ) -> None:
        self.store = store
        self.keep_days = keep_days
        self.max_rows = max_rows
        self._wall_us = wall_us

    def record(self, alert: str, status: Status, message: str, at: int) -> int:
        """Add one change and prune what is past the bounds; the new row's id."""
        cutoff = self._wall_us() - self.keep_days * DAY_US
        with self.store._writing() as conn:  # the store's lock and transaction
            cursor = conn.execute(
                "INSERT INTO alert_history (alert, status, message, at) VALUES (?, ?, ?, ?)",
                (alert, status, message[:2000], at),
            )
            row_id = int(cursor.lastrowid or 0)
            conn.execute("DELETE FROM alert_history WHERE at < ?", (cutoff,))
            conn.execute("DELETE FROM alert_history WHERE id <= ?", (row_id - self.max_rows,))
        return row_id

    def page(
        self, *, alert: str | None = None, before_id: int | None = None, limit: int = 50
    ) -> list[HistoryEntry]:
        """Changes newest first, optionally of one alert and older than ``before_id``."""
        sql = "SELECT id, alert, status, message, at FROM alert_history WHERE 1 = 1"
        params: list[object] = []
        if alert is not None:
            sql += " AND alert = ?"
            params.append(alert)
        if before_id is not None:
            sql += " AND id < ?"
            params.append(before_id)
        sql += " ORDER BY id DESC LIMIT ?"
        with self.store._reading() as conn:
            rows = conn.execute(sql, (*params, limit)).fetchall()
        return [HistoryEntry(int(i), str(a), s, str(m), int(t)) for i, a, s, m, t in rows]

    def count(self) -> int:
        """Rows kept."""
        with self.store._reading() as conn:
            return int(conn.execute("SELECT count(*) FROM alert_history").fetchone()[0])

    def still_firing(self) -> list[HistoryEntry]:
        """Alerts whose last recorded change is a firing: active when HomeIQ stopped."""
        sql = (
            "SELECT id, alert, status, message, at FROM alert_history WHERE id IN"
            " (SELECT max(id) FROM alert_history GROUP BY alert) AND status = 'firing'"
            " ORDER BY id"
        )
        with self.store._reading() as conn:
            rows = conn.execute(sql).fetchall()
        return [HistoryEntry(int(i), str(a), s, str(m), int(t)) for i, a, s, m, t in rows]
