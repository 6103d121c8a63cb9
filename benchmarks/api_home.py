"""The benchmark's synthetic home: entities, devices, areas, context chains, and the
events they make, deterministic from a seed (see benchmarks/api.py)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

API_SCRIPT = Path(__file__).with_name("api.py")  # the one command; its --phase runs the parts
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
