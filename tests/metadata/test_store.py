"""metadata.db: schema migrations, the stored registry, dead letters and the kv table."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from homeiq.errors import HomeIQError, IncompatibleSchema
from homeiq.metadata import schema
from homeiq.metadata.migrations import (
    connect,
    current_version,
    migrate,
    run_script,
    transaction,
)
from homeiq.metadata.store import METADATA_DB, MetadataStore
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


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetadataStore]:
    opened = MetadataStore.in_dir(tmp_path)
    yield opened
    opened.close()


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    opened = connect(str(tmp_path / "test.db"))
    yield opened
    opened.close()


def tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {str(name) for (name,) in rows}


def versions(path: Path) -> list[tuple[int, int]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT version, applied_at FROM schema_changes ORDER BY 1").fetchall()
    finally:
        conn.close()


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


def test_metadata_store_schema_is_current_and_reopen_is_no_op(tmp_path: Path) -> None:
    MetadataStore.in_dir(tmp_path).close()
    path = tmp_path / METADATA_DB
    first = versions(path)
    assert [v for v, _ in first] == list(range(1, len(schema.STEPS) + 1))
    MetadataStore.in_dir(tmp_path).close()
    assert versions(path) == first


def test_metadata_store_refuses_a_newer_schema(tmp_path: Path) -> None:
    MetadataStore.in_dir(tmp_path).close()
    raw = sqlite3.connect(tmp_path / METADATA_DB)
    raw.execute("INSERT INTO schema_changes VALUES (?, 0)", (len(schema.STEPS) + 1,))
    raw.commit()
    raw.close()
    with pytest.raises(IncompatibleSchema, match="newer"):
        MetadataStore.in_dir(tmp_path)


def test_metadata_store_creates_its_directory(tmp_path: Path) -> None:
    MetadataStore.in_dir(tmp_path / "nested" / "dir").close()
    assert (tmp_path / "nested" / "dir" / METADATA_DB).is_file()


# -- registry -------------------------------------------------------------------------------

SNAPSHOT = RegistrySnapshot(
    floors=(Floor("basement", "Basement", -1), Floor("ground", "Ground floor", 0)),
    areas=(
        Area("bedroom", "Bedroom", None),
        Area("kitchen", "Kitchen", "ground"),
    ),
    devices=(
        Device("dev-a", "Thermostat", "kitchen", "Acme", "T1000"),
        Device("dev-b", None, None, None, None),
    ),
    entities=(
        Entity("light.bed", None, "bedroom", "demo", "Bed light"),
        Entity("sensor.temp", "dev-a", None, "demo", None),
    ),
)


def test_registry_round_trip(store: MetadataStore) -> None:
    assert store.load_registry() == RegistrySnapshot()
    store.replace_registry(SNAPSHOT)
    assert store.load_registry() == SNAPSHOT


def test_registry_is_loaded_in_id_order(store: MetadataStore) -> None:
    shuffled = RegistrySnapshot(
        floors=tuple(reversed(SNAPSHOT.floors)),
        areas=tuple(reversed(SNAPSHOT.areas)),
        devices=tuple(reversed(SNAPSHOT.devices)),
        entities=tuple(reversed(SNAPSHOT.entities)),
    )
    store.replace_registry(shuffled)
    assert store.load_registry() == SNAPSHOT


def test_replace_registry_replaces_everything(store: MetadataStore) -> None:
    store.replace_registry(SNAPSHOT)
    smaller = RegistrySnapshot(areas=(Area("hall", "Hall"),), entities=(Entity("switch.x"),))
    store.replace_registry(smaller)
    assert store.load_registry() == smaller


def test_failed_replace_keeps_the_previous_registry(store: MetadataStore) -> None:
    store.replace_registry(SNAPSHOT)
    duplicate = RegistrySnapshot(areas=(Area("a", "A"), Area("a", "A again")))
    with pytest.raises((sqlite3.IntegrityError, HomeIQError)):
        store.replace_registry(duplicate)
    assert store.load_registry() == SNAPSHOT


def test_registry_survives_reopen(tmp_path: Path) -> None:
    first = MetadataStore.in_dir(tmp_path)
    first.replace_registry(SNAPSHOT)
    first.close()
    second = MetadataStore.in_dir(tmp_path, readonly=True)
    try:
        assert second.load_registry() == SNAPSHOT
    finally:
        second.close()


# -- dead letters ---------------------------------------------------------------------------


def letter(
    reason: str, at: int, entity_id: str | None = None, payload: bytes = b"{}"
) -> DeadLetter:
    return DeadLetter(reason, f"detail {at}", payload, at, entity_id)


def test_dead_letters_round_trip(store: MetadataStore) -> None:
    payload = b'{"event":{"data":{"entity_id":"sensor.x"}},"raw":"\xff\x00"}'
    stored = letter("bad_state", 10, "sensor.x", payload)
    assert store.add_dead_letters([stored]) == 1
    assert store.dead_letters() == [stored]


def test_adding_no_dead_letters(store: MetadataStore) -> None:
    assert store.add_dead_letters([]) == 0
    assert store.add_dead_letters(iter(())) == 0
    assert store.dead_letter_counts() == {}
    assert store.dead_letters() == []


def test_dead_letter_counts_filter_and_order(store: MetadataStore) -> None:
    batch = [
        letter("bad_state", 1, "sensor.a"),
        letter("bad_entity_id", 2),
        letter("bad_state", 3, "sensor.b"),
        letter("sink_rejected", 4, "sensor.c"),
    ]
    assert store.add_dead_letters(batch) == 4
    assert store.add_dead_letters(x for x in [letter("bad_state", 5, "sensor.d")]) == 1

    assert store.dead_letter_counts() == {"bad_entity_id": 1, "bad_state": 3, "sink_rejected": 1}
    newest_first = store.dead_letters()
    assert [d.received_at for d in newest_first] == [5, 4, 3, 2, 1]
    bad_state = store.dead_letters(reason="bad_state")
    assert [(d.received_at, d.entity_id) for d in bad_state] == [
        (5, "sensor.d"),
        (3, "sensor.b"),
        (1, "sensor.a"),
    ]
    assert store.dead_letters(reason="bad_state", limit=2) == bad_state[:2]
    assert store.dead_letters(limit=1) == newest_first[:1]
    assert store.dead_letters(reason="never_seen") == []


def test_dead_letters_are_newest_added_first_not_by_timestamp(store: MetadataStore) -> None:
    store.add_dead_letters([letter("x", 100)])
    store.add_dead_letters([letter("x", 50)])  # a late arrival with an older stamp
    assert [d.received_at for d in store.dead_letters()] == [50, 100]


# -- kv -------------------------------------------------------------------------------------


def test_kv_get_put_overwrite(store: MetadataStore) -> None:
    assert store.get("last_sync") is None
    store.put("last_sync", "1")
    assert store.get("last_sync") == "1"
    store.put("last_sync", "2")
    assert store.get("last_sync") == "2"
    store.put("other", "")
    assert store.get("other") == ""
    assert store.get("last_sync") == "2"


def test_kv_survives_reopen(tmp_path: Path) -> None:
    first = MetadataStore.in_dir(tmp_path)
    first.put("cursor", "2026-11-25T21:22:17+00:00")
    first.close()
    second = MetadataStore.in_dir(tmp_path)
    try:
        assert second.get("cursor") == "2026-11-25T21:22:17+00:00"
    finally:
        second.close()


def test_readonly_metadata_store_refuses_writes(tmp_path: Path) -> None:
    MetadataStore.in_dir(tmp_path).close()
    reader = MetadataStore.in_dir(tmp_path, readonly=True)
    try:
        assert reader.get("k") is None
        with pytest.raises((sqlite3.OperationalError, HomeIQError), match="readonly"):
            reader.put("k", "v")
        assert reader.get("k") is None
    finally:
        reader.close()


def test_gaps_are_kept_in_order_until_removed(tmp_path: Path) -> None:
    store = MetadataStore.in_dir(tmp_path)
    late = store.add_gap(Gap(300, 400, "spool_full", 1))
    store.add_gap(Gap(100, 200, "restart", 2))
    assert [(g.start_us, g.end_us, g.reason) for g in store.gaps()] == [
        (100, 200, "restart"),
        (300, 400, "spool_full"),
    ]
    store.remove_gap(late)
    assert [g.reason for g in store.gaps()] == ["restart"]
    store.close()
    reopened = MetadataStore.in_dir(tmp_path)
    assert [g.reason for g in reopened.gaps()] == ["restart"]
    reopened.close()


def test_quality_events_newest_first_and_by_kind(tmp_path: Path) -> None:
    store = MetadataStore.in_dir(tmp_path)
    store.add_quality_event(QualityEvent(1, "gap_beyond_history", 10, 20, None, "purged"))
    store.add_quality_event(QualityEvent(2, "spool_dropped", 30, 40, 5000, "spool full"))
    assert [e.kind for e in store.quality_events()] == ["spool_dropped", "gap_beyond_history"]
    assert store.quality_events(kind="spool_dropped") == [
        QualityEvent(2, "spool_dropped", 30, 40, 5000, "spool full")
    ]
    store.close()


# -- API keys -------------------------------------------------------------------------------------


def test_api_keys_table_arrives_as_version_3(tmp_path: Path) -> None:
    MetadataStore.in_dir(tmp_path).close()
    assert [v for v, _ in versions(tmp_path / METADATA_DB)][:3] == [1, 2, 3]
    conn = sqlite3.connect(tmp_path / METADATA_DB)
    try:
        assert "api_keys" in tables(conn)
    finally:
        conn.close()


def test_backup_runs_arrive_as_version_4_newest_first_by_kind_and_outcome(
    tmp_path: Path,
) -> None:
    path = tmp_path / METADATA_DB
    conn = connect(str(path))
    migrate(conn, schema.STEPS[:3])  # a database from before backups
    conn.close()
    store = MetadataStore(path)
    try:
        assert [v for v, _ in versions(path)] == [1, 2, 3, 4]
        assert store.backup_runs() == []
        made = [
            BackupRun("create", 1, 10, True, "a", "file:///x", 100, "ok"),
            BackupRun("create", 20, 30, False, "b", "s3://b", None, "refused"),
            BackupRun("verify", 40, 50, True, "a", None, None, "verified"),
        ]
        for run in made:
            store.add_backup_run(run)
        assert store.backup_runs() == made[::-1]
        assert store.backup_runs(kind="create", ok=True) == [made[0]]
        assert store.backup_runs(kind="create", limit=1) == [made[1]]
    finally:
        store.close()


def test_a_version_2_database_gains_the_api_keys_table_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / METADATA_DB
    conn = connect(str(path))
    migrate(conn, schema.STEPS[:2])
    conn.execute("INSERT INTO kv VALUES ('durable_until_us', '42')")
    conn.close()
    store = MetadataStore(path)
    try:
        assert store.get("durable_until_us") == "42"
        assert store.api_key_count() == 0
    finally:
        store.close()


def test_api_key_lifecycle(store: MetadataStore) -> None:
    added = store.add_api_key(name="grafana", scopes=["read"], key_hash="h1", created_at=10)
    other = store.add_api_key(name="ops", scopes=["write", "admin"], key_hash="h2", created_at=20)
    assert (added.id, added.scopes, added.last_used_at, added.revoked) == (
        1,
        ("read",),
        None,
        False,
    )
    assert store.api_key_by_hash("h2") == other
    assert store.api_key_by_hash("nope") is None
    assert store.api_key(other.id) == other
    assert store.api_key(99) is None
    assert [k.name for k in store.api_keys()] == ["grafana", "ops"]
    assert store.api_key_count() == 2

    store.touch_api_key(added.id, 15)
    touched = store.api_key(added.id)
    assert touched is not None and touched.last_used_at == 15

    revoked = store.revoke_api_key(added.id, 30)
    assert revoked is not None and revoked.revoked_at == 30 and revoked.revoked
    again = store.revoke_api_key(added.id, 40)
    assert again is not None and again.revoked_at == 30  # the first revocation stands
    assert store.revoke_api_key(99, 40) is None
    assert store.api_key_count() == 2  # revoked keys are kept (audit), never reused


def test_api_key_hashes_are_unique(store: MetadataStore) -> None:
    store.add_api_key(name="a", scopes=["read"], key_hash="same", created_at=1)
    with pytest.raises(sqlite3.IntegrityError):
        store.add_api_key(name="b", scopes=["read"], key_hash="same", created_at=2)


def test_revoked_key_ids_are_never_reused(tmp_path: Path) -> None:
    store = MetadataStore.in_dir(tmp_path)
    try:
        first = store.add_api_key(name="a", scopes=["read"], key_hash="h1", created_at=1)
        with transaction(store._conn) as conn:  # even if a row were deleted by hand
            conn.execute("DELETE FROM api_keys WHERE id = ?", (first.id,))
        second = store.add_api_key(name="b", scopes=["read"], key_hash="h2", created_at=2)
        assert second.id == first.id + 1
    finally:
        store.close()


# -- dead letters by id --------------------------------------------------------------------------


def test_dead_letter_pages_cursor_and_reason(store: MetadataStore) -> None:
    store.add_dead_letters([letter(f"r{i % 2}", i) for i in range(5)])
    page = store.dead_letter_page(limit=2)
    assert [k.id for k in page] == [5, 4]
    assert [k.id for k in store.dead_letter_page(before_id=4, limit=10)] == [3, 2, 1]
    assert [k.id for k in store.dead_letter_page(reason="r1")] == [4, 2]
    assert [k.id for k in store.dead_letter_page(reason="r0", before_id=5)] == [3, 1]
    assert page[0].letter.detail == "detail 4"
    assert [k.id for k in store.oldest_dead_letters("r0", 2)] == [1, 3]


def test_dead_letters_by_id_and_removal(store: MetadataStore) -> None:
    store.add_dead_letters([letter("r", i) for i in range(1200)])
    wanted = [1200, 3, 3, 999, 5000, 1]
    assert [k.id for k in store.dead_letters_by_id(wanted)] == [1, 3, 999, 1200]
    assert len(store.dead_letters_by_id(range(1, 1201))) == 1200  # chunked past SQLite's cap
    assert store.remove_dead_letters([3, 3, 999, 5000]) == 2
    assert store.remove_dead_letters([]) == 0
    assert store.dead_letter_counts() == {"r": 1198}
    assert [k.id for k in store.dead_letters_by_id([3, 4])] == [4]
