"""Purge benchmark: delete the oldest 30 days of a big SQLite store while the simulator
streams into it.

    python benchmarks/purge.py                    # 10,000,000 events (the documented run)
    python benchmarks/purge.py --events 300000    # a quicker look

The store holds ``--events`` synthetic events of ``--entities`` sensors spread evenly
over the 60 days before now; the raw keep is 30 days, so the purge deletes half of them
(30 days). The rollups are folded before any timing (as a running server keeps them).
Then, each in this process with HomeIQ's own runtime (writer process, as ``homeiq run``):

* ingest alone: the simulator (``homeiq simulate --rate 0``, its own process) streams
  ``--stream`` events as fast as HomeIQ takes them; events/s over the stream.
* ingest during the purge: the same stream with the runtime's purge started at the first
  event; events/s over the purge's duration (or the stream's, if it ends first), and the
  writer queue's largest depth, which must stay bounded.
* a bare ``DELETE`` of the same rows on a copy of the store taken before the purge: one
  statement, one transaction, no chunks, nothing else running.

It prints the two ratios the issue sets (ingest during the purge / ingest alone, target
≥ 0.8; purge time / bare DELETE time, the raw deletes alone and the whole purge with its
folding of the rollups and the rollup tiers) and checks the purge deleted exactly the
rows the bare DELETE did. Shared machines are noisy: compare ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import print_header
from homeiq.maintenance.purge import PurgeReport

TOKEN = "benchmark-token"
DAY_US = 86_400_000_000
SPAN_DAYS = 60
KEEP_DAYS = 30
BATCH = 20_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_store(data_dir: Path, events: int, entities: int, now_us: int) -> None:
    """``events`` numeric sensor events, evenly over the SPAN_DAYS before ``now_us``."""
    from homeiq.sinks.sqlite.store import SQLiteEventStore

    store = SQLiteEventStore.in_dir(data_dir)
    start = now_us - SPAN_DAYS * DAY_US
    step = SPAN_DAYS * DAY_US // max(events // entities, 1)
    blob = b'{"device_class":"power","unit_of_measurement":"W"}'
    batch: list[Any] = []
    for n in range(events):
        entity, k = n % entities, n // entities
        t = start + k * step + entity
        value = float((n * 7919) % 1000)
        # fmt: off
        batch.append((
            f"sensor.bench_{entity}", t, str(value), value, None, t, None, blob, 0,
            None, None, None, "dev", "area", None, 0, 0,
        ))
        # fmt: on
        if len(batch) >= BATCH:
            store.write_wire(batch)
            batch = []
    store.write_wire(batch)
    store.close()


async def fold(data_dir: Path, cutoff: int, entities: int) -> None:
    """The rollups of every event before ``cutoff``, as a running server keeps them."""
    from homeiq.maintenance.rollups import RollupStore
    from homeiq.maintenance.statistics import RollupMaintainer
    from homeiq.sinks.sqlite import SQLiteReader

    reader = SQLiteReader(data_dir)
    rollups = RollupStore.in_dir(data_dir)
    try:
        await RollupMaintainer(reader, rollups).fold_before(
            [f"sensor.bench_{i}" for i in range(entities)], cutoff
        )
    finally:
        await reader.close()
        rollups.close()


def simulator(port: int, count: int, seed: int) -> subprocess.Popen[bytes]:
    """``homeiq simulate`` streaming ``count`` events as fast as they are read."""
    command = [sys.executable, "-m", "homeiq.cli", "simulate", "--port", str(port)]
    command += ["--rate", "0", "--count", str(count), "--seed", str(seed), "--token", TOKEN]
    sim = subprocess.Popen(command, env={**os.environ, "HOMEIQ_LOG_LEVEL": "WARNING"})
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return sim
        except OSError:
            if time.monotonic() > deadline or sim.poll() is not None:
                raise RuntimeError("simulator did not start") from None
            time.sleep(0.1)


async def ingest(data_dir: Path, count: int, seed: int, *, purge: bool) -> dict[str, Any]:
    """Stream ``count`` events into the runtime (and, ``purge``, purge meanwhile)."""
    from homeiq.runtime import Runtime
    from homeiq.settings import Settings

    port = _free_port()
    sim = simulator(port, count, seed)
    settings = Settings(
        data_dir=data_dir,
        retention={"raw_days": KEEP_DAYS, "schedule": "off"},
        log_level="WARNING",
    )
    runtime = Runtime(settings)
    runtime.connect_to(f"http://127.0.0.1:{port}", TOKEN)
    result: dict[str, Any] = {"max_queue": 0}
    try:
        await runtime.start()
        while not runtime.stats().received:  # noqa: ASYNC110 (a counter, no event to wait on)
            await asyncio.sleep(0.01)
        started, stored0 = time.perf_counter(), runtime.stats().stored
        purge_s: list[float] = []

        async def timed_purge() -> PurgeReport:
            report = await runtime.purger.run()
            purge_s.append(time.perf_counter() - started)
            return report

        task = asyncio.create_task(timed_purge()) if purge else None
        ended: float | None = None
        while True:
            stats = runtime.stats()
            result["max_queue"] = max(result["max_queue"], stats.queue_depth)
            if task is not None and task.done() and ended is None:
                ended, stored_at_end = time.perf_counter(), stats.stored
            if stats.stored + stats.rejected >= count:
                break
            await asyncio.sleep(0.02)
        finished = time.perf_counter()
        if task is not None:
            report = await task
            if ended is None:  # the stream ended first: its rate over the stream
                ended, stored_at_end = finished, runtime.stats().stored
            result["purge_s"] = purge_s[0]
            result["deleted"] = report.tiers[0].rows
            result["cutoff"] = report.tiers[0].cutoff
            result["delete_s"] = report.tiers[0].seconds
            result["fold_s"] = report.fold_s
            result["events_per_s"] = (stored_at_end - stored0) / max(ended - started, 1e-9)
        else:
            result["events_per_s"] = (runtime.stats().stored - stored0) / (finished - started)
        result["stored"] = runtime.stats().stored
    finally:
        await runtime.stop()
        sim.terminate()
        sim.wait(timeout=30)
    return result


def bare_delete(db: Path, cutoff: int) -> tuple[int, float]:
    """The same rows deleted with one plain statement; (rows, seconds)."""
    conn = sqlite3.connect(db, isolation_level=None)
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    rows = conn.execute(
        "DELETE FROM events WHERE entity IN (SELECT id FROM entities WHERE entity_id LIKE"
        " 'sensor.bench_%') AND time < ?",
        (cutoff,),
    ).rowcount
    conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return rows, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="events in the store")
    parser.add_argument("--entities", type=int, default=500, help="sensors they belong to")
    parser.add_argument("--stream", type=int, default=0, help="events streamed (default events/20)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="build the store here and keep it")
    args = parser.parse_args()
    stream = args.stream or max(args.events // 20, 20_000)
    tmp = Path(tempfile.mkdtemp(prefix="homeiq-bench-purge-"))
    data = args.keep or tmp / "data"
    try:
        now = time.time_ns() // 1000
        t0 = time.perf_counter()
        build_store(data, args.events, args.entities, now)
        # Rolled up as a running server keeps them (up to a day past the purge's cutoff).
        asyncio.run(fold(data, now - (KEEP_DAYS - 1) * DAY_US, args.entities))
        print(f"store built and rolled up in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        alone = asyncio.run(ingest(data, stream, args.seed, purge=False))
        copy = tmp / "copy.db"
        for suffix in ("", "-wal"):  # a consistent copy: the runtime has stopped
            source = data / f"events.db{suffix}"
            if source.exists():
                shutil.copyfile(source, Path(f"{copy}{suffix}"))
        during = asyncio.run(ingest(data, stream, args.seed + 1, purge=True))
        # The purge's cutoff (reference - keep, the reference a moment after `now`).
        bare_rows, bare_s = bare_delete(copy, during["cutoff"])
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"purge benchmark: {args.events:,} events of {args.entities} sensors over"
        f" {SPAN_DAYS} days, keep {KEEP_DAYS} days, {stream:,} streamed, {os.cpu_count()}"
        f" CPUs, Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}"
    )
    header = f"{'ingest':<22}{'events/s':>10}{'ratio':>7}{'max queue':>11}"
    print_header(header)
    print(f"{'alone':<22}{alone['events_per_s']:>10,.0f}{1:>7.2f}{alone['max_queue']:>11,}")
    print(
        f"{'during the purge':<22}{during['events_per_s']:>10,.0f}"
        f"{during['events_per_s'] / alone['events_per_s']:>7.2f}{during['max_queue']:>11,}"
    )
    print()
    header = f"{'purge':<34}{'rows':>12}{'seconds':>9}{'ratio':>7}"
    print_header(header)
    purge_s = during["purge_s"]
    rows = [
        ("bare DELETE (copy, nothing else)", bare_rows, bare_s),
        ("purge: raw deletes (chunked)", during["deleted"], during["delete_s"]),
        ("purge: folding the rollups first", None, during["fold_s"]),
        ("purge: all tiers, in total", None, purge_s),
    ]
    for name, count, seconds in rows:
        shown = "" if count is None else f"{count:,}"
        print(f"{name:<34}{shown:>12}{seconds:>9.1f}{seconds / bare_s:>7.2f}")
    if during["deleted"] != bare_rows:
        sys.exit(f"the purge deleted {during['deleted']:,} rows, the bare DELETE {bare_rows:,}")


if __name__ == "__main__":
    main()
