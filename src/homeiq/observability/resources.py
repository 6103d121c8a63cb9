"""Resource watch: what HomeIQ costs the machine, sampled on a schedule.

Each :meth:`ResourceWatch.sample` reads the process's CPU time and resident memory
*with its children* (the SQLite writer is a child process, ``HOMEIQ_SQLITE_WRITER=process``:
psutil walks ``children(recursive=True)`` and adds their CPU times and RSS), the size of
every database file in the data directory (and its ``-wal``/``-shm``/``-journal``), the
free space of the data directory's file system, and the ingest counters. Samples go in
a bounded ring buffer, thinned to one per :attr:`spacing_s`, so averages over a window
(CPU over 15 minutes, error rate and disk growth over an hour) are differences of two
cumulative readings: exact, whatever the sampling interval.

CPU is reported as a share of the whole machine: 100 % means every core busy with
HomeIQ (``cpu_seconds / elapsed / cores``). Imports only the base floor (and psutil), so
``homeiq status`` can read the files and another process's usage without a runtime.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from homeiq.datadir import KNOWN_FILES, SQLITE_SIDE_FILES
from homeiq.observability.metrics import Metrics

log = logging.getLogger(__name__)

# The data directory's databases and their side files: a closed label set for metrics.
DATA_FILES = tuple(
    f"{name}{suffix}"
    for name in KNOWN_FILES
    if name.endswith(".db")
    for suffix in SQLITE_SIDE_FILES
)
RING_SAMPLES = 512  # thinned samples kept: 4 h of history at one per 30 s
LONGEST_WINDOW_S = 4 * 3600.0


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    """A process and its children, at one moment."""

    cpu_seconds: float  # user + system, cumulative
    rss_bytes: int
    processes: int  # the process and its live children


@dataclass(frozen=True, slots=True)
class DiskUsage:
    """The data directory's files and its file system."""

    files: dict[str, int] = field(default_factory=dict)  # existing files only, bytes
    free_bytes: int = 0
    total_bytes: int = 0

    @property
    def data_bytes(self) -> int:
        """All of HomeIQ's database files together."""
        return sum(self.files.values())

    @property
    def free_percent(self) -> float | None:
        """Free space as a share of the file system (None when it could not be read)."""
        return 100.0 * self.free_bytes / self.total_bytes if self.total_bytes else None


@dataclass(frozen=True, slots=True)
class ResourceSample:
    """One reading of everything the watch follows."""

    at_s: float  # the watch's clock (monotonic seconds)
    process: ProcessUsage | None
    disk: DiskUsage
    events_received: int
    events_stored: int
    errors: int  # dead letters + failed batch writes, cumulative


def process_usage(pid: int | None = None) -> ProcessUsage | None:
    """CPU time and RSS of ``pid`` (default: this process) plus its children; None when
    the process is gone or not ours to read."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    cpu, rss, alive = 0.0, 0, 0
    for proc in procs:
        try:
            with proc.oneshot():
                times = proc.cpu_times()
                rss += proc.memory_info().rss
            cpu += times.user + times.system
            alive += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue  # a child that exited between the listing and the reading
    return ProcessUsage(cpu, rss, alive) if alive else None


def measure_process(pid: int, interval_s: float = 0.25) -> tuple[float, ProcessUsage] | None:
    """CPU (% of every core, over ``interval_s``) and usage of another process and its
    children, for ``homeiq status``; None when it is gone or not ours to read."""
    first = process_usage(pid)
    if first is None:
        return None
    time.sleep(interval_s)  # a CLI reading, never on the event loop
    second = process_usage(pid)
    if second is None:
        return None
    used = max(0.0, second.cpu_seconds - first.cpu_seconds)
    return min(100.0, 100.0 * used / interval_s / cpu_cores()), second


def disk_usage(data_dir: Path) -> DiskUsage:
    """Sizes of the data directory's database files and its file system's free space."""
    files = {}
    for name in DATA_FILES:
        try:
            files[name] = (data_dir / name).stat().st_size
        except OSError:
            continue  # absent (a store not in use, a WAL checkpointed away)
    try:
        total, _used, free = shutil.disk_usage(data_dir)
    except OSError:
        total = free = 0
    return DiskUsage(files, free, total)


def cpu_cores() -> int:
    """Cores this process may run on (its affinity where the OS says, else all)."""
    try:
        return len(psutil.Process().cpu_affinity() or []) or psutil.cpu_count() or 1
    except (AttributeError, psutil.Error):  # no affinity on macOS
        return psutil.cpu_count() or 1


class ResourceWatch:
    """Samples of one HomeIQ process and its data directory, with windows over them."""

    def __init__(
        self,
        data_dir: Path,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        usage: Callable[[], ProcessUsage | None] = process_usage,
        cores: int | None = None,
        spacing_s: float = LONGEST_WINDOW_S / RING_SAMPLES,
    ) -> None:
        self.data_dir = data_dir
        self.metrics = metrics
        self.cores = cores or cpu_cores()
        self.spacing_s = spacing_s
        self._clock = clock
        self._usage = usage
        self._ring: deque[ResourceSample] = deque(maxlen=RING_SAMPLES)
        self.previous: ResourceSample | None = None
        self.latest: ResourceSample | None = None

    def sample(self) -> ResourceSample:
        """Take a reading, keep it, and set the resource gauges (blocking: file stats)."""
        taken = self.read()
        self.previous, self.latest = self.latest, taken
        if not self._ring or taken.at_s - self._ring[-1].at_s >= self.spacing_s:
            self._ring.append(taken)
        self._publish(taken)
        return taken

    def read(self) -> ResourceSample:
        """A reading now, not kept: rates and windows stay those of the schedule."""
        m = self.metrics
        return ResourceSample(
            at_s=self._clock(),
            process=self._usage(),
            disk=disk_usage(self.data_dir),
            events_received=int(m.value("homeiq_events_received_total")),
            events_stored=int(m.value("homeiq_events_stored_total")),
            errors=int(m.rejected_total() + _sink_errors(m)),
        )

    def _publish(self, taken: ResourceSample) -> None:
        m = self.metrics
        if taken.process is not None:
            m.process_rss.set(taken.process.rss_bytes)
        cpu = self.cpu_percent()
        if cpu is not None:
            m.process_cpu.set(cpu)
        for name in DATA_FILES:
            m.data_file_bytes.labels(name).set(taken.disk.files.get(name, 0))
        m.disk_free.set(taken.disk.free_bytes)
        m.disk_total.set(taken.disk.total_bytes)
        rates = self.events_per_s()
        if rates is not None:
            m.events_in_rate.set(rates[0])
            m.events_out_rate.set(rates[1])

    # -- windows ---------------------------------------------------------------------------

    def _since(self, window_s: float | None, *, full: bool) -> ResourceSample | None:
        """The sample a window starts at: the newest at least ``window_s`` old (None
        until there is one when ``full``; else the oldest kept). None: since the
        previous sample."""
        if self.latest is None:
            return None
        if window_s is None:
            return self.previous
        cutoff = self.latest.at_s - window_s
        found = None
        for kept in self._ring:  # oldest first; at most RING_SAMPLES
            if kept.at_s > cutoff:
                break
            found = kept
        if found is None and not full and self._ring and self._ring[0] is not self.latest:
            found = self._ring[0]
        return found

    def cpu_percent(self, window_s: float | None = None) -> float | None:
        """Average CPU over the window (default: since the previous sample), as a share
        of the machine; None until the window is covered."""
        start, end = self._since(window_s, full=True), self.latest
        if start is None or end is None or start.process is None or end.process is None:
            return None
        elapsed = end.at_s - start.at_s
        if elapsed <= 0:
            return None
        # A writer process restarted in between resets its counter: never below zero.
        used = max(0.0, end.process.cpu_seconds - start.process.cpu_seconds)
        return min(100.0, 100.0 * used / elapsed / self.cores)

    def events_per_s(self) -> tuple[float, float] | None:
        """Events received and stored per second since the previous sample."""
        start, end = self.previous, self.latest
        if start is None or end is None or end.at_s <= start.at_s:
            return None
        elapsed = end.at_s - start.at_s
        return (
            max(0, end.events_received - start.events_received) / elapsed,
            max(0, end.events_stored - start.events_stored) / elapsed,
        )

    def received_since_previous(self) -> int | None:
        """Events received since the previous sample (None before the second)."""
        if self.previous is None or self.latest is None:
            return None
        return max(0, self.latest.events_received - self.previous.events_received)

    def growth_bytes_per_s(self, window_s: float) -> float | None:
        """How fast the database files grew over the window; None until it is covered."""
        start, end = self._since(window_s, full=True), self.latest
        if start is None or end is None or end.at_s <= start.at_s:
            return None
        return (end.disk.data_bytes - start.disk.data_bytes) / (end.at_s - start.at_s)

    def error_rate(self, window_s: float, min_events: int) -> float | None:
        """Errors over events received in the window (or since the first sample); None
        with fewer than ``min_events`` received (a rate of three events says nothing)."""
        start, end = self._since(window_s, full=False), self.latest
        if start is None or end is None:
            return None
        received = end.events_received - start.events_received
        if received < min_events:
            return None
        return max(0, end.errors - start.errors) / received


def _sink_errors(metrics: Metrics) -> float:
    return sum(metrics.value("homeiq_sink_errors_total", {"kind": k}) for k in SINK_ERROR_KINDS)


SINK_ERROR_KINDS = ("transient", "permanent")
