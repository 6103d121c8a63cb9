"""End-to-end ingest benchmark: simulator at full speed -> HomeIQ -> SQLite or InfluxDB.

    python benchmarks/ingest.py                 # 1,000,000 events (the documented run)
    python benchmarks/ingest.py --events 200000 # a quicker look
    python benchmarks/ingest.py --sink influxdb # into a real InfluxDB (its own influxd,
                                                # or --influxdb-url of a running one)

Two runs against the same simulated stream (same seed, same count), each in its own
process so peak RSS is its own, with the simulator in a third process:

* baseline: a bare aiohttp client parses each frame with orjson and inserts the same
  record fields (DESIGN §5) copied straight from the JSON with ``executemany`` (batches
  of 1,000, an (entity_id, time) unique index): no validation, enrichment, attribute
  dedup, compaction or metrics. The floor the pipeline is measured against.
* pipeline: HomeIQ's own client, queue, normalizer, writer and SQLite sink.

With ``--sink influxdb`` the runs write into InfluxDB, each into a fresh database:

* baseline: a bare aiohttp client parses each frame with orjson and POSTs the same points
  (HomeIQ's measurement, fields and the tags it can take from the event itself: no
  registry enrichment, validation or caches) as line protocol to ``/write?precision=u``,
  5,000 points a request, uncompressed, ``--baseline-in-flight`` requests at a time.
* pipeline: HomeIQ's own runtime with ``store="influxdb"`` (its defaults otherwise).

CPU per event then includes influxd's (read from /proc before and after each run, after
waiting for its background work to settle), also shown alone as "server µs/ev"; bytes
per event are influxd's data + wal directories of the run's database; exactly-once is
checked with ``SELECT count("source")``.

It prints events/s, the pipeline's ratio to the baseline measured in the same run (the
machines are shared and noisy: compare ratios, not absolute numbers), peak RSS and bytes
on disk per event, and checks that every event was stored exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from _common import (
    MEASUREMENT,
    influx_count,
    influx_run,
    print_header,
    process_cpu_s,
    start_influxd,
)

TOKEN = "benchmark-token"  # a local throw-away token for the simulator

# InfluxDB: HomeIQ's measurement, and the bare client's request size (HomeIQ's default
# batch_max_events, so both send requests of the same size).
BASELINE_BATCH = 5000
# Two requests in flight: what a competent bare client does (it keeps reading while
# InfluxDB writes), and the faster of the two here (one at a time: 15-16k events/s,
# two: 19-22k, 200,000 events), so the pipeline's ratio is not flattered.
BASELINE_IN_FLIGHT = 2
# After a run, influxd's CPU is read once it has been this quiet (its snapshots and
# compactions of the run's data are the run's cost), waiting at most QUIET_MAX_S.
QUIET_INTERVAL_S = 0.5
QUIET_CPU_S = 0.02
QUIET_MAX_S = 120.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def _bare_frames(ws: aiohttp.ClientWebSocketResponse) -> AsyncIterator[list[Any]]:
    """What a bare client does: authenticate, ask for coalescing, subscribe, then parse
    each frame with orjson; yields the events of each frame."""
    await ws.receive()
    await ws.send_str(json.dumps({"type": "auth", "access_token": TOKEN}))
    await ws.receive()
    await ws.send_str(
        json.dumps({"id": 1, "type": "supported_features", "features": {"coalesce_messages": 1}})
    )
    await ws.send_str(
        json.dumps({"id": 2, "type": "subscribe_events", "event_type": "state_changed"})
    )
    async for msg in ws:
        parsed = orjson.loads(msg.data)
        frame = parsed if isinstance(parsed, list) else [parsed]
        yield [m for m in frame if m.get("type") == "event"]


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
        async for frame in _bare_frames(ws):
            for message in frame:
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


async def _pipeline(url: str, events: int, data_dir: Path, **store: Any) -> dict[str, Any]:
    """HomeIQ's own runtime on the embedded default, or the store ``store`` names."""
    from homeiq.runtime import Runtime
    from homeiq.settings import Settings

    runtime = Runtime(Settings(data_dir=data_dir, **store))
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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
# Line-protocol escaping as HomeIQ's encoder does it (homeiq.sinks.influxdb.lineprotocol):
# tag values with its four percent codes, then ``,`` ``=`` and space; string fields with
# backslash and double quote.
_TAG = str.maketrans(
    {"%": "%25", "\\": "%5C", "\n": "%0A", "\r": "%0D", ",": "\\,", "=": "\\=", " ": "\\ "}
)


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _us(stamp: str) -> int:
    return (datetime.fromisoformat(stamp) - _EPOCH) // _ONE_US


def _line(message: dict[str, Any]) -> str:
    """One state_changed message as a point of HomeIQ's schema, the bare way: the fields
    straight from the JSON, the tags the event itself carries (no registry enrichment:
    no area_id/device_id tags, no floor_id field), no validation and no caches."""
    esc = _esc
    event = message["event"]
    data = event["data"]
    entity_id = data["entity_id"]
    new, old = data["new_state"], data["old_state"]
    attributes = new["attributes"] if new else {}
    fields = []
    if new:
        state = new["state"]
        time_us = _us(new["last_updated"])
        changed = new["last_changed"]
        last_changed = time_us if changed == new["last_updated"] else _us(changed)
        context = new["context"]
        fields.append(f'state="{esc(state)}"')
        try:
            value = float(state)
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            fields.append(f"value={value!r}")
    else:
        state = None
        time_us = last_changed = _us(event["time_fired"])
        context = event["context"]
    if old:
        fields.append(f'previous_state="{esc(old["state"])}"')
        if old["state"] != state:
            duration = (last_changed - _us(old["last_changed"])) / 1e6
            fields.append(f"duration_in_state_s={duration!r}")
    fields.append(f"last_changed={last_changed}i")
    fields.append(f'attributes="{esc(orjson.dumps(attributes).decode())}"')
    for key in ("unit_of_measurement", "friendly_name"):
        if type(attributes.get(key)) is str:
            fields.append(f'{key}="{esc(attributes[key])}"')
    for key, name in (("id", "context_id"), ("parent_id", "context_parent_id")):
        if context.get(key) is not None:
            fields.append(f'{name}="{esc(context[key])}"')
    if context.get("user_id") is not None:
        fields.append(f'context_user_id="{esc(context["user_id"])}"')
    fields.append(f"origin={1 if event['origin'] == 'REMOTE' else 0}i,source=0i")
    device_class = attributes.get("device_class")
    tags = f",device_class={device_class.translate(_TAG)}" if type(device_class) is str else ""
    domain = entity_id.partition(".")[0]
    return (
        f"{MEASUREMENT}{tags},domain={domain.translate(_TAG)},entity_id={entity_id.translate(_TAG)}"
        f" {','.join(fields)} {time_us}\n"
    )


async def _influx_baseline(
    url: str, events: int, influx_url: str, database: str, in_flight: int
) -> dict[str, Any]:
    lines: list[str] = []
    pending: deque[asyncio.Task[None]] = deque()
    received = 0
    started: float | None = None
    async with aiohttp.ClientSession() as session:
        write_url = f"{influx_url}/write"
        params = {"db": database, "precision": "u"}

        async def post(body: bytes) -> None:
            async with session.post(write_url, params=params, data=body) as response:
                if response.status != 204:
                    text = await response.text()
                    raise RuntimeError(f"influxdb refused a write ({response.status}): {text}")

        async def send(batch: list[str]) -> None:
            body = "".join(batch).encode()
            if in_flight == 1:
                await post(body)
                return
            if len(pending) >= in_flight:
                await pending.popleft()
            pending.append(asyncio.create_task(post(body)))

        async with session.post(
            f"{influx_url}/query", data={"q": f'CREATE DATABASE "{database}"'}
        ) as response:
            response.raise_for_status()
        async with session.ws_connect(url + "/api/websocket", max_msg_size=0) as ws:
            async for frame in _bare_frames(ws):
                for message in frame:
                    if started is None:
                        started = time.perf_counter()
                    lines.append(_line(message))
                    received += 1
                while len(lines) >= BASELINE_BATCH:
                    await send(lines[:BASELINE_BATCH])
                    del lines[:BASELINE_BATCH]
                if received >= events:
                    break
        if lines:
            await send(lines)
        while pending:
            await pending.popleft()
    elapsed = time.perf_counter() - (started or time.perf_counter())
    return {"events": received, "stored": received, "seconds": elapsed, "rejected": 0}


def _phase(args: argparse.Namespace) -> None:
    out = Path(args.out)
    if args.sink == "influxdb":
        if args.phase == "baseline":
            coro = _influx_baseline(
                args.url, args.events, args.influxdb_url, args.database, args.baseline_in_flight
            )
        else:
            coro = _pipeline(
                args.url,
                args.events,
                out,
                store="influxdb",
                influxdb_url=args.influxdb_url,
                influxdb_database=args.database,
            )
        result = asyncio.run(coro)
        db_bytes = None  # influxd's directories, measured by the parent
    elif args.phase == "baseline":
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
    result["bytes_per_event"] = None if db_bytes is None else db_bytes / max(result["stored"], 1)
    print(json.dumps(result))


@dataclass(frozen=True)
class _Influx:
    """The InfluxDB the runs write into."""

    url: str
    pid: int | None  # influxd's process, whose CPU is counted (None: unknown)
    root: Path | None  # its data + wal dirs' parent (only for an influxd started here)
    in_flight: int  # the baseline's requests in flight


def _quiet_cpu_s(pid: int) -> float:
    """The process's CPU seconds once it stopped working (or after QUIET_MAX_S)."""
    deadline = time.monotonic() + QUIET_MAX_S
    before = process_cpu_s(pid)
    while True:
        time.sleep(QUIET_INTERVAL_S)
        now = process_cpu_s(pid)
        if now - before < QUIET_CPU_S or time.monotonic() > deadline:
            return now
        before = now


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _find_influxd(url: str) -> int | None:
    """The one influxd process on this machine when ``url`` is on loopback, else None."""
    if urllib.parse.urlsplit(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        return None
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "influxd":
                pids.append(int(comm.parent.name))
        except OSError:
            continue
    return pids[0] if len(pids) == 1 else None


def _influx_account(
    influx: _Influx, database: str, result: dict[str, Any], server_cpu_before: float | None
) -> None:
    """Add influxd's CPU, the stored count and the size on disk to a run's result."""
    events = max(result["events"], 1)
    if influx.pid is not None and server_cpu_before is not None:
        server_us = (_quiet_cpu_s(influx.pid) - server_cpu_before) / events * 1e6
        result["server_cpu_us_per_event"] = server_us
        result["cpu_us_per_event"] += server_us
    else:
        result["server_cpu_us_per_event"] = None
    result["reported_stored"] = result["stored"]
    result["stored"] = influx_count(influx.url, database)
    if influx.root is not None:
        size = _dir_bytes(influx.root / "data" / database) + _dir_bytes(
            influx.root / "wal" / database
        )
        result["bytes_per_event"] = size / max(result["stored"], 1)
    influx_run(influx.url, f'DROP DATABASE "{database}"')


def _run(
    phase: str, events: int, seed: int, workdir: Path, influx: _Influx | None = None
) -> dict[str, Any]:
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
        command = [
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
        ]
        server_cpu: float | None = None
        if influx is not None:
            database = f"homeiq_bench_{phase}_{uuid.uuid4().hex[:8]}"
            command += ["--sink", "influxdb", "--influxdb-url", influx.url]
            command += ["--database", database, "--baseline-in-flight", str(influx.in_flight)]
            if influx.pid is not None:
                server_cpu = _quiet_cpu_s(influx.pid)
        child = subprocess.run(
            command,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode != 0:
            raise RuntimeError(f"{phase} failed:\n{child.stderr}")
        result = dict(json.loads(child.stdout.strip().splitlines()[-1]))
        if influx is not None:
            _influx_account(influx, database, result, server_cpu)
        return result
    finally:
        sim.terminate()
        sim.wait(timeout=30)


def _influx_main(args: argparse.Namespace) -> None:
    server = None
    if args.influxdb_url:
        url = args.influxdb_url.rstrip("/")
        influx = _Influx(
            url, args.influxdb_pid or _find_influxd(url), None, args.baseline_in_flight
        )
    else:
        server = start_influxd()
        assert server.proc is not None
        influx = _Influx(server.url, server.proc.pid, server.root, args.baseline_in_flight)
    try:
        with urllib.request.urlopen(f"{influx.url}/ping", timeout=10) as response:
            version = response.headers.get("X-Influxdb-Version", "?")
        with tempfile.TemporaryDirectory(prefix="homeiq-bench-") as tmp:
            results = {
                p: _run(p, args.events, args.seed, Path(tmp), influx)
                for p in ("baseline", "pipeline")
            }
    finally:
        if server is not None:
            server.close()
    base_rate = results["baseline"]["events"] / results["baseline"]["seconds"]
    print(
        f"ingest benchmark (influxdb): {args.events:,} events, seed {args.seed}, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, InfluxDB {version}"
    )
    print(
        f"baseline: bare aiohttp client, {BASELINE_BATCH:,} points a request,"
        f" {influx.in_flight} in flight; server: "
        + ("started here" if server is not None else influx.url)
    )
    header = (
        f"{'run':<10}{'stored':>10}{'rejected':>10}{'seconds':>9}{'events/s':>10}"
        f"{'ratio':>7}{'CPU µs/ev':>11}{'server µs/ev':>14}{'peak RSS MB':>13}"
        f"{'bytes/event':>13}"
    )
    print_header(header)
    for name, r in results.items():
        rate = r["events"] / r["seconds"]
        server_us = r["server_cpu_us_per_event"]
        size = r["bytes_per_event"]
        print(
            f"{name:<10}{r['stored']:>10,}{r['rejected']:>10}{r['seconds']:>9.1f}{rate:>10,.0f}"
            f"{rate / base_rate:>7.2f}{r['cpu_us_per_event']:>11.1f}"
            f"{'-' if server_us is None else f'{server_us:.1f}':>14}{r['peak_rss_mb']:>13.0f}"
            f"{'-' if size is None else f'{size:.1f}':>13}"
        )
    if influx.pid is None:
        print("influxd's CPU is not counted: its process is unknown (pass --influxdb-pid)")
    failed = False
    for name, r in results.items():
        if r["stored"] != args.events or r["rejected"]:
            print(
                f"ERROR: the {name} run left {r['stored']:,} points in InfluxDB for"
                f" {args.events:,} events ({r['rejected']} rejected)"
            )
            failed = True
    if failed:
        sys.exit(1)


def main() -> None:
    """Run both phases and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sink", choices=("sqlite", "influxdb"), default="sqlite")
    parser.add_argument(
        "--influxdb-url",
        help="a running InfluxDB 1.x to write into (default: start an influxd in a temp dir)",
    )
    parser.add_argument(
        "--influxdb-pid",
        type=int,
        help="the process of --influxdb-url, to count its CPU (default: the one local influxd)",
    )
    parser.add_argument(
        "--baseline-in-flight",
        type=int,
        choices=(1, 2),
        default=BASELINE_IN_FLIGHT,
        help=f"write requests the InfluxDB baseline keeps in flight (default {BASELINE_IN_FLIGHT})",
    )
    parser.add_argument("--phase", choices=("baseline", "pipeline"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        _phase(args)
        return
    if args.sink == "influxdb":
        _influx_main(args)
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
    print_header(header)
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
