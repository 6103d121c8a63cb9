"""``homeiq status`` ends with the resource watch's part: the data directory's files and
free space (read offline), and the CPU and memory of the HomeIQ holding the lock."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from homeiq.cli import main
from homeiq.lockfile import DataDirLock
from homeiq.model import EventRecord
from homeiq.settings import ENV_PREFIX
from homeiq.sinks.sqlite import EVENTS_DB, SQLiteEventStore

MIB = 1024 * 1024


@pytest.fixture
def data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    data = tmp_path / "data"
    store = SQLiteEventStore.in_dir(data)
    store.write([EventRecord("sensor.a", 1_700_000_000_000_000 + i, str(i)) for i in range(10)])
    store.close()
    (data / "rollups.db").write_bytes(b"\0" * (3 * MIB))  # only its size is read
    monkeypatch.setenv("HOMEIQ_DATA_DIR", str(data))
    return data


def resources(out: str) -> list[str]:
    return out.rstrip("\n").split("\n\n")[-1].splitlines()


def test_files_and_free_space_without_a_server(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status"]) == 0
    lines = resources(capsys.readouterr().out)
    rows = dict(line.split() for line in lines[2:-2])  # under the header and its rule
    assert rows["rollups.db"] == "3.0"
    events_mib = (data / EVENTS_DB).stat().st_size / MIB
    assert rows[EVENTS_DB] == f"{events_mib:.1f}"
    assert float(rows["total"]) >= 3.0
    free = shutil.disk_usage(data).free / MIB
    disk = re.fullmatch(r"disk free: ([\d.]+) MiB of ([\d.]+) MiB \(([\d.]+) %\)", lines[-2])
    assert disk is not None
    assert abs(float(disk[1]) - free) < 64  # the disk is shared: it moves a little
    assert lines[-1] == "server: not running"


def test_a_running_server_shows_its_cpu_and_memory(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = DataDirLock(data)  # what a running HomeIQ holds (this process, here)
    lock.acquire()
    try:
        assert main(["status"]) == 0
    finally:
        lock.release()
    server = resources(capsys.readouterr().out)[-1]
    found = re.fullmatch(
        r"server: pid (\d+), (\d+) processes, CPU ([\d.]+) % of every core,"
        r" memory ([\d.]+) MiB",
        server,
    )
    assert found is not None, server
    assert int(found[1]) == os.getpid()
    assert 0 <= float(found[3]) <= 100 and float(found[4]) > 10
