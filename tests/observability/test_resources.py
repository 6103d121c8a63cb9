"""The resource watch reads real numbers: this process and a child it starts, files of a
known size in a data directory, the counters of the pipeline's metrics; windows over
its samples are exact differences of cumulative readings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from homeiq.observability.metrics import Metrics
from homeiq.observability.resources import (
    DATA_FILES,
    ProcessUsage,
    ResourceWatch,
    disk_usage,
    measure_process,
    process_usage,
)
from tests.support.clock import FakeClock
from tests.support.wait import wait_until


def test_usage_includes_the_children(tmp_path: Path) -> None:
    alone = process_usage()
    assert alone is not None and alone.rss_bytes > 10 * 1024 * 1024
    # A child holding 64 MiB, as the SQLite writer process holds its page cache.
    ready = tmp_path / "ready"
    code = (
        "import pathlib, sys, time; block = bytearray(64 * 1024 * 1024);"
        "block[::4096] = b'x' * len(block[::4096]); pathlib.Path(sys.argv[1]).touch();"
        "time.sleep(30)"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(ready)])
    try:
        wait_until(ready.exists, message="the child did not start")
        together = process_usage()
        assert together is not None
        child_rss = psutil.Process(child.pid).memory_info().rss
        assert child_rss > 64 * 1024 * 1024
        assert together.processes >= alone.processes + 1
        assert together.rss_bytes >= alone.rss_bytes + child_rss - 16 * 1024 * 1024
        measured = measure_process(os.getpid(), interval_s=0.05)
        assert measured is not None and 0 <= measured[0] <= 100
    finally:
        child.kill()
        child.wait()


def test_a_process_that_is_gone_has_no_usage() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert process_usage(child.pid) is None
    assert measure_process(child.pid) is None


def test_files_of_the_data_dir_show_their_size(tmp_path: Path) -> None:
    (tmp_path / "events.db").write_bytes(b"x" * 123_456)
    (tmp_path / "events.db-wal").write_bytes(b"x" * 4_096)
    (tmp_path / "metadata.db").write_bytes(b"x" * 1_000)
    (tmp_path / "notes.txt").write_bytes(b"x" * 99)  # not HomeIQ's
    disk = disk_usage(tmp_path)
    assert disk.files == {"events.db": 123_456, "events.db-wal": 4_096, "metadata.db": 1_000}
    assert disk.data_bytes == 128_552
    fs = os.statvfs(tmp_path)
    assert disk.total_bytes == fs.f_blocks * fs.f_frsize
    assert disk.free_percent is not None and 0 < disk.free_percent < 100
    assert set(DATA_FILES) >= {"rollups.db", "spool.db-wal", "metadata.db-shm"}


def test_a_sample_sets_the_gauges(tmp_path: Path) -> None:
    (tmp_path / "spool.db").write_bytes(b"x" * 2_048)
    metrics = Metrics()
    clock = FakeClock()
    watch = ResourceWatch(tmp_path, metrics, clock=clock)
    watch.sample()
    metrics.events_received.inc(300)
    metrics.events_stored.inc(240)
    clock.advance(15)
    watch.sample()
    assert metrics.value("homeiq_data_file_bytes", {"file": "spool.db"}) == 2_048
    assert metrics.value("homeiq_data_file_bytes", {"file": "events.db"}) == 0
    assert metrics.value("homeiq_disk_free_bytes") > 0
    assert metrics.value("homeiq_process_resident_memory_bytes") > 10 * 1024 * 1024
    assert metrics.value("homeiq_events_in_per_second") == 20.0
    assert metrics.value("homeiq_events_out_per_second") == 16.0
    assert watch.received_since_previous() == 300


class ScriptedCpu:
    """CPU seconds used at a known pace (the process's real time cannot be steered)."""

    def __init__(self, clock: FakeClock, cores_busy: float) -> None:
        self.clock, self.cores_busy = clock, cores_busy
        self.used, self.last = 0.0, clock.now

    def __call__(self) -> ProcessUsage:
        self.used += (self.clock.now - self.last) * self.cores_busy
        self.last = self.clock.now
        return ProcessUsage(self.used, 100, 1)


def test_cpu_is_averaged_over_a_covered_window_as_a_share_of_every_core(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    cpu = ScriptedCpu(clock, cores_busy=1.6)  # 1.6 of 2 cores: 80 %
    watch = ResourceWatch(tmp_path, Metrics(), clock=clock, usage=cpu, cores=2, spacing_s=30)
    watch.sample()
    for _ in range(59):
        clock.advance(15)
        watch.sample()
    assert watch.cpu_percent(900) is None  # 14 min 45 s: the window is not covered yet
    assert watch.cpu_percent() == pytest.approx(80.0)
    clock.advance(15)
    watch.sample()
    assert watch.cpu_percent(900) == pytest.approx(80.0)
    cpu.cores_busy = 0.2  # from now on, 10 %
    for _ in range(60):
        clock.advance(15)
        watch.sample()
    assert watch.cpu_percent(900) == pytest.approx(10.0)


def test_error_rate_and_growth_over_their_windows(tmp_path: Path) -> None:
    clock = FakeClock()
    metrics = Metrics()
    watch = ResourceWatch(tmp_path, metrics, clock=clock, spacing_s=30)
    events = tmp_path / "events.db"
    events.write_bytes(b"")
    watch.sample()
    metrics.events_received.inc(50)
    metrics.events_rejected.labels("invalid_state").inc(5)
    clock.advance(60)
    watch.sample()
    assert watch.error_rate(3600, min_events=100) is None  # 50 events say nothing yet
    metrics.events_received.inc(950)
    metrics.sink_errors.labels("transient").inc(10)
    events.write_bytes(b"x" * 3_600_000)
    clock.advance(3540)
    watch.sample()
    assert watch.error_rate(3600, min_events=100) == 15 / 1000
    assert watch.growth_bytes_per_s(3600) == 1000.0  # 3.6 MB in the hour
