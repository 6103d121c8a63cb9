"""The simulated home: floors, areas, devices, entities and how their states move.

Everything here is deterministic from one seed (a private ``random.Random``), so two
simulators built with the same seed describe the same house and, fed the same random
stream, produce the same sequence of state changes. Timing is the only thing taken from
the wall clock, and it only ever shows up in timestamps and the time part of ULIDs.
"""

from __future__ import annotations

import random
import re
import time
import unicodedata
from array import array
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson

CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Two base32 characters per 10 bits: halves the lookups when encoding ULIDs.
_PAIRS: Final = tuple((CROCKFORD[i >> 5] + CROCKFORD[i & 31]).encode() for i in range(1024))

# Behaviour kinds: small ints so the hot loop dispatches through a tuple index.
K_STATIC: Final = 0
K_NUMERIC: Final = 1
K_ENERGY: Final = 2
K_MOTION: Final = 3
K_BINARY: Final = 4
K_LIGHT: Final = 5
K_SWITCH: Final = 6
K_CLIMATE: Final = 7
K_COVER: Final = 8
K_PERSON: Final = 9
K_AUTOMATION: Final = 10

# How often each kind is picked relative to the others: sensors chatter, people rarely move.
_WEIGHTS: Final = {
    K_NUMERIC: 4,
    K_ENERGY: 3,
    K_MOTION: 3,
    K_BINARY: 2,
    K_LIGHT: 2,
    K_SWITCH: 1,
    K_CLIMATE: 3,
    K_COVER: 1,
    K_PERSON: 1,
    K_AUTOMATION: 1,
}
# Kinds whose changes come from a person pressing something some of the time.
USER_KINDS: Final = frozenset({K_LIGHT, K_SWITCH, K_CLIMATE, K_COVER})


class Clock:
    """Strictly increasing wall-clock microseconds, formatted like HA's ``isoformat()``."""

    __slots__ = ("_last", "_prefix", "_sec")

    # ".123" and "456+00:00" for every three digits: two lookups beat a format.
    _MS: Final = tuple(b".%03d" % i for i in range(1000))
    _US: Final = tuple(b"%03d+00:00" % i for i in range(1000))

    def __init__(self) -> None:
        self._last = 0
        self._sec = -1
        self._prefix = b""

    def now_us(self) -> int:
        """Now in µs since the epoch, bumped so no two calls return the same value."""
        # Unique times keep (entity_id, last_updated) a usable idempotency key even at
        # 100k events/s, where several events would otherwise share a microsecond.
        now = time.time_ns() // 1000
        if now <= self._last:
            now = self._last + 1
        self._last = now
        return now

    def iso(self, us: int) -> bytes:
        """``2026-11-25T21:22:22.067575+00:00`` as bytes; cached per second."""
        sec, frac = divmod(us, 1_000_000)
        if sec != self._sec:
            self._sec = sec
            self._prefix = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S").encode()
        if frac:
            return self._prefix + self._MS[frac // 1000] + self._US[frac % 1000]
        # datetime.isoformat() leaves out a zero fraction, and so does HA.
        return self._prefix + b"+00:00"


def iso_from_us(us: int) -> str:
    """Format µs since the epoch the way HA does (uncached)."""
    return (
        datetime.fromtimestamp(us / 1_000_000, UTC).replace(microsecond=us % 1_000_000).isoformat()
    )


class UlidMaker:
    """Deterministic, time-ordered ULIDs: 48-bit ms time + 80 bits derived from seed and counter.

    The counter (below ``2**40``) is scrambled by an odd multiplier, split into four
    10-bit chunks, and each chunk picks one of 1024 distinct 4-character groups drawn
    from the seed: an injection, so ids never collide, and four lookups per id keep it
    cheap at 100k+ ids/s.
    """

    __slots__ = ("_groups", "_ms", "_prefix")

    COUNTER_LIMIT: Final = 1 << 40

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed * 7919 + 17)
        self._groups = tuple(
            tuple(_PAIRS[v >> 10] + _PAIRS[v & 1023] for v in rng.sample(range(1 << 20), 1024))
            for _ in range(4)
        )
        self._ms = -1
        self._prefix = b""

    def make(self, ms: int, n: int) -> str:
        """The ULID for context number ``n`` created at ``ms``; same inputs, same id."""
        return self.make_b(ms, n).decode()

    def make_b(self, ms: int, n: int) -> bytes:
        """Like :meth:`make`, as ASCII bytes for building JSON without a round trip."""
        if ms != self._ms:
            self._ms = ms
            self._prefix = (
                _PAIRS[(ms >> 40) & 1023]
                + _PAIRS[(ms >> 30) & 1023]
                + _PAIRS[(ms >> 20) & 1023]
                + _PAIRS[(ms >> 10) & 1023]
                + _PAIRS[ms & 1023]
            )
        r = (n * 0x9E3779B97F) & 0xFFFFFFFFFF
        g0, g1, g2, g3 = self._groups
        return (
            self._prefix + g0[r & 1023] + g1[(r >> 10) & 1023] + g2[(r >> 20) & 1023] + g3[r >> 30]
        )


def slugify(text: str) -> str:
    """HA-style slug: ASCII-folded, lower case, underscores."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", folded.lower()).strip("_")


@dataclass(slots=True)
class Floor:
    """A floor registry entry."""

    floor_id: str
    name: str
    level: int
    icon: str | None = None

    def entry(self) -> dict[str, Any]:
        """The ``config/floor_registry/list`` item."""
        return {
            "aliases": [],
            "floor_id": self.floor_id,
            "icon": self.icon,
            "level": self.level,
            "name": self.name,
        }


@dataclass(slots=True)
class Area:
    """An area registry entry; newer HA gives areas a floor."""

    area_id: str
    name: str
    floor_id: str | None
    icon: str | None = None
    outdoor: bool = False

    def entry(self) -> dict[str, Any]:
        """The ``config/area_registry/list`` item (2024.3.3 fields plus ``floor_id``)."""
        return {
            "aliases": [],
            "area_id": self.area_id,
            "floor_id": self.floor_id,
            "icon": self.icon,
            "name": self.name,
            "picture": None,
        }


@dataclass(slots=True)
class Device:
    """A device registry entry."""

    id: str
    name: str
    area_id: str | None
    platform: str
    config_entry_id: str
    manufacturer: str | None
    model: str | None
    identifier: str
    connections: list[list[str]] = field(default_factory=list)
    sw_version: str | None = None
    hw_version: str | None = None
    serial_number: str | None = None
    via_device_id: str | None = None
    name_by_user: str | None = None
    entry_type: str | None = None

    def entry(self) -> dict[str, Any]:
        """The ``config/device_registry/list`` item, keys as HA 2024.3.3 sends them."""
        return {
            "area_id": self.area_id,
            "configuration_url": None,
            "config_entries": [self.config_entry_id],
            "connections": self.connections,
            "disabled_by": None,
            "entry_type": self.entry_type,
            "hw_version": self.hw_version,
            "id": self.id,
            "identifiers": [[self.platform, self.identifier]],
            "manufacturer": self.manufacturer,
            "model": self.model,
            "name_by_user": self.name_by_user,
            "name": self.name,
            "serial_number": self.serial_number,
            "sw_version": self.sw_version,
            "via_device_id": self.via_device_id,
        }


class Entity:
    """One entity: its registry entry, its current state and how that state moves."""

    __slots__ = (
        "area_id",
        "attrs",
        "attrs_idx",
        "attrs_json",
        "automation",
        "cache",
        "config_entry_id",
        "decimals",
        "device_id",
        "domain",
        "eid_b",
        "entity_category",
        "entity_id",
        "fmt",
        "has_entity_name",
        "hi",
        "idx",
        "jumpy",
        "kind",
        "last_changed_b",
        "last_changed_us",
        "lo",
        "original_name",
        "platform",
        "reg_id",
        "registered",
        "removed",
        "rows",
        "spec",
        "state",
        "state_json",
        "target",
        "unique_id",
        "value",
        "walk",
    )

    def __init__(self, entity_id: str, kind: int, platform: str) -> None:
        self.entity_id = entity_id
        self.eid_b = entity_id.encode()
        self.domain = entity_id.partition(".")[0]
        self.kind = kind
        self.platform = platform
        self.idx = -1
        self.area_id: str | None = None
        self.device_id: str | None = None
        self.config_entry_id: str | None = None
        self.has_entity_name = False
        self.original_name: str | None = None
        self.entity_category: str | None = None
        self.unique_id = ""
        self.reg_id = ""
        self.registered = True
        self.removed = False
        self.state = "unknown"
        self.attrs: dict[str, Any] = {}
        self.attrs_json = b"{}"
        self.attrs_idx = 0
        # The serialized current state: the next event's old_state, and get_states' item.
        self.state_json: bytes | None = None
        self.last_changed_b = b""
        self.last_changed_us = 0
        self.value = 0.0
        self.lo = 0.0
        self.hi = 0.0
        self.walk = 0.0
        self.decimals = 1
        self.fmt = "%.1f"  # printf format of numeric states: cheaper than format specs
        self.jumpy = False  # power readings jump between levels instead of drifting
        self.spec: dict[str, Any] = {}
        self.cache: dict[Hashable, tuple[dict[str, Any], bytes]] = {}
        # Positions of this entity's rows in the simulator's record, in time order.
        self.rows: array[int] = array("I")
        self.automation: Entity | None = None
        self.target: Entity | None = None

    def registry_entry(self) -> dict[str, Any]:
        """The ``config/entity_registry/list`` item, keys as HA 2024.3.3 sends them."""
        return {
            "area_id": self.area_id,
            "config_entry_id": self.config_entry_id,
            "device_id": self.device_id,
            "disabled_by": None,
            "entity_category": self.entity_category,
            "entity_id": self.entity_id,
            "has_entity_name": self.has_entity_name,
            "hidden_by": None,
            "icon": None,
            "id": self.reg_id,
            "labels": [],
            "name": None,
            "options": {"conversation": {"should_expose": self.entity_category is None}},
            "original_name": self.original_name,
            "platform": self.platform,
            "translation_key": None,
            "unique_id": self.unique_id,
        }


# --- how states move -------------------------------------------------------------------

_CT_COLOURS: Final = (
    # kelvin, mireds, hs, rgb, xy: a few fixed points so colour attributes look real.
    (2700, 370, [28.874, 72.522], [255, 167, 89], [0.524, 0.387]),
    (3000, 333, [27.835, 64.93], [255, 180, 107], [0.5, 0.387]),
    (4000, 250, [26.812, 34.87], [255, 205, 166], [0.42, 0.365]),
    (5000, 200, [26.667, 12.941], [255, 228, 206], [0.369, 0.349]),
)


def _fmt(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def _step_numeric(ent: Entity, rng: random.Random) -> bytes | None:
    if ent.state == "unavailable":
        ent.state = ent.fmt % ent.value
        return None
    rnd = rng.random
    if rnd() < 0.004:
        # Zigbee sensors drop off now and then; clients must cope with non-numeric states.
        ent.state = "unavailable"
        return None
    lo, hi = ent.lo, ent.hi
    if ent.jumpy and rnd() < 0.15:
        v = lo + (hi - lo) * rnd()
    else:
        v = ent.value + ent.walk * (2.0 * rnd() - 1.0)
        v = hi if v > hi else lo if v < lo else v
    state = ent.fmt % v
    if state == ent.state:
        # An unchanged state would be a state_reported in HA, never a state_changed.
        unit = 10.0**-ent.decimals
        v = v + unit if v + unit <= hi else v - unit
        state = ent.fmt % v
    ent.value = v
    ent.state = state
    return None


def _step_energy(ent: Entity, rng: random.Random) -> bytes | None:
    ent.value += rng.random() * ent.walk + 10.0**-ent.decimals
    ent.state = ent.fmt % ent.value
    return None


def _step_binary(ent: Entity, rng: random.Random) -> bytes | None:
    ent.state = "off" if ent.state == "on" else "on"
    return None


def _step_person(ent: Entity, rng: random.Random) -> bytes | None:
    ent.state = "not_home" if ent.state == "home" else "home"
    return None


def light_attrs(ent: Entity, brightness: int | None, colour: int) -> dict[str, Any]:
    """Light attributes in HA's key order; ``brightness=None`` means off."""
    on = brightness is not None
    attrs: dict[str, Any]
    if ent.spec.get("ct"):
        k, mireds, hs, rgb, xy = _CT_COLOURS[colour % len(_CT_COLOURS)]
        attrs = {
            "min_color_temp_kelvin": 2000,
            "max_color_temp_kelvin": 6535,
            "min_mireds": 153,
            "max_mireds": 500,
            "supported_color_modes": ["color_temp", "xy"],
            "color_mode": "color_temp" if on else None,
            "brightness": brightness,
            "color_temp_kelvin": k if on else None,
            "color_temp": mireds if on else None,
            "hs_color": hs if on else None,
            "rgb_color": rgb if on else None,
            "xy_color": xy if on else None,
        }
    else:
        attrs = {
            "supported_color_modes": ["brightness"],
            "color_mode": "brightness" if on else None,
            "brightness": brightness,
        }
    attrs["friendly_name"] = ent.spec["friendly_name"]
    attrs["supported_features"] = ent.spec.get("features", 40)
    return attrs


def _step_light(ent: Entity, rng: random.Random) -> bytes | None:
    if ent.state == "off":
        return set_light(ent, rng.randint(3, 255), rng.randrange(4))
    if rng.random() < 0.55:
        # Dimming: attributes change, the state and last_changed do not.
        old = ent.attrs.get("brightness")
        new = rng.randint(3, 255)
        return set_light(ent, new if new != old else (new % 255) + 1, rng.randrange(4))
    return set_light(ent, None, 0)


def _cached(ent: Entity, key: Hashable, attrs: Callable[[], dict[str, Any]]) -> bytes:
    """Attributes (and their JSON) for ``key``, built once per entity and reused.

    Lights, thermostats and covers cycle through few attribute sets; serializing each
    once keeps them off the hot path. The dicts are shared, so never mutate them.
    """
    hit = ent.cache.get(key)
    if hit is None:
        built = attrs()
        hit = ent.cache[key] = (built, dumps(built))
    ent.attrs = hit[0]
    return hit[1]


def set_light(ent: Entity, brightness: int | None, colour: int) -> bytes:
    """Switch a light on at ``brightness`` (or off with ``None``); returns the attributes JSON."""
    ent.state = "off" if brightness is None else "on"
    colour = 0 if brightness is None else colour
    return _cached(ent, (brightness, colour), lambda: light_attrs(ent, brightness, colour))


def climate_attrs(ent: Entity, current: float, target: float) -> dict[str, Any]:
    """Thermostat attributes in HA's key order, with hvac_action following the mode."""
    mode = ent.state
    if mode == "heat":
        action = "heating" if current < target else "idle"
    elif mode == "cool":
        action = "cooling" if current > target else "idle"
    else:
        action = "off"
    return {
        "hvac_modes": ["off", "heat", "cool"],
        "min_temp": 7.0,
        "max_temp": 35.0,
        "target_temp_step": 0.5,
        "current_temperature": current,
        "temperature": target,
        "hvac_action": action,
        "friendly_name": ent.spec["friendly_name"],
        "supported_features": 385,
    }


def _step_climate(ent: Entity, rng: random.Random) -> bytes | None:
    current = float(ent.attrs["current_temperature"])
    target = float(ent.attrs["temperature"])
    roll = rng.random()
    if roll < 0.06:
        ent.state = rng.choice([m for m in ("heat", "cool", "off") if m != ent.state])
    elif roll < 0.2:
        target = (
            target + 0.5
            if (target < 23.0 and rng.random() < 0.5) or target <= 17.0
            else target - 0.5
        )
    else:
        delta = round(rng.uniform(0.1, 0.4), 1)
        current = round(current + delta if current < target else current - delta, 1)
    return _cached(ent, (ent.state, current, target), lambda: climate_attrs(ent, current, target))


_COVER_NEXT: Final = {
    "closed": "opening",
    "opening": "open",
    "open": "closing",
    "closing": "closed",
}
_COVER_POS: Final = {"closed": 0, "opening": 40, "open": 100, "closing": 60}


def cover_attrs(ent: Entity) -> dict[str, Any]:
    """Cover attributes for the current state."""
    return {
        "current_position": _COVER_POS[ent.state],
        "device_class": ent.spec.get("device_class", "blind"),
        "friendly_name": ent.spec["friendly_name"],
        "supported_features": 15,
    }


def _step_cover(ent: Entity, rng: random.Random) -> bytes | None:
    ent.state = _COVER_NEXT[ent.state]
    return _cached(ent, ent.state, lambda: cover_attrs(ent))


def _step_static(ent: Entity, rng: random.Random) -> bytes | None:
    return None


# Indexed by kind; automations are driven by the simulator itself (they form chains).
STEPS: Final = (
    _step_static,
    _step_numeric,
    _step_energy,
    _step_binary,
    _step_binary,
    _step_light,
    _step_binary,
    _step_climate,
    _step_cover,
    _step_person,
    _step_static,
)


# --- building the house ----------------------------------------------------------------

_FLOORS: Final = (
    ("basement", "Basement", -1),
    ("ground_floor", "Ground Floor", 0),
    ("first_floor", "First Floor", 1),
)
_AREAS: Final = (
    ("Living Room", "ground_floor", "mdi:sofa", False),
    ("Kitchen", "ground_floor", "mdi:stove", False),
    ("Dining Room", "ground_floor", None, False),
    ("Hallway", "ground_floor", None, False),
    ("Büro", "ground_floor", "mdi:desk", False),
    ("Bedroom", "first_floor", "mdi:bed", False),
    ("Kids Room", "first_floor", None, False),
    ("Bathroom", "first_floor", "mdi:shower", False),
    ("Guest Room", "first_floor", None, False),
    ("Laundry", "basement", None, False),
    ("Garage", "basement", "mdi:garage", True),
    ("Garden", None, "mdi:flower", True),
)
# Template: (label, platform, manufacturer, model, [(domain, key, original_name, kind, spec)]).
_Spec = tuple[str, str, str | None, int, dict[str, Any]]
_TEMPLATES: Final[dict[str, tuple[str, str, str, str, list[_Spec]]]] = {
    "multisensor": (
        "Multisensor",
        "zha",
        "Aqara",
        "lumi.motion.ac02",
        [
            ("sensor", "temperature", "Temperature", K_NUMERIC, {"dc": "temperature"}),
            ("sensor", "humidity", "Humidity", K_NUMERIC, {"dc": "humidity"}),
            ("binary_sensor", "motion", "Motion", K_MOTION, {"dc": "motion"}),
            ("sensor", "battery", "Battery", K_NUMERIC, {"dc": "battery"}),
        ],
    ),
    "ceiling_light": (
        "Ceiling Light",
        "hue",
        "Signify Netherlands B.V.",
        "LTA009",
        [("light", "", None, K_LIGHT, {"ct": True})],
    ),
    "lamp": (
        "Lamp",
        "zha",
        "IKEA of Sweden",
        "TRADFRI bulb E27 W opal 1000lm",
        [("light", "", None, K_LIGHT, {})],
    ),
    "smart_plug": (
        "Plug",
        "shelly",
        "Shelly",
        "SHPLG-S",
        [
            ("switch", "", None, K_SWITCH, {"dc": "outlet"}),
            ("sensor", "power", "Power", K_NUMERIC, {"dc": "power"}),
            ("sensor", "energy", "Energy", K_ENERGY, {"dc": "energy"}),
        ],
    ),
    "thermostat": (
        "Thermostat",
        "tado",
        "tado°",
        "RU02",
        [
            ("climate", "", None, K_CLIMATE, {}),
            ("sensor", "battery", "Battery", K_NUMERIC, {"dc": "battery"}),
        ],
    ),
    "door_contact": (
        "Door",
        "zha",
        "Aqara",
        "lumi.sensor_magnet.aq2",
        [
            ("binary_sensor", "opening", "Opening", K_BINARY, {"dc": "door"}),
            ("sensor", "battery", "Battery", K_NUMERIC, {"dc": "battery"}),
        ],
    ),
    "blind": (
        "Blind",
        "zha",
        "IKEA of Sweden",
        "FYRTUR block-out roller blind",
        [
            ("cover", "", None, K_COVER, {"dc": "blind"}),
            ("sensor", "battery", "Battery", K_NUMERIC, {"dc": "battery"}),
        ],
    ),
}
_EXTRA_ROUNDS: Final = ("smart_plug", "door_contact", "thermostat", "lamp", "blind", "smart_plug")
_PLUG_NAMES: Final = (
    "TV",
    "Fridge",
    "Washer",
    "Desk",
    "Heater",
    "Kettle",
    "Lamp",
    "Router",
    "Dryer",
)
# (unit, device_class, state_class, lo, hi, walk, decimals)
_NUMERIC: Final = {
    "temperature": ("°C", "measurement", 17.0, 26.0, 0.3, 1),
    "temperature_out": ("°C", "measurement", -5.0, 35.0, 0.4, 1),
    "humidity": ("%", "measurement", 30.0, 75.0, 1.5, 0),
    "battery": ("%", "measurement", 5.0, 100.0, 1.0, 0),
    "power": ("W", "measurement", 0.0, 2400.0, 60.0, 1),
    "energy": ("kWh", "total_increasing", 0.0, 0.0, 0.004, 3),
}
_PERSONS: Final = (("Alex", True), ("Sam", True), ("Guest", False))
_HELPERS: Final = ("Guest mode", "Vacation mode", "Night mode")


def _hex(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


class Home:
    """A generated house; ``entities`` is the minimum total entity count wanted."""

    def __init__(self, seed: int, entities: int) -> None:
        rng = random.Random(seed)
        self.floors = [Floor(fid, name, level) for fid, name, level in _FLOORS]
        self.areas = [Area(slugify(n), n, f, icon, outdoor) for n, f, icon, outdoor in _AREAS]
        self.devices: list[Device] = []
        self.entities: list[Entity] = []
        self.users = [_hex(rng) for _ in range(3)]
        # The first user owns the API token: REST writes and call_service carry it.
        self.owner_user_id = self.users[0]
        self._names: set[str] = set()
        entries = {p: _hex(rng) for p in ("zha", "hue", "shelly", "tado")}
        self._entries = entries
        hubs = {
            "zha": self._add_device(
                rng, "Zigbee Coordinator", None, "zha", "Texas Instruments", "CC2652P", None
            ),
            "hue": self._add_device(
                rng, "Hue Bridge", "hallway", "hue", "Signify Netherlands B.V.", "BSB002", None
            ),
        }
        self._hubs = {p: d.id for p, d in hubs.items()}
        n_fixed = len(_PERSONS) + len(_HELPERS) + len(self.areas) + 2 + 2
        minimum = n_fixed + len(self.areas) * 5
        if entities < minimum:
            raise ValueError(f"the simulated home needs at least {minimum} entities")
        budget = entities - n_fixed
        motion: dict[str, Entity] = {}
        lights: dict[str, Entity] = {}
        for area in self.areas:
            for ent in self._add_from_template(rng, "multisensor", area, budget):
                if ent.kind == K_MOTION:
                    motion[area.area_id] = ent
            lights[area.area_id] = self._add_from_template(rng, "ceiling_light", area, budget)[0]
        rnd = 0
        while self._device_entity_count() < budget:
            for i, area in enumerate(self.areas):
                if self._device_entity_count() >= budget:
                    break
                self._add_from_template(
                    rng, _EXTRA_ROUNDS[(rnd + i) % len(_EXTRA_ROUNDS)], area, budget
                )
            rnd += 1
        self._add_fixed(rng, motion, lights)
        for i, ent in enumerate(self.entities):
            ent.idx = i
            ent.reg_id = _hex(rng)

    def _device_entity_count(self) -> int:
        return sum(1 for e in self.entities if e.device_id is not None)

    def _unique(self, entity_id: str) -> str:
        base, n = entity_id, 2
        while entity_id in self._names:
            entity_id = f"{base}_{n}"
            n += 1
        self._names.add(entity_id)
        return entity_id

    def _add_device(
        self,
        rng: random.Random,
        name: str,
        area_id: str | None,
        platform: str,
        manufacturer: str | None,
        model: str | None,
        via: str | None,
    ) -> Device:
        if platform == "zha":
            ieee = ":".join(f"{rng.randrange(256):02x}" for _ in range(8))
            conns, ident = [["zigbee", ieee]], ieee
        elif platform == "shelly":
            mac = ":".join(f"{rng.randrange(256):02x}" for _ in range(6))
            conns, ident = [["mac", mac]], f"shellyplug-s-{mac.replace(':', '')[-6:].upper()}"
        else:
            conns, ident = [], _hex(rng)[:16]
        device = Device(
            id=_hex(rng),
            name=name,
            area_id=area_id,
            platform=platform,
            config_entry_id=self._entries[platform],
            manufacturer=manufacturer,
            model=model,
            identifier=ident,
            connections=conns,
            via_device_id=via,
            sw_version=f"{rng.randint(1, 3)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
            hw_version=None if rng.random() < 0.5 else f"rev{rng.randint(1, 4)}",
            serial_number=None if platform != "shelly" else f"{rng.getrandbits(40):010X}",
        )
        # Users rename a few devices in the UI; friendly names then follow name_by_user.
        if area_id is not None and rng.random() < 0.08:
            device.name_by_user = f"{name} ({rng.choice(['old', 'new', 'spare'])})"
        self.devices.append(device)
        return device

    def _add_from_template(
        self, rng: random.Random, key: str, area: Area, budget: int
    ) -> list[Entity]:
        label, platform, manufacturer, model, specs = _TEMPLATES[key]
        if key == "smart_plug":
            label = f"{rng.choice(_PLUG_NAMES)} Plug"
        name = f"{area.name} {label}"
        existing = {d.name for d in self.devices}
        n = 2
        while name in existing:
            name = f"{area.name} {label} {n}"
            n += 1
        device = self._add_device(
            rng, name, area.area_id, platform, manufacturer, model, self._hubs.get(platform)
        )
        display = device.name_by_user or device.name
        made: list[Entity] = []
        for domain, suffix, original, kind, spec in specs:
            if self._device_entity_count() >= budget and made:
                break
            slug = slugify(display) + (f"_{suffix}" if suffix else "")
            ent = Entity(self._unique(f"{domain}.{slug}"), kind, platform)
            ent.device_id = device.id
            ent.config_entry_id = device.config_entry_id
            ent.has_entity_name = True
            ent.original_name = original
            ent.unique_id = f"{device.identifier}-{domain}-{suffix or 'main'}"
            ent.spec = dict(spec)
            ent.spec["friendly_name"] = f"{display} {original}" if original else display
            if spec.get("dc") == "battery":
                ent.entity_category = "diagnostic"
            # Some entities sit elsewhere than their device: a plug's switch drives a lamp
            # in the next room. HA stores the override on the entity, not the device.
            if (domain == "switch" and rng.random() < 0.4) or (
                key == "lamp" and rng.random() < 0.3
            ):
                ent.area_id = rng.choice([a.area_id for a in self.areas if a is not area])
            self._init_entity(rng, ent, area)
            self.entities.append(ent)
            made.append(ent)
        return made

    def _add_fixed(
        self, rng: random.Random, motion: dict[str, Entity], lights: dict[str, Entity]
    ) -> None:
        for (name, has_user), user in zip(_PERSONS, self.users, strict=False):
            ent = Entity(self._unique(f"person.{slugify(name)}"), K_PERSON, "person")
            ent.original_name = name
            ent.unique_id = slugify(name)
            ent.state = rng.choice(["home", "not_home"])
            ent.attrs = {
                "editable": True,
                "id": slugify(name),
                "user_id": user if has_user else None,
                "device_trackers": [],
                "friendly_name": name,
            }
            self.entities.append(ent)
        helpers: dict[str, Entity] = {}
        for name in _HELPERS:
            ent = Entity(self._unique(f"input_boolean.{slugify(name)}"), K_SWITCH, "input_boolean")
            ent.original_name = name
            ent.unique_id = slugify(name)
            ent.state = rng.choice(["on", "off"])
            ent.attrs = {"editable": True, "friendly_name": name}
            helpers[name] = ent
            self.entities.append(ent)
        autos: list[tuple[str, Entity | None, Entity | None]] = [
            (f"{a.name} motion light", motion.get(a.area_id), lights.get(a.area_id))
            for a in self.areas
        ]
        autos += [
            ("Night mode schedule", None, helpers["Night mode"]),
            ("Guest check", None, helpers["Guest mode"]),
        ]
        for name, trigger, target in autos:
            ent = Entity(self._unique(f"automation.{slugify(name)}"), K_AUTOMATION, "automation")
            ent.original_name = name
            ent.unique_id = str(1_700_000_000_000 + rng.randrange(10**9))
            ent.attrs = {
                "id": ent.unique_id,
                "last_triggered": None,
                "mode": "single",
                "current": 0,
                "friendly_name": name,
            }
            ent.state = "on"
            ent.target = target
            if trigger is not None:
                trigger.automation = ent
                # Motion-driven runs happen through the sensor; don't also pick them alone.
                ent.kind = K_STATIC
            self.entities.append(ent)
        for name, key, area_id in (
            ("House power", "power", None),
            ("Outdoor temperature", "temperature_out", "garden"),
        ):
            ent = Entity(self._unique(f"sensor.{slugify(name)}"), K_NUMERIC, "template")
            ent.original_name = name
            ent.unique_id = _hex(rng)
            ent.area_id = area_id
            ent.spec = {"friendly_name": name, "dc": key}
            self._init_entity(rng, ent, None)
            self.entities.append(ent)

    def _init_entity(self, rng: random.Random, ent: Entity, area: Area | None) -> None:
        fname = ent.spec["friendly_name"]
        dc = ent.spec.get("dc")
        if ent.kind in (K_NUMERIC, K_ENERGY):
            key = (
                "temperature_out"
                if dc == "temperature" and area is not None and area.outdoor
                else str(dc)
            )
            dc = "temperature" if key == "temperature_out" else dc
            unit, state_class, lo, hi, walk, decimals = _NUMERIC[key]
            if key == "power":
                hi = rng.choice([60.0, 150.0, 400.0, 2400.0])
                walk = hi / 20
                ent.jumpy = True
            ent.lo, ent.hi, ent.walk, ent.decimals = lo, hi, walk, decimals
            ent.fmt = f"%.{decimals}f"
            ent.value = rng.uniform(10.0, 900.0) if ent.kind == K_ENERGY else rng.uniform(lo, hi)
            ent.state = _fmt(ent.value, decimals)
            ent.attrs = {
                "state_class": state_class,
                "unit_of_measurement": unit,
                "device_class": dc,
                "friendly_name": fname,
            }
        elif ent.kind in (K_MOTION, K_BINARY):
            ent.state = "off"
            ent.attrs = {"device_class": dc, "friendly_name": fname}
        elif ent.kind == K_SWITCH:
            ent.state = rng.choice(["on", "off"])
            ent.attrs = (
                {"device_class": dc, "friendly_name": fname} if dc else {"friendly_name": fname}
            )
        elif ent.kind == K_LIGHT:
            ent.spec["features"] = 44 if ent.spec.get("ct") else 40
            set_light(ent, rng.randint(3, 255) if rng.random() < 0.3 else None, rng.randrange(4))
        elif ent.kind == K_CLIMATE:
            ent.state = rng.choice(["heat", "heat", "off", "cool"])
            ent.attrs = climate_attrs(
                ent, round(rng.uniform(17.0, 23.0), 1), 20.0 + rng.randrange(4) * 0.5
            )
        elif ent.kind == K_COVER:
            ent.spec["device_class"] = dc
            ent.state = rng.choice(["open", "closed"])
            ent.attrs = cover_attrs(ent)

    def pick_table(self) -> list[Entity]:
        """Entities repeated by weight: the generator indexes it with one random draw."""
        table: list[Entity] = []
        for ent in self.entities:
            weight = _WEIGHTS.get(ent.kind, 0)
            if ent.kind == K_NUMERIC and ent.spec.get("dc") == "battery":
                weight = 1
            table.extend([ent] * weight)
        return table


def dumps(obj: Any) -> bytes:
    """Compact JSON with raw UTF-8, as HA sends it, in a right-sized buffer for keeping.

    orjson hands back its whole output buffer (4 KB for a short string); anything the
    simulator keeps per state or per event must be copied down or memory balloons.
    """
    return bytes(memoryview(orjson.dumps(obj)))
