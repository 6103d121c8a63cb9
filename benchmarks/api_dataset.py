"""Loading the dataset into SQLite or InfluxDB once (cached per parameters, with a
manifest), and building its rollups in processes of their own."""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from _common import influx_count, influx_query, start_influxd
from api_home import (
    API_SCRIPT,
    DAY_US,
    GENERATOR_VERSION,
    INFLUX_BATCH,
    LOAD_BATCH,
    ROLLUP_CHUNK,
    ROLLUP_PROCESSES,
    ROLLUPS_FORMAT,
    Dataset,
    Home,
    build_home,
    generate,
    iso,
)

# -- loading -----------------------------------------------------------------------------


def _progress(what: str, done: int, total: int, started: float) -> None:
    elapsed = time.perf_counter() - started
    print(
        f"  {what}: {done:,}/{total:,} ({elapsed:.0f} s, {done / max(elapsed, 1e-9):,.0f}/s)",
        file=sys.stderr,
        flush=True,
    )


def _record(w: tuple[Any, ...]) -> Any:
    """A Wire tuple as the EventRecord the pipeline would have made."""
    from homeiq.model import EventRecord, Origin, Source

    return EventRecord(
        entity_id=w[0],
        time=w[1],
        state=w[2],
        value=w[3],
        previous_state=w[4],
        last_changed=w[5],
        duration_in_state_s=w[6],
        attributes=orjson.loads(w[7]),
        attributes_json=w[7],
        context_id=w[9],
        context_parent_id=w[10],
        context_user_id=w[11],
        device_id=w[12],
        area_id=w[13],
        floor_id=w[14],
        origin=Origin(w[15]),
        source=Source(w[16]),
    )


def generated(args: argparse.Namespace, events: int, end: int, dataset: Dataset) -> Iterator[Any]:
    """The records of :func:`generate`, made by a child process (``--phase generate``) so
    that making them overlaps with writing them; in batches of about LOAD_BATCH."""
    command = [
        sys.executable, str(API_SCRIPT), "--phase", "generate", "--events", str(events),
        "--entities", str(args.entities), "--days", str(args.days), "--seed", str(args.seed),
        "--end", str(end),
    ]  # fmt: skip
    child = subprocess.Popen(command, stdout=subprocess.PIPE)
    assert child.stdout is not None
    try:
        while True:
            header = child.stdout.read(8)
            if len(header) < 8:
                raise RuntimeError("the generator process stopped early")
            item = pickle.loads(child.stdout.read(int.from_bytes(header, "big")))
            if isinstance(item, dict):  # the last message: what was made
                dataset.events, dataset.roots = item["events"], item["roots"]
                break
            yield item
    finally:
        child.stdout.close()
        if child.wait() != 0:
            raise RuntimeError(f"the generator process failed ({child.returncode})")


def generate_phase(args: argparse.Namespace) -> None:
    home = build_home(args.entities, args.seed)
    dataset = Dataset(args.end - args.days * DAY_US, args.end)
    out = sys.stdout.buffer

    def send(item: Any) -> None:
        data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(len(data).to_bytes(8, "big"))
        out.write(data)

    batch: list[tuple[Any, ...]] = []
    for window in generate(home, args.events, args.days, args.seed, args.end, dataset):
        batch += window
        if len(batch) >= LOAD_BATCH:
            send(batch)
            batch = []
    if batch:
        send(batch)
    send({"events": dataset.events, "roots": dataset.roots})
    out.flush()


def load_sqlite(data_dir: Path, args: argparse.Namespace, end: int) -> Dataset:
    """Write the events into events.db in data_dir, in batches, from this process."""
    from homeiq.sinks.sqlite import SQLiteEventStore

    dataset = Dataset(end - args.days * DAY_US, end)
    store = SQLiteEventStore.in_dir(data_dir)
    started = time.perf_counter()
    written = reported = 0
    try:
        for batch in generated(args, args.events, end, dataset):
            written += store.write_wire(batch)
            if written - reported >= 1_000_000:
                reported = written
                _progress("sqlite load", written, args.events, started)
    finally:
        store.close()
    if written != dataset.events:
        raise RuntimeError(f"events.db took {written:,} of {dataset.events:,} events")
    return dataset


async def _influx_write(url: str, database: str, args: argparse.Namespace, end: int) -> Dataset:
    from homeiq.settings import InfluxDBSettings
    from homeiq.sinks.influxdb import InfluxDBSink

    sink = InfluxDBSink(
        InfluxDBSettings(url=url, database=database, timeout_s=120), batch_max_events=5000
    )
    await sink.open()
    dataset = Dataset(end - args.days * DAY_US, end)
    started = time.perf_counter()
    written = reported = 0
    try:
        for batch in generated(args, args.influx_events, end, dataset):
            for first in range(0, len(batch), INFLUX_BATCH):
                chunk = batch[first : first + INFLUX_BATCH]
                written += await sink.write([_record(w) for w in chunk])
            if written - reported >= 200_000:
                reported = written
                _progress("influxdb load", written, args.influx_events, started)
    finally:
        await sink.close()
    return dataset


def rollup_phase(args: argparse.Namespace) -> None:
    """Rebuild the rollups of every ``n``-th entity (``--part i/n``) over the span."""
    from homeiq.maintenance.rollups import RollupStore
    from homeiq.maintenance.statistics import RollupMaintainer

    index, parts = (int(x) for x in args.part.split("/"))
    entity_ids = [e for e, _, _, _ in build_home(args.entities, args.seed).entities]
    mine = entity_ids[index::parts]
    path = Path(args.path)

    async def run() -> int:
        if args.influx_url:
            from homeiq.settings import InfluxDBSettings
            from homeiq.sinks.influxdb import InfluxDBReader

            reader: Any = InfluxDBReader(
                InfluxDBSettings(url=args.influx_url, database=args.database, timeout_s=300)
            )
        else:
            from homeiq.sinks.sqlite import SQLiteReader

            reader = SQLiteReader(path)
        store = RollupStore.in_dir(path)
        maintainer = RollupMaintainer(reader, store)
        buckets = 0
        try:
            for first in range(0, len(mine), ROLLUP_CHUNK):
                buckets += await maintainer.rebuild(mine[first : first + ROLLUP_CHUNK], args.end)
        finally:
            await reader.close()
            store.close()
        return buckets

    buckets = asyncio.run(run())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"buckets": buckets, "cpu_s": usage.ru_utime + usage.ru_stime}))


def build_rollups(
    path: Path, args: argparse.Namespace, start: int, influx: tuple[str, str] | None = None
) -> dict[str, Any]:
    """Every entity's 5-minute and hourly rollups over the span, into rollups.db, by
    ``RollupMaintainer.rebuild`` (10 entities a call) in ROLLUP_PROCESSES processes."""
    from homeiq.maintenance.rollups import RollupStore

    RollupStore.in_dir(path).close()  # created once, before the processes share it
    command = [
        sys.executable, str(API_SCRIPT), "--phase", "rollups", "--path", str(path),
        "--entities", str(args.entities), "--seed", str(args.seed), "--end", str(start),
    ]  # fmt: skip
    if influx is not None:
        command += ["--influx-url", influx[0], "--database", influx[1]]
    children = [
        subprocess.Popen([*command, "--part", f"{i}/{ROLLUP_PROCESSES}"], stdout=subprocess.PIPE)
        for i in range(ROLLUP_PROCESSES)
    ]
    results = []
    for child in children:
        out, _ = child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"a rollup process failed ({child.returncode})")
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return {
        "buckets": sum(r["buckets"] for r in results),
        "cpu_s": sum(r["cpu_s"] for r in results),
    }


def refresh_rollups(
    kind: str,
    path: Path,
    data_dir: Path,
    args: argparse.Namespace,
    manifest: dict[str, Any],
    influx: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The manifest, with the rollups rebuilt first if they predate ROLLUPS_FORMAT."""
    if manifest.get("rollups_format") == ROLLUPS_FORMAT:
        return manifest
    print(f"{kind}: rebuilding rollups made by an older format", file=sys.stderr)
    for name in ("rollups.db", "rollups.db-wal", "rollups.db-shm"):
        (data_dir / name).unlink(missing_ok=True)
    manifest = {**manifest, **timed_rollups(kind, data_dir, args, manifest["start"], influx)}
    _write_manifest(path, manifest)
    return manifest


def timed_rollups(
    kind: str,
    data_dir: Path,
    args: argparse.Namespace,
    start: int,
    influx: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Build the rollups (:func:`build_rollups`); the manifest's fields about them."""
    print(f"{kind}: building the rollups", file=sys.stderr)
    started = time.perf_counter()
    rollups = build_rollups(data_dir, args, start, influx)
    return {
        "rollup_s": time.perf_counter() - started,
        "rollup_cpu_s": rollups["cpu_s"],
        "rollup_buckets": rollups["buckets"],
        "rollup_rows": _rollup_rows(data_dir),
        "rollups_db_mb": (data_dir / "rollups.db").stat().st_size / 1e6,
        "rollups_format": ROLLUPS_FORMAT,
    }


def _rollup_rows(data_dir: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{data_dir / 'rollups.db'}?mode=ro", uri=True)
    try:
        return {
            period: conn.execute(f"SELECT COUNT(*) FROM rollup_{period}").fetchone()[0]
            for period in ("5m", "1h")
        }
    finally:
        conn.close()


def _dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


@dataclass(slots=True)
class Loaded:
    """A dataset ready to serve: where it is and what the load process needs."""

    store: str
    data_dir: Path  # HomeIQ's data directory (metadata.db, rollups.db, events.db)
    manifest: dict[str, Any]
    influx_url: str | None = None
    influx_database: str | None = None
    influxd: Any = None  # an InfluxDBServer started here


def _manifest_params(store: str, events: int, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "generator": GENERATOR_VERSION,
        "store": store,
        "events": events,
        "entities": args.entities,
        "days": args.days,
        "seed": args.seed,
    }


def _dataset_dir(args: argparse.Namespace, params: dict[str, Any]) -> Path:
    root = Path(args.data_dir).expanduser() if args.data_dir else Path.home() / ".cache/homeiq"
    name = (
        f"bench-api-{params['store']}-{params['events']}e-{params['entities']}n"
        f"-{params['days']}d-s{params['seed']}-g{params['generator']}"
    )
    return root / name


def _read_manifest(path: Path, params: dict[str, Any]) -> dict[str, Any] | None:
    try:
        manifest: dict[str, Any] = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if not manifest.get("complete") or any(manifest.get(k) != v for k, v in params.items()):
        return None
    return manifest


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    tmp = path / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest))
    tmp.replace(path / "manifest.json")


def _describe(home: Home, dataset: Dataset) -> dict[str, Any]:
    return {
        "start": dataset.start,
        "end": dataset.end,
        "stored": dataset.events,
        "entity_ids": [e for e, _, _, _ in home.entities],
        "roots": dataset.roots,
    }


def prepare_sqlite(args: argparse.Namespace, home: Home) -> Loaded:
    """The SQLite dataset: reused when a complete one with the same parameters exists."""
    from homeiq.metadata.store import MetadataStore

    params = _manifest_params("sqlite", args.events, args)
    path = _dataset_dir(args, params)
    manifest = _read_manifest(path, params)
    if manifest is not None:
        print(f"sqlite: reusing the dataset in {path}", file=sys.stderr)
        return Loaded("sqlite", path, refresh_rollups("sqlite", path, path, args, manifest))
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    print(f"sqlite: loading {args.events:,} events into {path}", file=sys.stderr)
    end = time.time_ns() // 1000
    started = time.perf_counter()
    dataset = load_sqlite(path, args, end)
    load_s = time.perf_counter() - started
    metadata = MetadataStore.in_dir(path)
    metadata.replace_registry(home.snapshot)
    metadata.close()
    manifest = {
        **params,
        **_describe(home, dataset),
        "load_s": load_s,
        **timed_rollups("sqlite", path, args, dataset.start),
        "events_db_mb": (path / "events.db").stat().st_size / 1e6,
        "loaded_at": iso(end),
        "complete": True,
    }
    _write_manifest(path, manifest)
    return Loaded("sqlite", path, manifest)


def prepare_influx(args: argparse.Namespace, home: Home) -> Loaded:
    """The InfluxDB dataset, in its own influxd under the dataset directory (or in
    ``--influxdb-url``'s database ``homeiq_bench_api_<params>``)."""
    from homeiq.metadata.store import MetadataStore

    params = _manifest_params("influxdb", args.influx_events, args)
    path = _dataset_dir(args, params)
    data_dir = path / "homeiq"
    database = (
        f"homeiq_bench_api_{args.influx_events}e_{args.entities}n_{args.days}d_s{args.seed}"
        f"_g{GENERATOR_VERSION}"
    )
    server = None
    if args.influxdb_url:
        url = args.influxdb_url.rstrip("/")
        params["influxdb_url"] = url
    else:
        manifest = _read_manifest(path, params)
        if manifest is None:
            shutil.rmtree(path, ignore_errors=True)
        (path / "influxd").mkdir(parents=True, exist_ok=True)
        server = start_influxd(path / "influxd")
        url = server.url
    manifest = _read_manifest(path, params)
    if manifest is not None and influx_count(url, database) == manifest["stored"]:
        print(f"influxdb: reusing the dataset in {path} ({url})", file=sys.stderr)
        manifest = refresh_rollups("influxdb", path, data_dir, args, manifest, (url, database))
        return Loaded("influxdb", data_dir, manifest, url, database, server)
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    influx_query(url, f'DROP DATABASE "{database}"')
    print(f"influxdb: loading {args.influx_events:,} events into {url}", file=sys.stderr)
    end = time.time_ns() // 1000
    started = time.perf_counter()
    dataset = asyncio.run(_influx_write(url, database, args, end))
    load_s = time.perf_counter() - started
    stored = influx_count(url, database)
    if stored != dataset.events:
        raise RuntimeError(f"InfluxDB holds {stored:,} of {dataset.events:,} events")
    metadata = MetadataStore.in_dir(data_dir)
    metadata.replace_registry(home.snapshot)
    metadata.close()
    manifest = {
        **params,
        **_describe(home, dataset),
        "load_s": load_s,
        **timed_rollups("influxdb", data_dir, args, dataset.start, (url, database)),
        "influx_mb": _dir_mb(path / "influxd") if server is not None else None,
        "loaded_at": iso(end),
        "complete": True,
    }
    _write_manifest(path, manifest)
    return Loaded("influxdb", data_dir, manifest, url, database, server)
