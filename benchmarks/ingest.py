"""End-to-end ingest benchmark: simulator at full speed -> HomeIQ pipeline -> SQLite.

    python benchmarks/ingest.py                 # 1,000,000 events (the documented run)
    python benchmarks/ingest.py --events 200000 # a quicker look

Two runs against the same simulated stream (same seed, same count), each in its own
process so peak RSS is its own, with the simulator in a third process:

* baseline: a bare aiohttp client parses each frame with orjson and inserts the same
  record fields (DESIGN §5) copied straight from the JSON with ``executemany`` (batches
  of 1,000, an (entity_id, time) unique index): no validation, enrichment, attribute
  dedup, compaction or metrics. The floor the pipeline is measured against.
* pipeline: HomeIQ's own client, queue, normalizer, writer and SQLite sink.

It prints events/s, the pipeline's ratio to the baseline measured in the same run (the
machines are shared and noisy: compare ratios, not absolute numbers), peak RSS and bytes
on disk per event, and checks that every event was stored exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

TOKEN = "benchmark-token"  # a local throw-away token for the simulator


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def _baseline(url: str, events: int, db_path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    # The same fields HomeIQ keeps (DESIGN §5), copied straight out of the JSON: what a
    # naive recorder would do, with no validation, enrichment, dedup or compaction.
    conn.execute(
        "CREATE TABLE events (entity_id TEXT, time TEXT, state TEXT, previous_state TEXT,"
        " last_changed TEXT, attributes BLOB, context_id TEXT, context_parent_id TEXT,"
        " context_user_id TEXT, origin TEXT)"
    )
    conn.execute("CREATE UNIQUE INDEX events_key ON events (entity_id, time)")
    insert = "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    rows: list[tuple[Any, ...]] = []
    received = 0
    started: float | None = None
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url + "/api/websocket", max_msg_size=0) as ws,
    ):
        await ws.receive()
        await ws.send_str(json.dumps({"type": "auth", "access_token": TOKEN}))
        await ws.receive()
        await ws.send_str(
            json.dumps(
                {"id": 1, "type": "supported_features", "features": {"coalesce_messages": 1}}
            )
        )
        await ws.send_str(
            json.dumps({"id": 2, "type": "subscribe_events", "event_type": "state_changed"})
        )
        async for msg in ws:
            parsed = orjson.loads(msg.data)
            for message in parsed if isinstance(parsed, list) else (parsed,):
                if message.get("type") != "event":
                    continue
                if started is None:
                    started = time.perf_counter()
                event = message["event"]
                data = event["data"]
                new, old = data["new_state"], data["old_state"]
                context = (new or event)["context"]
                rows.append(
                    (
                        data["entity_id"],
                        new["last_updated"] if new else event["time_fired"],
                        new["state"] if new else None,
                        old["state"] if old else None,
                        new["last_changed"] if new else None,
                        orjson.dumps(new["attributes"]) if new else None,
                        context["id"],
                        context["parent_id"],
                        context["user_id"],
                        event["origin"],
                    )
                )
                received += 1
            if len(rows) >= 1000 or received >= events:
                conn.execute("BEGIN")
                conn.executemany(insert, rows)
                conn.execute("COMMIT")
                rows = []
            if received >= events:
                break
    elapsed = time.perf_counter() - (started or time.perf_counter())
    stored = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    conn.close()
    return {"events": received, "stored": stored, "seconds": elapsed, "rejected": 0}


async def _pipeline(url: str, events: int, data_dir: Path) -> dict[str, Any]:
    from homeiq.runtime import Runtime
    from homeiq.settings import Settings

    runtime = Runtime(Settings(data_dir=data_dir))
    runtime.connect_to(url, TOKEN)
    await runtime.start()
    started: float | None = None
    try:
        while True:
            stats = runtime.stats()
            if started is None and stats.received:
                started = time.perf_counter()
            if stats.stored + stats.rejected >= events:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - (started or time.perf_counter())
    finally:
        await runtime.stop()
    stats = runtime.stats()
    return {
        "events": stats.received,
        "stored": stats.stored,
        "seconds": elapsed,
        "rejected": stats.rejected,
    }


def _phase(args: argparse.Namespace) -> None:
    out = Path(args.out)
    if args.phase == "baseline":
        result = asyncio.run(_baseline(args.url, args.events, out / "baseline.db"))
        db_bytes = (out / "baseline.db").stat().st_size
    else:
        result = asyncio.run(_pipeline(args.url, args.events, out))
        db_bytes = (out / "events.db").stat().st_size
    # This process and its children that ended (the SQLite writer process, if any).
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime
    result["cpu_us_per_event"] = cpu / max(result["events"], 1) * 1e6
    result["child_cpu_us"] = (
        (children.ru_utime + children.ru_stime) / max(result["events"], 1) * 1e6
    )
    result["peak_rss_mb"] = _peak_rss_mb()
    result["bytes_per_event"] = db_bytes / max(result["stored"], 1)
    print(json.dumps(result))


def _run(phase: str, events: int, seed: int, workdir: Path) -> dict[str, Any]:
    port = _free_port()
    env = {**os.environ, "HOMEIQ_LOG_LEVEL": "WARNING"}
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "homeiq.cli",
            "simulate",
            "--port",
            str(port),
            "--rate",
            "0",
            "--count",
            str(events),
            "--seed",
            str(seed),
            "--token",
            TOKEN,
        ],
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or sim.poll() is not None:
                    raise RuntimeError("simulator did not start") from None
                time.sleep(0.1)
        out = workdir / phase
        out.mkdir()
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--phase",
                phase,
                "--url",
                url,
                "--events",
                str(events),
                "--out",
                str(out),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode != 0:
            raise RuntimeError(f"{phase} failed:\n{child.stderr}")
        return dict(json.loads(child.stdout.strip().splitlines()[-1]))
    finally:
        sim.terminate()
        sim.wait(timeout=30)


def main() -> None:
    """Run both phases and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--phase", choices=("baseline", "pipeline"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        _phase(args)
        return
    with tempfile.TemporaryDirectory(prefix="homeiq-bench-") as tmp:
        results = {p: _run(p, args.events, args.seed, Path(tmp)) for p in ("baseline", "pipeline")}
    base_rate = results["baseline"]["events"] / results["baseline"]["seconds"]
    print(
        f"ingest benchmark: {args.events:,} events, seed {args.seed}, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    header = (
        f"{'run':<10}{'stored':>10}{'rejected':>10}{'seconds':>9}{'events/s':>10}"
        f"{'ratio':>7}{'CPU µs/ev':>11}{'peak RSS MB':>13}{'bytes/event':>13}"
    )
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        rate = r["events"] / r["seconds"]
        print(
            f"{name:<10}{r['stored']:>10,}{r['rejected']:>10}{r['seconds']:>9.1f}{rate:>10,.0f}"
            f"{rate / base_rate:>7.2f}{r['cpu_us_per_event']:>11.1f}{r['peak_rss_mb']:>13.0f}"
            f"{r['bytes_per_event']:>13.1f}"
        )
    pipeline = results["pipeline"]
    if pipeline["stored"] != args.events or pipeline["rejected"]:
        print(f"ERROR: the pipeline stored {pipeline['stored']} of {args.events} events")
        sys.exit(1)


if __name__ == "__main__":
    main()
