"""The simulated home: floors, areas, devices and entities, generated from one seed.

Everything here is deterministic from one seed (a private ``random.Random``), so two
simulators built with the same seed describe the same house and, fed the same random
stream, produce the same sequence of state changes. What the house is made of is in
:mod:`homeiq.ha.simulator.catalogue`; how its states move, in
:mod:`homeiq.ha.simulator.behaviour`.
"""

from __future__ import annotations

import random
from typing import Final

from homeiq.ha.simulator.behaviour import climate_attrs, cover_attrs, set_light
from homeiq.ha.simulator.catalogue import (
    AREAS,
    EXTRA_ROUNDS,
    FLOORS,
    HELPERS,
    NUMERIC,
    PERSONS,
    PLUG_NAMES,
    TEMPLATES,
)
from homeiq.ha.simulator.model import (
    K_AUTOMATION,
    K_BINARY,
    K_CLIMATE,
    K_COVER,
    K_ENERGY,
    K_LIGHT,
    K_MOTION,
    K_NUMERIC,
    K_PERSON,
    K_STATIC,
    K_SWITCH,
    Area,
    Device,
    Entity,
    Floor,
    slugify,
)

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


def _fmt(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def _hex(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


class Home:
    """A generated house; ``entities`` is the minimum total entity count wanted."""

    def __init__(self, seed: int, entities: int) -> None:
        rng = random.Random(seed)
        self.floors = [Floor(fid, name, level) for fid, name, level in FLOORS]
        self.areas = [Area(slugify(n), n, f, icon, outdoor) for n, f, icon, outdoor in AREAS]
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
        n_fixed = len(PERSONS) + len(HELPERS) + len(self.areas) + 2 + 2
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
                    rng, EXTRA_ROUNDS[(rnd + i) % len(EXTRA_ROUNDS)], area, budget
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
        label, platform, manufacturer, model, specs = TEMPLATES[key]
        if key == "smart_plug":
            label = f"{rng.choice(PLUG_NAMES)} Plug"
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
        for (name, has_user), user in zip(PERSONS, self.users, strict=False):
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
        for name in HELPERS:
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
            unit, state_class, lo, hi, walk, decimals = NUMERIC[key]
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
