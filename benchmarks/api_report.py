"""The tables ``python benchmarks/api.py`` prints for each store."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import urllib.parse
import urllib.request
from typing import Any

from _common import print_header
from api_dataset import Loaded
from api_home import MIX, ROLLUP_PROCESSES, TARGET_P95_MS, UNLIMITED


def versions_line(loaded: Loaded) -> str:
    text = (
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}"
    )
    if loaded.influx_url:
        with urllib.request.urlopen(f"{loaded.influx_url}/ping", timeout=10) as response:
            text += f", InfluxDB {response.headers.get('X-Influxdb-Version', '?')}"
    return text


def report(loaded: Loaded, result: dict[str, Any], args: argparse.Namespace, reused: bool) -> bool:
    """Print one store's tables; True when every request succeeded."""
    m = loaded.manifest
    print()
    print(
        f"api benchmark ({loaded.store}): {m['stored']:,} events, {m['entities']} entities,"
        f" {m['days']} days, seed {m['seed']}; {result['versions']}"
    )
    sizes = f"rollups.db {m['rollups_db_mb']:,.0f} MB"
    if loaded.store == "sqlite":
        sizes = f"events.db {m['events_db_mb']:,.0f} MB, " + sizes
    elif m.get("influx_mb") is not None:
        sizes = f"influxd data {m['influx_mb']:,.0f} MB, " + sizes
    print(
        f"dataset: loaded in {m['load_s']:.0f} s ({m['stored'] / m['load_s']:,.0f} events/s),"
        f" rollups in {m['rollup_s']:.0f} s ({ROLLUP_PROCESSES} processes,"
        f" {m['rollup_cpu_s']:.0f} CPU s; 5m: {m['rollup_rows']['5m']:,} rows,"
        f" 1h: {m['rollup_rows']['1h']:,}); {sizes}"
        + (f"; loaded {m['loaded_at'][:19]}, reused" if reused else "")
    )
    print(
        "server: HomeIQ's Runtime + API as `homeiq run` serves it (uvicorn, h11), no HA source;"
        f" rate limits raised to {UNLIMITED} (HOMEIQ_API_RATE_LIMIT_READ/_IP)"
    )
    calls = {k: v for k, v in result["statistics_calls"].items() if v}
    print(
        "statistics read raw events: "
        + ("no (0 event-store queries in 50 statistics requests)" if not calls else f"YES {calls}")
    )
    drive = result["drive"]
    targets = loaded.store == "sqlite"
    ok = True
    for level in args.levels.split(","):
        r = drive[level]
        failed = sum(r["failures"].values())
        ok = ok and not failed
        print()
        print(
            f"concurrency {level}: {r['seconds']:.1f} s, {r['all']['n']:,} requests,"
            f" {r['all']['rps']:,.0f} req/s, {failed} failed;"
            f" CPU: server {r['server_cpu'] * 100:.0f} %,"
            + ("" if r["store_cpu"] is None else f" influxd {r['store_cpu'] * 100:.0f} %,")
            + f" load process {r['client_cpu'] * 100:.0f} %"
        )
        target = TARGET_P95_MS.get(int(level)) if targets else None
        header = (
            f"{'query':<12}{'requests':>9}{'failed':>7}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}"
            f"{'p99 ms':>9}{'body KB':>9}"
        )
        if target is not None:
            header += f"{'target':>9}{'met':>5}"
        print_header(header)
        for kind in [*MIX, "all"]:
            q = r["all"] if kind == "all" else r["queries"][kind]
            failed_here = failed if kind == "all" else q["failed"]
            size = "" if kind == "all" else f"{q['kb']:.0f}"
            line = (
                f"{kind:<12}{q['n']:>9,}{failed_here:>7}{q['rps']:>8,.1f}{q['p50']:>9.1f}"
                f"{q['p95']:>9.1f}{q['p99']:>9.1f}{size:>9}"
            )
            if target is not None and kind != "all":
                mark = "<=" if int(level) == 1 else "<"
                met = q["p95"] <= target if int(level) == 1 else q["p95"] < target
                line += f"{mark + format(target, 'g'):>9}{'yes' if met else 'NO':>5}"
            print(line)
    print()
    print("baseline: the same queries done bare in one process, concurrency 1 (see --help)")
    header = (
        f"{'query':<24}{'requests':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'API p50':>9}{'API p95':>9}{'API/bare p50':>14}"
    )
    print_header(header)
    first = drive[args.levels.split(",")[0]]["queries"]
    for name, b in result["baseline"].items():
        api = first[b["kind"]]
        print(
            f"{name:<24}{b['n']:>9,}{b['p50']:>9.2f}{b['p95']:>9.2f}{b['p99']:>9.2f}"
            f"{api['p50']:>9.2f}{api['p95']:>9.2f}{api['p50'] / b['p50']:>14.1f}"
        )
    for error in drive["errors"]:
        print(f"ERROR: {error}")
    if result["server_errors"]:
        print(
            f"ERROR: {result['server_errors']} unhandled server errors, see {result['server_log']}"
        )
    return ok
