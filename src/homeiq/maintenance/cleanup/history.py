"""The record of every cleanup: who, when, what, how many, and how it ended.

A run is written as ``running`` (with the deletion it will do, as JSON, and the process
doing it) before the first row is deleted, and finished after. A ``running`` row whose
process is gone was interrupted (kill -9, a power cut): :meth:`CleanupHistory.interrupted`
finds those for the next run to resume; deletions are idempotent, so running the same
deletion again finishes the job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from homeiq.metadata.store import MetadataStore
from homeiq.model import now_us

RUNNING = "running"
DONE = "done"
FAILED = "failed"
INTERRUPTED = "interrupted"  # shown for a running row whose process is gone

_COLUMNS = "id, started_at, finished_at, who, pid, rule, spec, status, planned, deleted, detail"


@dataclass(frozen=True, slots=True)
class CleanupRun:
    """One cleanup as recorded. Times in microseconds since the epoch."""

    id: int
    started_at: int
    finished_at: int | None
    who: str
    pid: int
    rule: str
    spec: str
    status: str
    planned: int | None
    deleted: int
    detail: str

    @property
    def shown_status(self) -> str:
        """The status a person should read: ``interrupted`` for a run whose process died."""
        if self.status == RUNNING and not process_alive(self.pid):
            return INTERRUPTED
        return self.status


def process_alive(pid: int) -> bool:
    """True when a process with this id runs (ours counts: a run in progress)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, just not ours to signal
        return True
    except OSError:
        return False
    return True


def _run(row: Any) -> CleanupRun:
    rid, started, finished, who, pid, rule, spec, status, planned, deleted, detail = row
    return CleanupRun(
        int(rid),
        int(started),
        None if finished is None else int(finished),
        str(who),
        int(pid),
        str(rule),
        str(spec),
        str(status),
        None if planned is None else int(planned),
        int(deleted),
        str(detail),
    )


class CleanupHistory:
    """The ``cleanup_runs`` table of metadata.db (through the store's own connection and
    lock, so its errors are the store's: SinkUnavailable, SinkRejected)."""

    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata

    def start(self, who: str, rule: str, spec: str, planned: int | None) -> int:
        """Record a run about to delete; returns its id."""
        with self.metadata._writing() as conn:  # the store's lock and error mapping
            cur = conn.execute(
                "INSERT INTO cleanup_runs (started_at, who, pid, rule, spec, status, planned)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (now_us(), who, os.getpid(), rule, spec, RUNNING, planned),
            )
            return int(cur.lastrowid or 0)

    def take_over(self, run: CleanupRun, deleted: int, detail: str) -> bool:
        """Make an interrupted run this process's, going on from ``deleted``; False when
        another resume took it first (the row no longer names the dead process)."""
        with self.metadata._writing() as conn:
            cur = conn.execute(
                "UPDATE cleanup_runs SET pid = ?, deleted = ?, detail = ?"
                " WHERE id = ? AND pid = ? AND status = ?",
                (os.getpid(), deleted, detail, run.id, run.pid, RUNNING),
            )
            return cur.rowcount == 1

    def finish(self, run_id: int, status: str, deleted: int, detail: str = "") -> None:
        """Record how a run ended and how many events it deleted in all."""
        with self.metadata._writing() as conn:
            conn.execute(
                "UPDATE cleanup_runs SET finished_at = ?, status = ?, deleted = ?,"
                " detail = CASE WHEN ? = '' THEN detail ELSE ? END WHERE id = ?",
                (now_us(), status, deleted, detail, detail, run_id),
            )

    def runs(self, limit: int = 100) -> list[CleanupRun]:
        """The newest runs first."""
        with self.metadata._reading() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM cleanup_runs ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [_run(r) for r in rows]

    def get(self, run_id: int) -> CleanupRun | None:
        """One run by id."""
        with self.metadata._reading() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM cleanup_runs WHERE id = ?", (run_id,)
            ).fetchone()
        return None if row is None else _run(row)

    def interrupted(self) -> list[CleanupRun]:
        """Runs left ``running`` by a process that is gone, oldest first."""
        with self.metadata._reading() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM cleanup_runs WHERE status = ? ORDER BY id", (RUNNING,)
            ).fetchall()
        return [run for run in map(_run, rows) if not process_alive(run.pid)]
