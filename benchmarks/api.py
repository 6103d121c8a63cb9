"""Query API benchmark: a realistic read mix against the real app over 10,000,000 events.

    python benchmarks/api.py                 # SQLite 10M + InfluxDB 1M (the documented run)
    python benchmarks/api.py --store sqlite --events 1000000 --seconds 5  # a quicker look
    python benchmarks/api.py --store influxdb --influxdb-url http://127.0.0.1:8086

Separate processes, as in benchmarks/ingest.py:

* this one loads the dataset (once: it is cached, see ``--data-dir``), starts the
  server, runs the baseline and then the load process, and prints the tables;
* the server (``--phase serve``): HomeIQ's own :class:`~homeiq.runtime.Runtime` over the
  dataset's data directory, without a Home Assistant source, and the API served from it
  as ``homeiq run`` serves it (:func:`homeiq.api.server.serve`: uvicorn in the runtime's
  event loop, h11, no access log), with a read key made by ``create_key``. Only the rate
  limits are raised (``HOMEIQ_API_RATE_LIMIT_*``), so that the benchmark measures the
  queries, not the limiter's refusals;
* the load process (``--phase drive``): an aiohttp client, closed loop (each of N workers
  sends its next request when the previous answer is read), at concurrency 1, 8 and 32
  for ``--seconds`` each, after a short warm-up that is not counted. Every worker
  rotates through the mix (history of one entity over 24 hours, statistics of one entity
  over 30 days by hour, a page of the 100 newest events, following the cursor for up to
  five pages, the entity registry list, the trace of a context) with random entities,
  times and contexts from seeded generators. Every answer must be 200 with data in it
  (the whole history, 700+ buckets, 100 events, every entity, a trace that found what
  the context caused): anything else is counted, and fails the run.

The dataset: a deterministic synthetic home (seeded) of ``--entities`` entities: sensors
(temperature, humidity, power, energy, ...), binary sensors, lights, switches, climates
and automations, on devices in areas (25 for 500 entities) on three floors; numeric
sensors with daily cycles; ULID context ids whose time part is the event's time; motion
sensors that run automations that switch lights (Home Assistant's context chain: the
run's context has the motion's as parent, and the light's change carries the run's
context). ``--days`` of it, ending at the load time, written in time order (as live
ingest writes it) straight through ``SQLiteEventStore.write_wire`` (what ``write`` and
the writer process call) in batches of 50,000 from this process, while a child process
makes the records; or through ``InfluxDBSink.write`` into its own ``influxd`` (or
``--influxdb-url``). The registry goes in through ``MetadataStore.replace_registry``,
then the rollups are built with ``RollupMaintainer.rebuild`` over the whole span, 10
entities a call, in two processes (each half of the entities). Load and rollup times are
reported.

Baseline, in the same run and on the same store (the machines are shared: compare the
ratio): the same queries done the bare way, in one process, at concurrency 1, with the
same entities and times as the API's concurrency-1 run:

* ``history: sqlite3``: the entity's id, then its state at the start and its rows in the
  range, primary-key seeks joining the attribute set (still compressed): the floor;
* ``history: sqlite3+json``: the same, plus decompressing the attributes and writing
  the rows as one JSON body with orjson: what any Python server must do, minus HTTP;
* with InfluxDB, ``history: influxql``: the same two reads as InfluxQL statements in one
  bare aiohttp request, the answer parsed with orjson;
* ``statistics: sqlite3``: the 720 hourly rows of rollups.db, fetched.

Latencies are the client's: from sending the request to having read the whole body.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from api_baseline import baseline_phase
from api_dataset import Loaded, generate_phase, prepare_influx, prepare_sqlite, rollup_phase
from api_drive import Plan, drive_levels, iso_z
from api_home import API_SCRIPT, build_home
from api_report import report, versions_line
from api_serve import Server, serve_phase

# -- the run -----------------------------------------------------------------------------


def _phase_json(args: list[str]) -> dict[str, Any]:
    child = subprocess.run(
        [sys.executable, str(API_SCRIPT), *args], capture_output=True, text=True, check=False
    )
    if child.returncode != 0:
        raise RuntimeError(f"{args[1]} failed:\n{child.stderr}")
    found: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return found


def _statistics_check(server: Server, plan: Plan, requests: int = 50) -> dict[str, int]:
    """Reader calls made while answering ``requests`` statistics requests alone (the
    statistics must come from the rollups: none is the only right answer)."""
    before = server.calls()
    rng = random.Random("statistics-check")
    for _ in range(requests):
        entity, start, end = plan.month(rng)
        query = urllib.parse.urlencode(
            {"entity_id": entity, "period": "1h", "start": iso_z(start), "end": iso_z(end)}
        )
        request = urllib.request.Request(
            f"{server.url}/api/v1/statistics?{query}",
            headers={"Authorization": f"Bearer {server.key}"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
    after = server.calls()
    return {name: after.get(name, 0) - before.get(name, 0) for name in after}


def run_store(loaded: Loaded, args: argparse.Namespace) -> dict[str, Any]:
    """Baseline, then the server and the load process against it."""
    manifest_path = loaded.data_dir / "plan.json"
    manifest_path.write_text(json.dumps(loaded.manifest))
    common = ["--path", str(loaded.data_dir), "--manifest", str(manifest_path)]
    common += ["--seed", str(args.seed), "--seconds", str(args.seconds)]
    if loaded.store == "influxdb":
        assert loaded.influx_url is not None and loaded.influx_database is not None
        common += ["--influx-url", loaded.influx_url, "--database", loaded.influx_database]
    print(f"{loaded.store}: baseline", file=sys.stderr)
    baseline = _phase_json(["--phase", "baseline", *common])
    server = Server(loaded)
    try:
        check = _statistics_check(server, Plan.of(loaded.manifest))
        print(f"{loaded.store}: load at concurrency {args.levels}", file=sys.stderr)
        command = ["--phase", "drive", *common, "--url", server.url, "--key", server.key]
        command += ["--levels", args.levels, "--server-pid", str(server.proc.pid)]
        if loaded.influxd is not None:  # influxd's CPU too, when it is ours
            command += ["--store-pid", str(loaded.influxd.proc.pid)]
        drive = _phase_json(command)
    finally:
        server.close()
    errors = server.log.read_text().count("unhandled error in")
    return {
        "baseline": baseline,
        "drive": drive,
        "statistics_calls": check,
        "versions": versions_line(loaded),
        "server_errors": errors,
        "server_log": str(server.log),
    }


def main() -> None:
    """Load (or reuse) the datasets, run each store, print the tables."""
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").split("\n")[5:]),
    )
    parser.add_argument("--store", choices=("sqlite", "influxdb", "both"), default="both")
    parser.add_argument("--events", type=int, default=10_000_000, help="SQLite dataset")
    parser.add_argument("--influx-events", type=int, default=1_000_000, help="InfluxDB dataset")
    parser.add_argument("--entities", type=int, default=500)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--data-dir",
        help="where datasets are cached, one directory per parameters (default ~/.cache/homeiq)",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="per concurrency level")
    parser.add_argument("--levels", default="1,8,32", help="concurrency levels, comma-separated")
    parser.add_argument(
        "--influxdb-url",
        help="a running InfluxDB 1.x to load into (default: an influxd of its own, its data"
        " kept with the dataset)",
    )
    hidden = argparse.SUPPRESS
    parser.add_argument(
        "--phase",
        choices=("generate", "rollups", "serve", "drive", "baseline"),
        help=hidden,
    )
    for name in ("--path", "--part", "--manifest", "--url", "--key", "--influx-url"):
        parser.add_argument(name, help=hidden)
    parser.add_argument("--database", help=hidden)
    parser.add_argument("--end", type=int, help=hidden)
    parser.add_argument("--server-pid", type=int, help=hidden)
    parser.add_argument("--store-pid", type=int, help=hidden)
    args = parser.parse_args()
    if args.days < 35:
        parser.error("--days must be at least 35 (the statistics query spans 30 days)")
    phases: dict[str, Callable[[argparse.Namespace], None]] = {
        "generate": generate_phase,
        "rollups": rollup_phase,
        "serve": serve_phase,
        "baseline": baseline_phase,
        "drive": lambda a: print(json.dumps(asyncio.run(drive_levels(a)))),
    }
    if args.phase:
        phases[args.phase](args)
        return
    home = build_home(args.entities, args.seed)
    stores = ("sqlite", "influxdb") if args.store == "both" else (args.store,)
    ok = True
    for store in stores:
        started = time.perf_counter()
        loaded = prepare_sqlite(args, home) if store == "sqlite" else prepare_influx(args, home)
        reused = time.perf_counter() - started < loaded.manifest["load_s"]
        try:
            result = run_store(loaded, args)
        finally:
            if loaded.influxd is not None:
                loaded.influxd.stop()
        ok = report(loaded, result, args, reused) and ok
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
