"""``homeiq purge``: the table per tier, the dry run deleting nothing, and a refusal
(exit 1, one sentence) while a server holds the data directory."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from homeiq.cli import main
from homeiq.lockfile import DataDirLock
from homeiq.model import EventRecord
from homeiq.sinks.sqlite import SQLiteEventStore

DAY_US = 86_400_000_000


def old_store(data_dir: Path) -> set[tuple[str, int]]:
    now = time.time_ns() // 1000
    store = SQLiteEventStore.in_dir(data_dir)
    store.write([EventRecord("sensor.x", now - d * DAY_US, str(d)) for d in range(1, 41)])
    keys = store.keys()
    store.close()
    return keys


def stored(data_dir: Path) -> set[tuple[str, int]]:
    store = SQLiteEventStore.in_dir(data_dir, readonly=True)
    try:
        return store.keys()
    finally:
        store.close()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("HOMEIQ_CONFIG", "HOMEIQ_STORE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOMEIQ_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HOMEIQ_RETENTION_RAW_DAYS", "10")
    monkeypatch.setenv("HOMEIQ_SQLITE_WRITER", "thread")
    return tmp_path


def test_dry_run_then_purge(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = old_store(data_dir)
    assert main(["purge", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Dry run: would delete" in out and "Nothing was deleted (dry run)." in out
    raw = next(line for line in out.splitlines() if line.startswith("raw "))
    # The reference is the newest event (a day ago), so days 12..40 ago go: 29 events.
    assert raw.split()[:4] == ["raw", "10", "days", "29"]
    assert stored(data_dir) == before

    assert main(["purge"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Deleted (reference time")
    assert len(stored(data_dir)) == 11
    for tier in ("5m ", "1h ", "1d "):
        assert any(line.startswith(tier) for line in out.splitlines())


def test_refused_while_a_server_runs(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = old_store(data_dir)
    lock = DataDirLock(data_dir)
    lock.acquire()
    try:
        assert main(["purge"]) == 1
    finally:
        lock.release()
    err = capsys.readouterr().err
    assert "homeiq: HomeIQ (pid" in err and "is running against" in err
    assert "the server purges by itself daily at 04:15 (HOMEIQ_RETENTION_SCHEDULE)" in err
    assert "Traceback" not in err
    assert stored(data_dir) == before


def test_a_bad_retention_setting_is_a_usage_error(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOMEIQ_RETENTION_RAW_DAYS", "-3")
    assert main(["purge", "--dry-run"]) == 2
    assert "HOMEIQ_RETENTION_RAW_DAYS" in capsys.readouterr().err


def test_an_empty_store(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["purge", "--dry-run"]) == 0
    assert "nothing: the event store is empty" in capsys.readouterr().out
