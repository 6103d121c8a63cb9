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
import math
import os
import pickle
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]  # the repository (tests.support.influxdb)
GENERATOR_VERSION = 1  # bump when the dataset changes: cached datasets are rebuilt
SECOND_US = 1_000_000
HOUR_US = 3600 * SECOND_US
DAY_US = 24 * HOUR_US
LOAD_BATCH = 50_000  # events per SQLiteEventStore.write_wire transaction
INFLUX_BATCH = 5_000  # events per InfluxDBSink.write (its default batch_max_events)
ROLLUP_CHUNK = 10  # entities per RollupMaintainer.rebuild
# Bumped when what rollups hold changes (2: time in state only for non-numeric states):
# a reused dataset whose rollups are older has them rebuilt, its events kept.
ROLLUPS_FORMAT = 2
ROLLUP_PROCESSES = 2  # rebuild processes side by side (each its half of the entities)
TRACE_SAMPLES = 2_000  # chain contexts kept for the trace queries
MAX_PAGES = 5  # the events query follows next_cursor up to this many pages
UNLIMITED = "1000000/second"  # the rate limits the server runs with
MIX = ("history", "statistics", "events", "registry", "trace")
TARGET_P95_MS = {1: 15.0, 32: 100.0}  # SQLite at 10M events, every query type

# -- the synthetic home ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of entity: how many in 500, how often it changes (relative), how it looks."""

    name: str
    domain: str
    per_500: int
    rate: float
    platform: str
    device_class: str | None = None
    unit: str | None = None


KINDS = (
    Kind("temperature", "sensor", 50, 3.0, "zha", "temperature", "°C"),
    Kind("humidity", "sensor", 40, 2.0, "zha", "humidity", "%"),
    Kind("power", "sensor", 45, 12.0, "shelly", "power", "W"),
    Kind("energy", "sensor", 35, 4.0, "shelly", "energy", "kWh"),
    Kind("illuminance", "sensor", 20, 3.0, "hue", "illuminance", "lx"),
    Kind("battery", "sensor", 20, 0.1, "zha", "battery", "%"),
    Kind("co2", "sensor", 10, 3.0, "netatmo", "carbon_dioxide", "ppm"),
    Kind("pressure", "sensor", 5, 1.0, "netatmo", "pressure", "hPa"),
    Kind("motion", "binary_sensor", 40, 2.0, "zha", "motion"),
    Kind("door", "binary_sensor", 30, 0.6, "zha", "door"),
    Kind("window", "binary_sensor", 25, 0.2, "zha", "window"),
    Kind("light", "light", 70, 0.7, "hue"),
    Kind("switch", "switch", 45, 0.5, "shelly", "outlet"),
    Kind("climate", "climate", 20, 2.0, "tado"),
    Kind("automation", "automation", 45, 0.3, "automation"),
)
FLOORS = (("basement", "Basement", -1), ("ground_floor", "Ground Floor", 0))
FLOORS += (("first_floor", "First Floor", 1),)
AREA_NAMES = (
    "Living Room", "Kitchen", "Dining Room", "Hallway", "Office", "Bedroom", "Kids Room",
    "Bathroom", "Guest Room", "Laundry", "Garage", "Garden", "Attic", "Utility", "Porch",
    "Study", "Playroom", "Pantry", "Cellar", "Workshop", "Gym", "Sauna", "Terrace",
    "Nursery", "Library",
)  # fmt: skip
USERS = ("6f0a3c1b2d4e5f60718293a4b5c6d7e8", "0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]  # 10 bits -> two characters
_SHIFTS = tuple(range(120, -1, -10))


def ulid(ms: int, randomness: int) -> str:
    """A ULID: 48 bits of milliseconds, 80 random bits, Crockford base32 (26 chars)."""
    number = (ms << 80) | randomness  # 128 bits; a ULID is 130 bits, the top two zero
    return "".join([_PAIRS[(number >> shift) & 1023] for shift in _SHIFTS])


def iso(time_us: int) -> str:
    """UTC ISO 8601 with microseconds, as Home Assistant writes it."""
    return datetime.fromtimestamp(time_us / SECOND_US, UTC).isoformat()


def _dumps(attributes: dict[str, Any]) -> bytes:
    return orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS)


@dataclass(slots=True)
class Home:
    """The registry and, per entity, its kind, placement and rate."""

    snapshot: Any  # homeiq.model.RegistrySnapshot
    entities: list[tuple[str, Kind, tuple[str | None, str | None, str | None], str]]
    chains: list[tuple[str, str, str]]  # (motion, automation, light) entity ids


def build_home(entities: int, seed: int) -> Home:
    """A deterministic home of ``entities`` entities with the proportions of KINDS."""
    from homeiq.model import Area, Device, Entity, Floor, RegistrySnapshot

    rng = random.Random(f"home/{seed}")
    pattern = [kind for kind in KINDS for _ in range(kind.per_500)]
    kinds = [pattern[i * len(pattern) // entities] for i in range(entities)]
    area_count = max(3, min(len(AREA_NAMES), entities // 20))
    areas = [
        Area(name.lower().replace(" ", "_"), name, FLOORS[i % len(FLOORS)][0])
        for i, name in enumerate(AREA_NAMES[:area_count])
    ]
    floor_of = {a.area_id: a.floor_id for a in areas}
    devices: list[Device] = []
    registry: list[Entity] = []
    home: list[tuple[str, Kind, tuple[str | None, str | None, str | None], str]] = []
    numbers: dict[str, int] = {}
    device: Device | None = None
    for index, kind in enumerate(kinds):
        numbers[kind.name] = numbers.get(kind.name, 0) + 1
        number = numbers[kind.name]
        if kind.domain == "automation":
            area = areas[rng.randrange(area_count)]  # named after it, placed nowhere
            entity_id = f"{kind.domain}.{area.area_id}_{kind.name}_{number}"
            name = f"{area.name} {kind.name.title()} {number}"
            registry.append(Entity(entity_id, None, None, kind.platform, name))
            home.append((entity_id, kind, (None, None, None), name))
            continue
        # Two or three entities of one kind share a device (a multisensor, a strip).
        if device is None or index % 3 == 0 or device.model != kind.name:
            area = areas[rng.randrange(area_count)]
            device = Device(
                f"{rng.getrandbits(128):032x}",
                f"{area.name} {kind.name.title()} device",
                area.area_id,
                kind.platform.title(),
                kind.name,
            )
            devices.append(device)
        entity_id = f"{kind.domain}.{area.area_id}_{kind.name}_{number}"
        name = f"{area.name} {kind.name.title()} {number}"
        registry.append(Entity(entity_id, device.device_id, None, kind.platform, name))
        placement = (device.device_id, area.area_id, floor_of[area.area_id])
        home.append((entity_id, kind, placement, name))
    by_kind: dict[str, list[str]] = {}
    for entity_id, kind, _, _ in home:
        by_kind.setdefault(kind.name, []).append(entity_id)
    motions, automations, lights = by_kind["motion"], by_kind["automation"], by_kind["light"]
    chains = list(zip(motions, automations, lights, strict=False))
    snapshot = RegistrySnapshot(
        floors=tuple(Floor(*f) for f in FLOORS),
        areas=tuple(areas),
        devices=tuple(devices),
        entities=tuple(registry),
    )
    return Home(snapshot, home, chains)


class _Entity:
    """One entity's events: ``count`` of them spread evenly (jittered) over the span."""

    def __init__(
        self,
        entity_id: str,
        kind: Kind,
        placement: tuple[str | None, str | None, str | None],
        name: str,
        count: int,
        start: int,
        span: int,
        seed: int,
    ) -> None:
        self.entity_id, self.kind, self.placement = entity_id, kind, placement
        self.rng = random.Random(f"entity/{seed}/{entity_id}")
        self.count, self.start, self.interval = count, start, span / max(count, 1)
        self.k = 0
        self.next = self._time(0) if count else 2**63
        self.state: str | None = None
        self.changed = start
        self.phase = self.rng.random() * 2 * math.pi
        self.base = 20 + self.rng.random() * 280  # power, W
        self.total = self.rng.random() * 1000  # energy, kWh
        self.last = start
        attributes: dict[str, Any] = {"friendly_name": name}
        if kind.device_class is not None:
            attributes["device_class"] = kind.device_class
        if kind.unit is not None:
            attributes["unit_of_measurement"] = kind.unit
            attributes["state_class"] = (
                "total_increasing" if kind.name == "energy" else "measurement"
            )
        self.attributes = attributes
        self.blob = _dumps(attributes)
        if kind.domain == "light":
            self.light_blobs = {
                level: _dumps(
                    {
                        **attributes,
                        "brightness": level,
                        "color_mode": "brightness" if level else None,
                        "supported_color_modes": ["brightness"],
                        "supported_features": 40,
                    }
                )
                for level in (0, 77, 128, 191, 255)
            }
        self.automation_id = f"{self.rng.getrandbits(52):d}"

    def _time(self, k: int) -> int:
        return self.start + int((k + 0.05 + 0.9 * self.rng.random()) * self.interval)

    def wire(
        self,
        time_us: int,
        state: str,
        value: float | None,
        blob: bytes,
        context: str,
        parent: str | None = None,
        user: str | None = None,
    ) -> tuple[Any, ...]:
        """The record as :data:`homeiq.sinks.sqlite.Wire`, keeping the state's history."""
        previous = self.state
        if previous is None:
            duration, changed = None, time_us
        elif previous == state:
            duration, changed = None, self.changed
        else:
            duration, changed = (time_us - self.changed) / SECOND_US, time_us
        self.state, self.changed = state, changed
        device, area, floor = self.placement
        return (
            self.entity_id, time_us, state, value, previous, changed, duration, blob, 0,
            context, parent, user, device, area, floor, 0, 0,
        )  # fmt: skip

    def context(self, time_us: int) -> str:
        return ulid(time_us // 1000, self.rng.getrandbits(80))

    def emit(self, until: int, out: list[tuple[Any, ...]]) -> None:
        """Append this entity's events before ``until``."""
        while self.next < until:
            out.append(self.event(self.next))
            self.k += 1
            self.next = self._time(self.k) if self.k < self.count else 2**63

    def _numeric(self, t: int) -> float:
        r = self.rng.random() - 0.5
        day = math.sin(2 * math.pi * (t % DAY_US) / DAY_US + self.phase)
        name = self.kind.name
        if name == "temperature":
            return round(20.5 + 2.5 * day + 0.6 * r, 1)
        if name == "humidity":
            return round(48 + 8 * day + 3 * r, 1)
        if name == "power":
            return round(max(0.0, self.base * (1 + 0.6 * day + 0.3 * r)), 1)
        if name == "energy":
            self.total += self.base / 1000 * (t - self.last) / HOUR_US
            self.last = t
            return round(self.total, 3)
        if name == "illuminance":
            sun = math.sin(2 * math.pi * (t % DAY_US) / DAY_US - math.pi / 2)
            return float(round(max(0.0, 450 * sun + 20 * r)))
        if name == "battery":
            return float(round(100 - 40 * (self.k / max(self.count, 1))))
        if name == "co2":
            return float(round(550 + 250 * day + 40 * r))
        return round(1013 + 7 * math.sin(2 * math.pi * t / (3 * DAY_US)) + r, 1)  # pressure

    def event(self, t: int) -> tuple[Any, ...]:
        """The entity's next event, at ``t``."""
        domain = self.kind.domain
        context = self.context(t)
        if domain == "sensor":
            value = self._numeric(t)
            return self.wire(t, repr(value), value, self.blob, context)
        if domain == "binary_sensor":
            return self.wire(t, "off" if self.state == "on" else "on", None, self.blob, context)
        if domain in ("light", "switch"):
            state = "off" if self.state == "on" else "on"
            user = USERS[self.rng.randrange(2)] if self.rng.random() < 0.3 else None
            blob = self.blob
            if domain == "light":
                blob = self.light_blobs[
                    self.rng.choice((77, 128, 191, 255)) if state == "on" else 0
                ]
            return self.wire(t, state, None, blob, context, user=user)
        if domain == "climate":
            current = round(20 + 1.5 * math.sin(2 * math.pi * t / DAY_US + self.phase), 1)
            state = "heat" if self.rng.random() < 0.7 else "off"
            target = 21.0 if state == "heat" else None
            action = "heating" if state == "heat" and current < 20.5 else "idle"
            attributes = {
                **self.attributes,
                "current_temperature": current,
                "hvac_action": action if state == "heat" else "off",
                "hvac_modes": ["off", "heat"],
                "max_temp": 25.0,
                "min_temp": 5.0,
                "supported_features": 385,
                "temperature": target,
            }
            return self.wire(t, state, None, _dumps(attributes), context)
        return self.automation(t, context, None)  # an automation on its own trigger

    def automation(self, t: int, context: str, parent: str | None) -> tuple[Any, ...]:
        """An automation run at ``t``: its state stays on, last_triggered moves."""
        attributes = {
            **self.attributes,
            "current": 0,
            "id": self.automation_id,
            "last_triggered": iso(t),
            "mode": "single",
        }
        return self.wire(t, "on", None, _dumps(attributes), context, parent)


class _Chain:
    """A motion sensor whose every change runs an automation that switches a light."""

    def __init__(self, motion: _Entity, automation: _Entity, light: _Entity) -> None:
        self.motion, self.automation, self.light = motion, automation, light
        self.roots: list[str] = []

    def emit(self, until: int, out: list[tuple[Any, ...]], keep_every: int) -> None:
        motion = self.motion
        while motion.next < until:
            t = motion.next
            root = motion.event(t)
            out.append(root)
            if motion.k % keep_every == 0:
                self.roots.append(root[9])
            run_at = t + 2_000 + motion.rng.randrange(3_000)  # 2-5 ms later
            run_context = self.automation.context(run_at)
            out.append(self.automation.automation(run_at, run_context, root[9]))
            switch_at = run_at + 30_000 + motion.rng.randrange(30_000)  # the light answers
            state = root[2]
            blob = self.light.light_blobs[255 if state == "on" else 0]
            # The run's context (its parent the motion's) is the light's too, as in HA.
            out.append(self.light.wire(switch_at, state, None, blob, run_context, root[9]))
            motion.k += 1
            motion.next = motion._time(motion.k) if motion.k < motion.count else 2**63


@dataclass(slots=True)
class Dataset:
    """What the generator made: the time span, and samples for the load process."""

    start: int
    end: int
    events: int = 0
    roots: list[str] = field(default_factory=list)


def generate(
    home: Home, events: int, days: int, seed: int, end: int, dataset: Dataset
) -> Iterator[list[tuple[Any, ...]]]:
    """At least ``events`` records over ``days`` ending at ``end``, an hour at a time in
    time order (as live ingest writes them); fills ``dataset``."""
    span = days * DAY_US
    start = end - span
    chained = {e for chain in home.chains for e in chain}
    motions = {chain[0] for chain in home.chains}
    # A chained motion change makes three events (motion, automation, light).
    weight = {
        entity_id: kind.rate * (3 if entity_id in motions else 1)
        for entity_id, kind, _, _ in home.entities
        if entity_id not in chained or entity_id in motions
    }
    unit = events / sum(weight.values())
    objects = {
        entity_id: _Entity(
            entity_id,
            kind,
            placement,
            name,
            math.ceil(unit * kind.rate) if entity_id in weight else 0,
            start,
            span,
            seed,
        )
        for entity_id, kind, placement, name in home.entities
    }
    singles = [objects[e] for e in weight if e not in motions]
    chains = [_Chain(objects[m], objects[a], objects[lt]) for m, a, lt in home.chains]
    root_total = sum(c.motion.count for c in chains)
    keep_every = max(1, root_total // TRACE_SAMPLES)
    for window in range(start, end, HOUR_US):
        until = min(window + HOUR_US, end)
        out: list[tuple[Any, ...]] = []
        for entity in singles:
            entity.emit(until, out)
        for chain in chains:
            chain.emit(until, out, keep_every)
        out.sort(key=lambda w: w[1])
        dataset.events += len(out)
        yield out
    dataset.roots = [root for chain in chains for root in chain.roots]


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
        sys.executable, __file__, "--phase", "generate", "--events", str(events),
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


def _generate_phase(args: argparse.Namespace) -> None:
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
    from homeiq.sinks.influxdb import InfluxDBConfig, InfluxDBSink

    sink = InfluxDBSink(InfluxDBConfig(url, database=database, timeout_s=120))
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


def _rollup_phase(args: argparse.Namespace) -> None:
    """Rebuild the rollups of every ``n``-th entity (``--part i/n``) over the span."""
    from homeiq.maintenance.rollups import RollupStore
    from homeiq.maintenance.statistics import RollupMaintainer

    index, parts = (int(x) for x in args.part.split("/"))
    entity_ids = [e for e, _, _, _ in build_home(args.entities, args.seed).entities]
    mine = entity_ids[index::parts]
    path = Path(args.path)

    async def run() -> int:
        if args.influx_url:
            from homeiq.sinks.influxdb import InfluxDBConfig, InfluxDBReader

            reader: Any = InfluxDBReader(
                InfluxDBConfig(args.influx_url, database=args.database, timeout_s=300)
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
        sys.executable, __file__, "--phase", "rollups", "--path", str(path),
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
        if str(ROOT) not in sys.path:  # run as `python benchmarks/api.py`
            sys.path.insert(0, str(ROOT))
        from tests.support.influxdb import InfluxDBServer

        manifest = _read_manifest(path, params)
        if manifest is None:
            shutil.rmtree(path, ignore_errors=True)
        (path / "influxd").mkdir(parents=True, exist_ok=True)
        server = InfluxDBServer(path / "influxd")
        server.start()
        url = server.url
    manifest = _read_manifest(path, params)
    if manifest is not None and _influx_count(url, database) == manifest["stored"]:
        print(f"influxdb: reusing the dataset in {path} ({url})", file=sys.stderr)
        manifest = refresh_rollups("influxdb", path, data_dir, args, manifest, (url, database))
        return Loaded("influxdb", data_dir, manifest, url, database, server)
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    _influx_query(url, f'DROP DATABASE "{database}"')
    print(f"influxdb: loading {args.influx_events:,} events into {url}", file=sys.stderr)
    end = time.time_ns() // 1000
    started = time.perf_counter()
    dataset = asyncio.run(_influx_write(url, database, args, end))
    load_s = time.perf_counter() - started
    stored = _influx_count(url, database)
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


def _influx_query(url: str, q: str, db: str | None = None) -> dict[str, Any]:
    params = {"q": q, "epoch": "u"} if db is None else {"q": q, "epoch": "u", "db": db}
    request = urllib.request.Request(
        f"{url}/query", data=urllib.parse.urlencode(params).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        result: dict[str, Any] = json.loads(response.read())["results"][0]
    return result


def _influx_count(url: str, database: str) -> int:
    result = _influx_query(url, 'SELECT count("source") FROM "home_assistant_events"', database)
    if "error" in result:
        return 0  # database not found
    series = result.get("series") or [{"values": [[0, 0]]}]
    return int(series[0]["values"][0][1])


# -- the server (--phase serve) ----------------------------------------------------------

READER_METHODS = (
    "history", "history_many", "events", "by_context", "caused_by", "activity", "keys",
    "summary", "last_event_time",
)  # fmt: skip


def _count_reader_calls(reader: Any, counts: dict[str, int]) -> None:
    """Count every call of the event reader's queries (whoever holds the reader)."""
    for name in READER_METHODS:
        original = getattr(reader, name)

        async def counted(
            *args: Any, _original: Any = original, _name: str = name, **kw: Any
        ) -> Any:
            counts[_name] = counts.get(_name, 0) + 1
            return await _original(*args, **kw)

        setattr(reader, name, counted)


def _serve_phase(args: argparse.Namespace) -> None:
    """HomeIQ's runtime over the dataset (no Home Assistant source) and its API served as
    ``homeiq run`` serves it; prints {"url", "key"}, answers "calls" on stdin with the
    reader's call counts, stops at the end of stdin."""
    import logging
    import threading

    from homeiq.api.auth import create_key
    from homeiq.api.server import api_socket, serve
    from homeiq.metadata.store import MetadataStore
    from homeiq.model import now_us
    from homeiq.runtime import Runtime
    from homeiq.settings import Settings

    logging.basicConfig(level=logging.WARNING)
    store: dict[str, Any] = {}
    if args.influx_url:
        store = {"store": "influxdb", "influxdb_url": args.influx_url}
        store["influxdb_database"] = args.database
    settings = Settings(
        data_dir=Path(args.path),
        api_host="127.0.0.1",
        api_port=0,
        api_rate_limit_read=UNLIMITED,
        api_rate_limit_write=UNLIMITED,
        api_rate_limit_admin=UNLIMITED,
        api_rate_limit_ip=UNLIMITED,
        log_level="WARNING",
        **store,
    )
    sock = api_socket(settings)
    assert sock is not None
    runtime = Runtime(settings)
    key, stored = create_key(runtime.metadata, "api benchmark", ["read"])
    counts: dict[str, int] = {}
    _count_reader_calls(runtime.reader, counts)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def answer() -> None:
            print(json.dumps(counts), flush=True)

        def read_commands() -> None:  # a thread of its own: not one of the loop's workers
            for line in sys.stdin:
                if line.strip() == "calls":
                    loop.call_soon_threadsafe(answer)
            loop.call_soon_threadsafe(stop.set)

        await runtime.start()
        api = await serve(runtime, sock)
        print(json.dumps({"url": api.url, "key": key}), flush=True)
        threading.Thread(target=read_commands, daemon=True).start()
        try:
            await stop.wait()
        finally:
            await api.stop()
            await runtime.stop()

    try:
        asyncio.run(main())
    finally:
        sock.close()
        metadata = MetadataStore.in_dir(Path(args.path))
        metadata.revoke_api_key(stored.id, now_us())
        metadata.close()


class Server:
    """The ``--phase serve`` process."""

    def __init__(self, loaded: Loaded) -> None:
        command = [sys.executable, __file__, "--phase", "serve", "--path", str(loaded.data_dir)]
        if loaded.store == "influxdb":
            assert loaded.influx_url is not None and loaded.influx_database is not None
            command += ["--influx-url", loaded.influx_url, "--database", loaded.influx_database]
        self.log = loaded.data_dir / "server.log"  # its errors, if any, with tracebacks
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env={**os.environ, "HOMEIQ_LOG_LEVEL": "WARNING"},
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the server process did not start; see {self.log}")
        started = json.loads(line)
        self.url: str = started["url"]
        self.key: str = started["key"]

    def calls(self) -> dict[str, int]:
        """The reader's query calls so far."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("calls\n")
        self.proc.stdin.flush()
        found: dict[str, int] = json.loads(self.proc.stdout.readline())
        return found

    def close(self) -> None:
        """Stop it (end of stdin), waiting for a clean shutdown."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


# -- the mix ---------------------------------------------------------------------------


def iso_z(time_us: int) -> str:
    """A query-string time (``Z``, so no ``+`` to escape)."""
    return datetime.fromtimestamp(time_us / SECOND_US, UTC).isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class Plan:
    """What the queries pick from: the dataset's entities, span and chain contexts."""

    entity_ids: list[str]
    roots: list[str]
    start: int
    end: int

    @classmethod
    def of(cls, manifest: dict[str, Any]) -> Plan:
        return cls(manifest["entity_ids"], manifest["roots"], manifest["start"], manifest["end"])

    @property
    def earliest(self) -> int:
        """Ranges start after the span's first tenth: every entity has a state by then."""
        return self.start + (self.end - self.start) // 10

    def day(self, rng: random.Random) -> tuple[str, int, int]:
        """An entity and a 24-hour range inside the span."""
        end = rng.randrange(self.earliest + DAY_US, self.end + 1)
        return rng.choice(self.entity_ids), end - DAY_US, end

    def month(self, rng: random.Random) -> tuple[str, int, int]:
        """An entity and a 30-day range inside the span (ends on an hour)."""
        end = rng.randrange(self.earliest + 31 * DAY_US, self.end + 1)
        end -= end % HOUR_US
        return rng.choice(self.entity_ids), end - 30 * DAY_US, end


def _rngs(seed: int, level: int, worker: int) -> dict[str, random.Random]:
    """One generator per query type: the baseline replays a type's exact sequence."""
    return {kind: random.Random(f"{seed}/{level}/{worker}/{kind}") for kind in MIX}


@dataclass(slots=True)
class Request:
    """One request of the mix and the check its answer must pass."""

    path: str
    params: dict[str, str]
    check: Callable[[Any], bool]


class Worker:
    """One closed-loop client: the mix in turn, starting at its own offset."""

    def __init__(self, plan: Plan, seed: int, level: int, index: int) -> None:
        self.plan = plan
        self.rngs = _rngs(seed, level, index)
        self.turn = index
        self.cursor: str | None = None
        self.pages = 0

    def next(self) -> tuple[str, Request]:
        kind = MIX[self.turn % len(MIX)]
        self.turn += 1
        rng = self.rngs[kind]
        plan = self.plan
        if kind == "history":
            entity, start, end = plan.day(rng)
            return kind, Request(
                "/api/v1/history",
                {"entity_id": entity, "start": iso_z(start), "end": iso_z(end)},
                lambda body, e=entity: bool(body["entities"][e]),
            )
        if kind == "statistics":
            entity, start, end = plan.month(rng)
            return kind, Request(
                "/api/v1/statistics",
                {"entity_id": entity, "period": "1h", "start": iso_z(start), "end": iso_z(end)},
                lambda body, e=entity: len(body["entities"][e]) >= 700,
            )
        if kind == "events":
            params = {"limit": "100"}
            if self.cursor is not None and self.pages < MAX_PAGES:
                params["cursor"] = self.cursor
                self.pages += 1
            else:
                self.pages = 1

            def page(body: Any) -> bool:
                self.cursor = body["next_cursor"]
                return len(body["events"]) == 100

            return kind, Request("/api/v1/events", params, page)
        if kind == "registry":
            return kind, Request(
                "/api/v1/registry/entities",
                {},
                lambda body: len(body["items"]) == len(plan.entity_ids),
            )
        root = rng.choice(plan.roots)
        return kind, Request(
            f"/api/v1/trace/{root}",
            {},
            # The motion's own event, the automation it ran and the light that run switched.
            lambda body: bool(body["events"]) and len(body["caused"]) >= 2,
        )


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of a sorted sample."""
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _summary(latencies: list[float], seconds: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "n": len(ordered),
        "rps": len(ordered) / seconds if seconds else 0.0,
        "p50": _percentile(ordered, 0.50) * 1000,
        "p95": _percentile(ordered, 0.95) * 1000,
        "p99": _percentile(ordered, 0.99) * 1000,
    }


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its waited-for children (Linux /proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


# -- the load process (--phase drive) --------------------------------------------------


async def _drive(args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp

    plan = Plan.of(json.loads(Path(args.manifest).read_text()))  # noqa: ASYNC240  # before any load
    levels = [int(x) for x in args.levels.split(",")]
    headers = {"Authorization": f"Bearer {args.key}"}
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    results: dict[str, Any] = {}
    async with aiohttp.ClientSession(
        args.url, headers=headers, connector=connector, timeout=timeout
    ) as session:
        errors: list[str] = []

        async def send(kind: str, request: Request) -> tuple[bool, float, int]:
            started = time.perf_counter()
            async with session.get(request.path, params=request.params) as response:
                body = await response.read()
            elapsed = time.perf_counter() - started
            ok = response.status == 200
            if ok:
                try:
                    ok = request.check(orjson.loads(body))
                except (KeyError, TypeError, ValueError):
                    ok = False
            if not ok and len(errors) < 10:
                errors.append(f"{kind}: HTTP {response.status} {request.path}: {body[:300]!r}")
            return ok, elapsed, len(body)

        # Warm-up, not counted: every type a few times (first connections, first queries).
        warm = Worker(plan, args.seed, 0, 0)
        for _ in range(len(MIX) * 4):
            await send(*warm.next())
        for level in levels:
            latencies: dict[str, list[float]] = {kind: [] for kind in MIX}
            sizes: dict[str, list[int]] = {kind: [] for kind in MIX}
            failures: dict[str, int] = dict.fromkeys(MIX, 0)
            deadline = time.perf_counter() + args.seconds

            async def worker(
                index: int,
                level: int = level,
                deadline: float = deadline,
                latencies: dict[str, list[float]] = latencies,
                failures: dict[str, int] = failures,
                sizes: dict[str, list[int]] = sizes,
            ) -> None:
                client = Worker(plan, args.seed, level, index)
                while time.perf_counter() < deadline:
                    kind, request = client.next()
                    ok, elapsed, size = await send(kind, request)
                    latencies[kind].append(elapsed)
                    sizes[kind].append(size)
                    if not ok:
                        failures[kind] += 1

            cpu_before = _process_cpu_s(args.server_pid)
            store_before = _process_cpu_s(args.store_pid) if args.store_pid else 0.0
            own_before = time.process_time()
            started = time.perf_counter()
            await asyncio.gather(*(worker(i) for i in range(level)))
            seconds = time.perf_counter() - started
            server_cpu = _process_cpu_s(args.server_pid) - cpu_before
            store_cpu = _process_cpu_s(args.store_pid) - store_before if args.store_pid else None
            results[str(level)] = {
                "seconds": seconds,
                "queries": {
                    kind: {
                        **_summary(latencies[kind], seconds),
                        "failed": failures[kind],
                        "kb": _percentile(sorted(sizes[kind]), 0.5) / 1000,
                    }
                    for kind in MIX
                },
                "all": _summary([x for xs in latencies.values() for x in xs], seconds),
                "failures": failures,
                "server_cpu": server_cpu / seconds,
                "store_cpu": None if store_cpu is None else store_cpu / seconds,
                "client_cpu": (time.process_time() - own_before) / seconds,
            }
        results["errors"] = errors
    return results


# -- the baseline (--phase baseline) -------------------------------------------------------


def _bare_history_sqlite(path: Path, with_json: bool) -> Callable[[str, int, int], int]:
    """The history query the bare way: returns how many rows (the state at start, then
    the range), optionally made into a JSON body."""
    from homeiq.sinks.sqlite.codec import decode_attributes, decode_context

    conn = sqlite3.connect(f"file:{path / 'events.db'}?mode=ro", uri=True)
    select = (
        "SELECT e.time, e.state, e.value, e.previous_state, e.last_changed, e.duration_us,"
        " a.json, a.codec, e.context_id, e.context_parent_id, e.placement, e.origin, e.source"
        " FROM events e LEFT JOIN attributes a ON a.id = e.attributes"
    )
    before = select + " WHERE e.entity = ? AND e.time < ? ORDER BY e.time DESC LIMIT 1"
    inside = select + " WHERE e.entity = ? AND e.time >= ? AND e.time < ? ORDER BY e.time"

    def query(entity_id: str, start: int, end: int) -> int:
        found = conn.execute("SELECT id FROM entities WHERE entity_id = ?", (entity_id,))
        entity = found.fetchone()[0]
        rows = conn.execute(before, (entity, start)).fetchall()
        rows += conn.execute(inside, (entity, start, end)).fetchall()
        if with_json:
            orjson.dumps(
                {
                    entity_id: [
                        {
                            "entity_id": entity_id,
                            "time": iso(r[0]),
                            "state": r[1],
                            "value": r[2],
                            "previous_state": r[3],
                            "last_changed": iso(r[0] if r[4] is None else r[4]),
                            "duration_in_state_s": None if r[5] is None else r[5] / SECOND_US,
                            "attributes": orjson.loads(decode_attributes(r[6], r[7])),
                            "context_id": decode_context(r[8]),
                            "context_parent_id": decode_context(r[9]),
                            "placement": r[10],
                            "origin": r[11],
                            "source": r[12],
                        }
                        for r in rows
                    ]
                }
            )
        return len(rows)

    return query


def _bare_statistics(path: Path) -> Callable[[str, int, int], int]:
    conn = sqlite3.connect(f"file:{path / 'rollups.db'}?mode=ro", uri=True)

    def query(entity_id: str, start: int, end: int) -> int:
        return len(
            conn.execute(
                "SELECT * FROM rollup_1h WHERE entity_id = ? AND start >= ? AND start < ?"
                " ORDER BY start",
                (entity_id, start, end),
            ).fetchall()
        )

    return query


async def _bare_history_influx(
    url: str, database: str, plan: Plan, seed: int, seconds: float
) -> dict[str, Any]:
    import aiohttp

    rng = _rngs(seed, 1, 0)["history"]
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            entity, start, end = plan.day(rng)
            where = f"\"entity_id\" = '{entity}'"
            q = (
                f'SELECT * FROM "home_assistant_events" WHERE {where} AND time < {start}u'
                f' ORDER BY time DESC LIMIT 1; SELECT * FROM "home_assistant_events" WHERE'
                f" {where} AND time >= {start}u AND time < {end}u"
            )
            began = time.perf_counter()
            params = {"db": database, "epoch": "u", "q": q}
            async with session.get(f"{url}/query", params=params) as response:
                body = await response.read()
            results = orjson.loads(body)["results"]
            if response.status != 200 or not any(r.get("series") for r in results):
                raise RuntimeError(f"bare InfluxQL history failed: {body[:300]!r}")
            latencies.append(time.perf_counter() - began)
    return _summary(latencies, seconds)


def _baseline_phase(args: argparse.Namespace) -> None:
    plan = Plan.of(json.loads(Path(args.manifest).read_text()))
    path = Path(args.path)
    results: dict[str, Any] = {}

    def timed(
        name: str, kind: str, query: Callable[[str, int, int], int], pick: Callable[..., Any]
    ) -> None:
        rng = _rngs(args.seed, 1, 0)[kind]  # the API's concurrency-1 sequence of this type
        for _ in range(20):  # warm-up, as the load process does
            query(*pick(random.Random(0)))
        latencies = []
        deadline = time.perf_counter() + args.seconds
        while time.perf_counter() < deadline:
            entity, start, end = pick(rng)
            began = time.perf_counter()
            query(entity, start, end)
            latencies.append(time.perf_counter() - began)
        results[name] = {"kind": kind, **_summary(latencies, args.seconds)}

    if args.influx_url:
        results["history: influxql"] = {
            "kind": "history",
            **asyncio.run(
                _bare_history_influx(args.influx_url, args.database, plan, args.seed, args.seconds)
            ),
        }
    else:
        timed("history: sqlite3", "history", _bare_history_sqlite(path, False), plan.day)
        timed("history: sqlite3+json", "history", _bare_history_sqlite(path, True), plan.day)
    timed("statistics: sqlite3", "statistics", _bare_statistics(path), plan.month)
    print(json.dumps(results))


# -- the run -----------------------------------------------------------------------------


def _phase_json(args: list[str]) -> dict[str, Any]:
    child = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
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
        "versions": _versions(loaded),
        "server_errors": errors,
        "server_log": str(server.log),
    }


def _versions(loaded: Loaded) -> str:
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
        print(header)
        print("-" * len(header))
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
    print(header)
    print("-" * len(header))
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
        "generate": _generate_phase,
        "rollups": _rollup_phase,
        "serve": _serve_phase,
        "baseline": _baseline_phase,
        "drive": lambda a: print(json.dumps(asyncio.run(_drive(a)))),
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
