"""The data directory is private: 0700, its databases 0600; an older install is fixed
on start, each fix logged; a path that cannot be a data directory is a ConfigError."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from homeiq.datadir import KNOWN_FILES, prepare_data_dir
from homeiq.errors import ConfigError
from homeiq.ha.simulator import Simulator
from homeiq.lockfile import LOCK_FILE
from homeiq.maintenance.rollups import ROLLUPS_DB
from homeiq.metadata.store import METADATA_DB
from homeiq.pipeline.spool import SPOOL_DB
from homeiq.runtime import Runtime
from homeiq.settings import Settings
from homeiq.sinks.sqlite import EVENTS_DB


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def private_umask() -> Iterator[None]:
    """The umask ``homeiq`` sets for itself at start (the CLI's main)."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def test_the_known_files_are_the_ones_homeiq_writes() -> None:
    assert set(KNOWN_FILES) == {EVENTS_DB, METADATA_DB, ROLLUPS_DB, SPOOL_DB, LOCK_FILE}


def test_a_new_data_dir_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "a" / "data"
    prepare_data_dir(path)
    assert path.is_dir() and _mode(path) == 0o700


def test_an_existing_open_install_is_fixed_and_each_fix_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tmp_path.chmod(0o755)
    for name in ("events.db", "events.db-wal", "events.db-shm", "metadata.db", "spool.db"):
        (tmp_path / name).write_bytes(b"")
        (tmp_path / name).chmod(0o644)
    (tmp_path / "rollups.db").write_bytes(b"")
    (tmp_path / "rollups.db").chmod(0o600)  # already private: not logged
    (tmp_path / "notes.txt").write_bytes(b"")
    (tmp_path / "notes.txt").chmod(0o644)  # not HomeIQ's: left alone
    caplog.set_level(logging.WARNING, logger="homeiq.datadir")
    prepare_data_dir(tmp_path)
    assert _mode(tmp_path) == 0o700
    for name in ("events.db", "events.db-wal", "events.db-shm", "metadata.db", "spool.db"):
        assert _mode(tmp_path / name) == 0o600
    assert _mode(tmp_path / "notes.txt") == 0o644
    assert sorted(r.getMessage() for r in caplog.records) == sorted(
        [f"fixed mode of {tmp_path}: 0755 → 0700"]
        + [
            f"fixed mode of {name}: 0644 → 0600"
            for name in ("events.db", "events.db-wal", "events.db-shm", "metadata.db", "spool.db")
        ]
    )
    caplog.clear()
    prepare_data_dir(tmp_path)  # nothing left to fix: nothing logged
    assert caplog.records == []


def test_a_file_is_no_data_dir(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_text("x")
    with pytest.raises(ConfigError, match=r"^HOMEIQ_DATA_DIR: .* is a file, not a directory"):
        prepare_data_dir(path)
    with pytest.raises(ConfigError, match=r"^HOMEIQ_DATA_DIR: cannot create .*: not a directory"):
        prepare_data_dir(path / "below")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_dir_that_cannot_be_created_is_a_config_error(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match=r"^HOMEIQ_DATA_DIR: cannot create .*denied"):
            prepare_data_dir(tmp_path / "data")
    finally:
        tmp_path.chmod(0o700)


async def test_after_a_run_every_file_is_private(
    tmp_path: Path, private_umask: None, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "events.db").write_bytes(b"")  # an install from before: an empty database
    (data / "events.db").chmod(0o644)
    caplog.set_level(logging.WARNING, logger="homeiq.datadir")
    settings = Settings(data_dir=data, batch_max_age_s=0.05, backfill=False)
    async with Simulator(seed=5, rate=200) as sim:
        runtime = Runtime(settings)  # fixes the install on start, and says so
        assert [r.getMessage() for r in caplog.records] == [
            f"fixed mode of {data}: 0755 → 0700",
            "fixed mode of events.db: 0644 → 0600",
        ]
        runtime.connect_to(sim.url, sim.token)
        await runtime.start()
        try:
            deadline = time.monotonic() + 10
            while runtime.stats().stored < 50:
                assert time.monotonic() < deadline, "nothing stored"
                await asyncio.sleep(0.02)
            # While it runs: the WAL and shared-memory files exist too.
            assert (data / "events.db-wal").exists()
            files = [p for p in data.iterdir() if p.is_file()]
            assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}
        finally:
            await runtime.stop()
    assert _mode(data) == 0o700
    files = [p for p in data.iterdir() if p.is_file()]
    assert {"events.db", "metadata.db", "rollups.db", "spool.db"} <= {p.name for p in files}
    assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}
