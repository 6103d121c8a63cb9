"""metadata.db: schema migrations, the stored registry, dead letters and the kv table."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from homeiq.errors import IncompatibleSchema, SinkRejected, SinkUnavailable
from homeiq.metadata import schema
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
from homeiq.sqlitedb import connect, migrate, transaction


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetadataStore]:
    opened = MetadataStore.in_dir(tmp_path)
    yield opened
    opened.close()


def tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {str(name) for (name,) in rows}


def full_disk(store: MetadataStore) -> None:
    """Cap the file at its size: SQLite's real SQLITE_FULL from the next page on."""
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count={pages}")


def versions(path: Path) -> list[tuple[int, int]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT version, applied_at FROM schema_changes ORDER BY 1").fetchall()
    finally:
        conn.close()


# -- opening ----------------------------------------------------------------------------------


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


def test_a_missing_store_opened_read_only_is_unavailable_naming_it(tmp_path: Path) -> None:
    with pytest.raises(SinkUnavailable, match=r"sqlite cannot open .*metadata\.db: unable to open"):
        MetadataStore.in_dir(tmp_path, readonly=True)


def test_a_data_dir_that_is_a_file_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(SinkUnavailable, match="cannot create"):
        MetadataStore.in_dir(tmp_path / "file")


def test_a_damaged_metadata_db_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / METADATA_DB).write_bytes(b"no database here " * 300)
    with pytest.raises(SinkRejected, match=r"cannot open .*metadata\.db: file is not a database"):
        MetadataStore.in_dir(tmp_path)


def test_a_full_disk_is_unavailable_and_keeps_what_was_stored(store: MetadataStore) -> None:
    letter = DeadLetter("invalid_json", "bad", b"{", 1, None)
    store.add_dead_letters([letter])
    full_disk(store)
    with pytest.raises(
        SinkUnavailable, match=r"cannot write .*metadata\.db: database or disk is full"
    ):
        store.add_dead_letters([DeadLetter("invalid_json", "x" * 50_000, b"{" * 50_000, 2, None)])
    assert store.dead_letters() == [letter]  # nothing half-written
    assert store.get("k") is None  # reads still work


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
    with pytest.raises(SinkRejected, match="UNIQUE constraint failed"):
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
        with pytest.raises(SinkRejected, match=r"cannot write .*metadata\.db: .*readonly"):
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
        # Version 4 and every step after it (later features add their own).
        assert [v for v, _ in versions(path)] == list(range(1, len(schema.STEPS) + 1))
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
    with pytest.raises(SinkRejected, match=r"UNIQUE constraint failed: api_keys\.key_hash"):
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
