"""The SQLite layer every HomeIQ database shares: how a file is opened, how its schema
is versioned, how a write transaction runs, and how sqlite3's errors become HomeIQ's.

Schemas: each database keeps a ``schema_changes`` table; a step is a function that moves
the schema from version N-1 to N, and :func:`migrate` applies the missing steps in
order, each in its own transaction, so a crash mid-way leaves a valid, older version.

Errors: no ``sqlite3.Error`` leaves a HomeIQ store. :func:`sqlite_error` maps one by its
SQLite result code (Python 3.11's ``sqlite_errorcode``), naming the file:

* busy or locked, an I/O error, a full disk, a file that cannot be opened
  → :class:`~homeiq.errors.SinkUnavailable`: the lock clears or the operator frees
  space or creates the directory, and a retry then works;
* a damaged file, one that is no database, or one HomeIQ may not write (read-only
  opened, or its permissions) → :class:`~homeiq.errors.SinkRejected`;
  a table or column missing → :class:`~homeiq.errors.IncompatibleSchema`;
* anything else (a constraint, a value SQLite refuses) → :class:`SinkRejected`.

:class:`SQLiteFile` is the base of the stores that are one file behind one lock
(metadata.db, rollups.db): opened, migrated and mapped in one place.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

from homeiq.errors import HomeIQError, IncompatibleSchema, SinkRejected, SinkUnavailable

Step = Callable[[sqlite3.Connection], None]

# Primary result codes (the low byte of an extended code), from sqlite3.h.
SQLITE_ERROR = 1
SQLITE_PERM = 3
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_NOMEM = 7
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_PROTOCOL = 15
SQLITE_NOTADB = 26

# What the operator can do about each passing condition: said in the message.
_TRANSIENT_HINTS = {
    SQLITE_BUSY: "another process holds a lock on it",
    SQLITE_LOCKED: "another connection holds a lock on it",
    SQLITE_PROTOCOL: "another process holds a lock on it",
    SQLITE_NOMEM: "out of memory",
    SQLITE_IOERR: "check the disk",
    SQLITE_FULL: "free some disk space",
    SQLITE_CANTOPEN: "check that the directory exists and HomeIQ may write to it",
}
# Refused for good, until someone changes the file: a retry would fail the same way.
_PERMANENT_HINTS = {
    SQLITE_CORRUPT: "the file is damaged: restore it from a backup",
    SQLITE_NOTADB: "the file is damaged or not HomeIQ's: restore it from a backup",
    SQLITE_READONLY: "read-only: check the permissions of the file and its directory",
    SQLITE_PERM: "read-only: check the permissions of the file and its directory",
}
_SCHEMA_WORDS = ("no such table", "no such column", "has no column named")


def sqlite_error(exc: sqlite3.Error, path: Path | str, action: str = "use") -> HomeIQError:
    """The error-tree form of ``exc``, raised by ``action`` on the database at ``path``."""
    # Set only on errors SQLite itself reported: the module's own (a closed connection,
    # a wrong number of parameters) have none.
    code: int | None = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if code is not None else None
    where = f"sqlite cannot {action} {path}: {exc}"
    if primary in _TRANSIENT_HINTS:
        return SinkUnavailable(f"{where} ({_TRANSIENT_HINTS[primary]})")
    if primary in _PERMANENT_HINTS:
        return SinkRejected(f"{where} ({_PERMANENT_HINTS[primary]})")
    if primary == SQLITE_ERROR and any(w in str(exc) for w in _SCHEMA_WORDS):
        return IncompatibleSchema(f"{where} (not the schema this HomeIQ expects)")
    if primary is None and isinstance(exc, sqlite3.ProgrammingError) and "closed" in str(exc):
        # A store used after close() (during shutdown): it cannot take this call now.
        return SinkUnavailable(f"{where} (the database is closed)")
    return SinkRejected(where)


class sqlite_errors:
    """Context manager: an ``sqlite3.Error`` inside becomes :func:`sqlite_error`'s answer.

    A class rather than a generator: stores enter it on every call.
    """

    __slots__ = ("action", "path")

    def __init__(self, path: Path | str, action: str = "use") -> None:
        self.path = path
        self.action = action

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, sqlite3.Error):
            raise sqlite_error(exc, self.path, self.action) from exc


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
        # SQLite rolls back by itself on a full disk or an I/O error; a ROLLBACK then
        # fails ("no transaction is active") and would hide the error that matters.
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
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
    try:
        if not readonly:
            # WAL lets readers (API, CLI) run while the writer commits; NORMAL sync is
            # durable across process crashes (only a power cut can lose the last commits).
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        # Reads through a memory map instead of a read() per page: a third less time for
        # the API's seek-heavy queries (address space only; the OS caches the pages anyway).
        conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
    except BaseException:
        conn.close()  # a file that is no database fails here: leave no handle open
        raise
    return conn


class SQLiteFile:
    """One database file behind one lock, opened and migrated to ``steps`` (or, read-only,
    checked against them); every use of the connection goes through :meth:`_reading` or
    :meth:`_writing`, so sqlite3's errors leave as HomeIQ's, naming the file."""

    def __init__(self, path: Path, steps: Sequence[Step], *, readonly: bool = False) -> None:
        self.path = path
        self._lock = threading.Lock()
        if not readonly:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise SinkUnavailable(f"cannot create {path.parent}: {exc.strerror}") from exc
        with sqlite_errors(path, "open"):
            conn = connect(str(path), readonly=readonly)
            try:
                (check_version if readonly else migrate)(conn, steps)
            except BaseException:
                conn.close()
                raise
        self._conn = conn

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock, for queries."""
        with self._lock, sqlite_errors(self.path, "read"):
            yield self._conn

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock, inside a write transaction."""
        with self._lock, sqlite_errors(self.path, "write"), transaction(self._conn) as conn:
            yield conn
