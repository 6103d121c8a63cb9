"""``homeiq backup``: keygen, create, list, verify, restore (dry run, real, refused) and
prune, as a user runs them, configured from the environment."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from homeiq.cli import main
from homeiq.sinks.sqlite.store import SQLiteEventStore
from tests.support.influxdb import event


def events_in(data: Path) -> int:
    with sqlite3.connect(data / "events.db") as conn:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    store = SQLiteEventStore.in_dir(data)
    store.write([event("sensor.a", second=i) for i in range(40)])
    store.close()
    monkeypatch.setenv("HOMEIQ_DATA_DIR", str(data))
    monkeypatch.setenv("HOMEIQ_BACKUP_TARGETS", (tmp_path / "nas").as_uri())
    return tmp_path


def test_keygen_create_list_verify_restore_prune(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    identity = env / "backup-identity.txt"
    assert main(["backup", "keygen", str(identity)]) == 0
    recipient = capsys.readouterr().out.strip()
    assert recipient.startswith("age1") and identity.stat().st_mode & 0o777 == 0o600
    assert main(["backup", "keygen", str(identity)]) == 1  # never overwrites a key
    assert "exists" in capsys.readouterr().err
    monkeypatch.setenv("HOMEIQ_BACKUP_RECIPIENTS", recipient)

    assert main(["backup", "create"]) == 0
    out = capsys.readouterr().out
    name = out.split(":")[0]
    assert name.startswith("homeiq-") and f"{(env / 'nas').as_uri()}: ok" in out

    assert main(["backup", "list"]) == 0
    assert name in capsys.readouterr().out

    assert main(["backup", "verify", name]) == 2  # no identity configured: names the setting
    assert "HOMEIQ_BACKUP_IDENTITY_FILE" in capsys.readouterr().err
    assert main(["backup", "verify", name, "--identity", str(identity)]) == 0
    out = capsys.readouterr().out
    assert "ok: test restore" in out and out.strip().endswith(f"{name}: verified")

    data = env / "data"
    store = SQLiteEventStore.in_dir(data)
    store.write([event("sensor.b", second=i) for i in range(5)])
    store.close()
    monkeypatch.setenv("HOMEIQ_BACKUP_IDENTITY_FILE", str(identity))
    assert main(["backup", "restore", name, "--dry-run"]) == 0
    assert "would restore sqlite/events.db" in capsys.readouterr().out
    assert events_in(data) == 45
    assert main(["backup", "restore", name]) == 0
    out = capsys.readouterr().out
    assert "restored sqlite/events.db" in out and "previous data is kept in" in out
    assert events_in(data) == 40

    assert main(["backup", "prune", "--dry-run"]) == 0
    assert "would delete 0 archive(s)" in capsys.readouterr().out


def test_a_damaged_archive_fails_verify_and_restore_with_a_clear_message(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    passphrase = env / "passphrase"
    passphrase.write_text("a long passphrase\n")
    monkeypatch.setenv("HOMEIQ_BACKUP_PASSPHRASE_FILE", str(passphrase))
    assert main(["backup", "create"]) == 0
    name = capsys.readouterr().out.split(":")[0]
    archive = env / "nas" / name
    damaged = env / "damaged.tar.age"
    damaged.write_bytes(archive.read_bytes()[:-100])  # truncated
    assert main(["backup", "verify", str(damaged)]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM: cannot decrypt damaged.tar.age" in out and "FAILED verification" in out
    assert main(["backup", "restore", str(damaged)]) == 1
    assert "nothing was restored" in capsys.readouterr().err
    assert events_in(env / "data") == 40


def test_create_without_encryption_names_the_settings(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backup", "create"]) == 2
    err = capsys.readouterr().err
    assert "HOMEIQ_BACKUP_RECIPIENTS" in err and "HOMEIQ_BACKUP_PASSPHRASE_FILE" in err
