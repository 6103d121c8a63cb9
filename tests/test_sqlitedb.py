"""The shared SQLite layer: versioned schemas, transactions, and the one error mapper."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from homeiq.errors import HomeIQError, IncompatibleSchema, SinkRejected, SinkUnavailable
from homeiq.sqlitedb import (
    SQLITE_BUSY,
    SQLITE_CANTOPEN,
    SQLITE_CORRUPT,
    SQLITE_FULL,
    SQLITE_NOTADB,
    SQLITE_READONLY,
    connect,
    current_version,
    migrate,
    run_script,
    sqlite_error,
    sqlite_errors,
    transaction,
)


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    opened = connect(str(tmp_path / "test.db"))
    yield opened
    opened.close()


def tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {str(name) for (name,) in rows}


# -- migrations -------------------------------------------------------------------------------


def _create(name: str):  # type: ignore[no-untyped-def]
    def step(conn: sqlite3.Connection) -> None:
        conn.execute(f"CREATE TABLE {name} (x INTEGER)")

    return step


def test_fresh_database_is_at_latest_version(conn: sqlite3.Connection) -> None:
    assert current_version(conn) == 0
    assert migrate(conn, [_create("a"), _create("b")]) == 2
    assert current_version(conn) == 2
    assert {"a", "b", "schema_changes"} <= tables(conn)


def test_migrate_again_is_a_no_op(conn: sqlite3.Connection) -> None:
    calls: list[int] = []

    def counted(conn: sqlite3.Connection) -> None:
        calls.append(1)

    migrate(conn, [counted])
    before = conn.execute("SELECT * FROM schema_changes").fetchall()
    assert migrate(conn, [counted]) == 1
    assert calls == [1]
    assert conn.execute("SELECT * FROM schema_changes").fetchall() == before


def test_only_missing_steps_run(conn: sqlite3.Connection) -> None:
    migrate(conn, [_create("a")])
    ran: list[str] = []

    def second(conn: sqlite3.Connection) -> None:
        ran.append("second")
        conn.execute("ALTER TABLE a ADD COLUMN y TEXT")

    assert migrate(conn, [_create("a"), second]) == 2
    assert ran == ["second"]
    assert [v for (v,) in conn.execute("SELECT version FROM schema_changes ORDER BY 1")] == [1, 2]
    conn.execute("INSERT INTO a (x, y) VALUES (1, 'ok')")


def test_newer_database_is_refused(conn: sqlite3.Connection) -> None:
    migrate(conn, [_create("a"), _create("b")])
    with pytest.raises(IncompatibleSchema, match="version 2 is newer than this HomeIQ \\(1\\)"):
        migrate(conn, [_create("a")])
    assert current_version(conn) == 2


def test_failing_step_rolls_back_and_keeps_the_old_version(conn: sqlite3.Connection) -> None:
    migrate(conn, [_create("a")])

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x INTEGER)")
        conn.execute("INSERT INTO a VALUES (1)")
        raise sqlite3.OperationalError("step failed midway")

    with pytest.raises(sqlite3.OperationalError, match="midway"):
        migrate(conn, [_create("a"), broken, _create("c")])
    assert current_version(conn) == 1
    assert "half_done" not in tables(conn)
    assert "c" not in tables(conn)
    assert conn.execute("SELECT COUNT(*) FROM a").fetchone() == (0,)
    assert not conn.in_transaction
    # Fixed code migrates from where it stopped.
    assert migrate(conn, [_create("a"), _create("half_done"), _create("c")]) == 3
    assert {"half_done", "c"} <= tables(conn)


def test_failing_ddl_in_a_script_rolls_back_the_whole_step(conn: sqlite3.Connection) -> None:
    def step(conn: sqlite3.Connection) -> None:
        run_script(conn, "CREATE TABLE ok (x); CREATE TABLE ok (x);")

    with pytest.raises(sqlite3.OperationalError, match="already exists"):
        migrate(conn, [step])
    assert current_version(conn) == 0
    assert "ok" not in tables(conn)


def test_run_script_skips_empty_statements(conn: sqlite3.Connection) -> None:
    with transaction(conn):
        run_script(conn, "\n  CREATE TABLE p (x);\n ; \n CREATE TABLE q (y);\n  ")
    assert {"p", "q"} <= tables(conn)


def test_transaction_commits_or_rolls_back(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE t (x)")
    with transaction(conn):
        conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(KeyError), transaction(conn):
        conn.execute("INSERT INTO t VALUES (2)")
        raise KeyError("boom")
    assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
    assert not conn.in_transaction


def test_connect_uses_wal_and_foreign_keys(tmp_path: Path) -> None:
    conn = connect(str(tmp_path / "x.db"))
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
        assert conn.execute("PRAGMA busy_timeout").fetchone() == (30000,)
        assert conn.isolation_level is None
    finally:
        conn.close()


# -- the error mapper: real SQLite failures --------------------------------------------------


def _raised(action: object) -> sqlite3.Error:
    with pytest.raises(sqlite3.Error) as info:
        action()  # type: ignore[operator]
    return info.value


def fill_up(conn: sqlite3.Connection) -> None:
    """Cap the file at its current size: the next page it needs is a real SQLITE_FULL."""
    conn.execute("CREATE TABLE IF NOT EXISTS filler (x BLOB)")
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages}")


def test_a_full_disk_is_transient_and_names_the_file(conn: sqlite3.Connection) -> None:
    fill_up(conn)
    exc = _raised(lambda: conn.execute("INSERT INTO filler VALUES (zeroblob(100000))"))
    assert exc.sqlite_errorcode & 0xFF == SQLITE_FULL
    mapped = sqlite_error(exc, "/data/metadata.db", "write")
    assert type(mapped) is SinkUnavailable
    assert str(mapped) == (
        "sqlite cannot write /data/metadata.db: database or disk is full (free some disk space)"
    )


def test_a_full_disk_inside_a_transaction_surfaces_as_itself(conn: sqlite3.Connection) -> None:
    fill_up(conn)
    with (
        pytest.raises(SinkUnavailable, match="disk is full") as info,
        sqlite_errors("x.db", "write"),
        transaction(conn),
    ):
        conn.execute("INSERT INTO filler VALUES (zeroblob(100000))")
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert not conn.in_transaction
    conn.execute("PRAGMA max_page_count=1073741823")  # space freed: the same write works
    with transaction(conn):
        conn.execute("INSERT INTO filler VALUES (zeroblob(100000))")
    assert conn.execute("SELECT COUNT(*) FROM filler").fetchone() == (1,)


def test_a_locked_database_is_transient(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = connect(str(path))
    waiter = sqlite3.connect(path, timeout=0.05, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        exc = _raised(lambda: waiter.execute("BEGIN IMMEDIATE"))
        assert exc.sqlite_errorcode & 0xFF == SQLITE_BUSY
        mapped = sqlite_error(exc, path)
        assert type(mapped) is SinkUnavailable
        assert str(path) in str(mapped) and "locked" in str(mapped)
    finally:
        holder.close()
        waiter.close()


def test_a_file_that_cannot_be_opened_is_transient(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "x.db"
    exc = _raised(lambda: sqlite3.connect(path))
    assert exc.sqlite_errorcode == SQLITE_CANTOPEN
    mapped = sqlite_error(exc, path, "open")
    assert type(mapped) is SinkUnavailable
    assert f"sqlite cannot open {path}: unable to open database file" in str(mapped)


def test_a_file_that_is_not_a_database_is_refused_for_good(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"not sqlite at all " * 300)
    exc = _raised(lambda: connect(str(path)))
    assert exc.sqlite_errorcode == SQLITE_NOTADB
    mapped = sqlite_error(exc, path, "open")
    assert type(mapped) is SinkRejected
    assert "restore it from a backup" in str(mapped)


def test_a_damaged_database_is_refused_for_good(tmp_path: Path) -> None:
    path = tmp_path / "damaged.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA page_size=4096")
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.executemany("INSERT INTO t VALUES (?)", [(f"row {i}" * 20,) for i in range(2000)])
    conn.commit()
    conn.close()
    with path.open("r+b") as raw:  # overwrite the third page, a leaf of table t
        raw.seek(2 * 4096)
        raw.write(b"\xff" * 4096)
    conn = sqlite3.connect(path)
    try:
        exc = _raised(lambda: conn.execute("SELECT COUNT(*), MAX(x) FROM t").fetchall())
    finally:
        conn.close()
    assert exc.sqlite_errorcode & 0xFF == SQLITE_CORRUPT
    assert type(sqlite_error(exc, path)) is SinkRejected


def test_a_missing_table_is_an_incompatible_schema(conn: sqlite3.Connection) -> None:
    exc = _raised(lambda: conn.execute("SELECT * FROM rollup_5m"))
    mapped = sqlite_error(exc, "rollups.db", "read")
    assert type(mapped) is IncompatibleSchema
    assert "no such table: rollup_5m" in str(mapped)


def test_writing_a_read_only_database_is_refused(tmp_path: Path) -> None:
    connect(str(tmp_path / "r.db")).close()
    reader = connect(str(tmp_path / "r.db"), readonly=True)
    try:
        exc = _raised(lambda: reader.execute("CREATE TABLE t (x)"))
    finally:
        reader.close()
    assert exc.sqlite_errorcode & 0xFF == SQLITE_READONLY
    mapped = sqlite_error(exc, tmp_path / "r.db", "write")
    assert type(mapped) is SinkRejected and "permissions" in str(mapped)


def test_a_constraint_is_refused_for_good(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE u (x INTEGER PRIMARY KEY)")
    conn.execute("INSERT INTO u VALUES (1)")
    exc = _raised(lambda: conn.execute("INSERT INTO u VALUES (1)"))
    assert type(sqlite_error(exc, "u.db")) is SinkRejected


def test_a_closed_connection_is_transient(tmp_path: Path) -> None:
    closed = connect(str(tmp_path / "c.db"))
    closed.close()
    exc = _raised(lambda: closed.execute("SELECT 1"))
    assert type(sqlite_error(exc, "c.db")) is SinkUnavailable


def test_an_io_error_is_transient_by_its_extended_code() -> None:
    # A real I/O error needs a failing disk; SQLite reports it as SQLITE_IOERR_WRITE.
    exc = sqlite3.OperationalError("disk I/O error")
    exc.sqlite_errorcode = 778
    assert type(sqlite_error(exc, "x.db")) is SinkUnavailable


def test_the_context_manager_maps_only_sqlite_errors(conn: sqlite3.Connection) -> None:
    with pytest.raises(IncompatibleSchema), sqlite_errors("x.db", "read"):
        conn.execute("SELECT * FROM nowhere")
    with pytest.raises(KeyError), sqlite_errors("x.db"):
        raise KeyError("not sqlite's")
    with sqlite_errors("x.db"):
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_every_mapped_error_is_in_the_tree(tmp_path: Path) -> None:
    errors = [
        sqlite3.OperationalError("x"),
        sqlite3.DatabaseError("x"),
        sqlite3.InterfaceError("x"),
        sqlite3.ProgrammingError("x"),
    ]
    assert all(isinstance(sqlite_error(e, tmp_path), HomeIQError) for e in errors)
