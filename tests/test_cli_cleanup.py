"""``homeiq cleanup`` over a real SQLite store: the dry run's table, the deletion and its
history, refusing while HomeIQ runs, and the usage errors."""

from __future__ import annotations

import asyncio
import getpass
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from homeiq.cli import main
from homeiq.lockfile import DataDirLock
from homeiq.settings import ENV_PREFIX
from homeiq.sinks.sqlite import SQLiteEventStore, SQLiteSink
from tests.support.influxdb import event


@pytest.fixture
def data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """A data directory holding a few test and real entities' events."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    path = tmp_path / "data"
    monkeypatch.setenv("HOMEIQ_DATA_DIR", str(path))
    monkeypatch.setenv("HOMEIQ_SQLITE_WRITER", "thread")

    async def fill() -> None:
        sink = SQLiteSink(path, writer="thread")
        await sink.open()
        entities = ("sensor.test_a", "sensor.test_b", "sensor.real")
        await sink.write([event(e, s) for e in entities for s in range(3)])
        await sink.close()

    asyncio.run(fill())
    yield path


def stored(path: Path) -> set[str]:
    store = SQLiteEventStore.in_dir(path, readonly=True)
    try:
        return {r.entity_id for r in store.all_records()}
    finally:
        store.close()


def test_a_dry_run_lists_per_entity_and_deletes_nothing_then_a_run_deletes(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cleanup", "--entity", "sensor.test_*", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would delete 6 events of 2 entities (sensor.test_*)" in out
    assert "dry run: nothing was deleted" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("sensor.")]
    assert rows == [["sensor.test_a", "3"], ["sensor.test_b", "3"]]
    assert stored(data_dir) == {"sensor.test_a", "sensor.test_b", "sensor.real"}

    assert main(["cleanup", "--entity", "sensor.test_*"]) == 0
    assert "deleted 6 events of 2 entities (sensor.test_*); cleanup #1" in capsys.readouterr().out
    assert stored(data_dir) == {"sensor.real"}

    assert main(["cleanup", "--history"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["id", "started", "(UTC)", "who"]
    row = lines[2].split()
    assert row[0] == "1" and row[3:7] == [getpass.getuser(), "done", "6", "6"]
    assert row[7] == "sensor.test_*"


def test_a_cleanup_and_its_dry_run_are_refused_while_homeiq_runs_as_purge_is(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = DataDirLock(data_dir)
    lock.acquire()
    try:
        assert main(["cleanup", "--entity", "sensor.real"]) == 1
        assert f"(pid {os.getpid()}) is running against" in capsys.readouterr().err
        assert main(["cleanup", "--entity", "sensor.real", "--dry-run"]) == 1
        assert "is running against" in capsys.readouterr().err
        assert main(["cleanup", "--history"]) == 0  # reading metadata.db only
        assert "no cleanups yet" in capsys.readouterr().out
    finally:
        lock.release()
    assert stored(data_dir) == {"sensor.test_a", "sensor.test_b", "sensor.real"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cleanup", "--entity", "Sensor.*"], "characters no entity id has"),
        (["cleanup", "--source", "live"], "say what to delete"),
        (["cleanup", "--entity", "x.*", "--before", "soon"], "neither a span"),
        (["cleanup", "--entity", "x.*", "--source", "sim"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2_naming_the_problem(
    data_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    assert code == 2
    assert message in capsys.readouterr().err


def test_excluded_without_rules_says_so(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cleanup", "--excluded"]) == 0
    assert "no include/exclude rules are set" in capsys.readouterr().out


def test_excluded_deletes_what_the_rules_now_leave_out(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOMEIQ_INGEST_EXCLUDE_ENTITY_GLOBS", "sensor.test_*")
    assert main(["cleanup", "--excluded"]) == 0
    assert (
        "deleted 6 events of 2 entities (excluded by the ingest rules)" in capsys.readouterr().out
    )
    assert stored(data_dir) == {"sensor.real"}
