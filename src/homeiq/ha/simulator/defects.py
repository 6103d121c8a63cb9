"""Planted data-quality defects (``Simulator(defects=True)``), for the quality tests.

What a home with known defects looks like, deterministic from the seed:

- **entities without area**: two ceiling lights whose device has no area when HomeIQ
  first lists the registry; the area is assigned (``device_registry_updated``) once
  ``AREA_AFTER`` events were emitted, so the events before it were stored without the
  area Home Assistant now has;
- **a stale sensor**: a temperature sensor, one of the chattiest kinds, that stops
  reporting after ``STALE_AFTER`` events (its state stays; it just never changes);
- **out-of-order events**: every ``OUT_OF_ORDER_EVERY`` events, one more state of a
  second temperature sensor stamped half a clock step before its newest;
- **a flapping sensor**: a humidity sensor that goes unavailable every other change.

Other entities without an area (``sensor.house_power``: no device, no area in the
registry) stay as they are: they are not defects, and the tests check they are not
reported. Time is simulated (:class:`SteppedClock`), so silences are long in simulated
time while the test runs for a second or two.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from homeiq.ha.simulator.encoding import Clock, iso_from_us
from homeiq.ha.simulator.model import K_FLAPPING, K_LIGHT, K_NUMERIC, K_STATIC

if TYPE_CHECKING:
    from homeiq.ha.simulator.model import Entity
    from homeiq.ha.simulator.server import Simulator

STEP_US: Final = 1000  # simulated time moves 1 ms per clock reading (~1 per event)
DAY_US: Final = 86_400_000_000
AREA_AFTER: Final = 2000
STALE_AFTER: Final = 2000
OUT_OF_ORDER_EVERY: Final = 1500


class SteppedClock(Clock):
    """Simulated time: from noon (UTC) yesterday, ``STEP_US`` further at every reading.

    Yesterday noon keeps every event in the past (HomeIQ refuses the future) and a run
    of the tests far from midnight, so a day never turns over in the middle of one.
    """

    def __init__(self, wall_us: int, step_us: int = STEP_US) -> None:
        super().__init__()
        self._last = (wall_us // DAY_US) * DAY_US - DAY_US // 2
        self._step = step_us

    def now_us(self) -> int:
        """The next simulated microsecond."""
        self._last += self._step
        return self._last

    def peek_us(self) -> int:
        """Simulated now, without moving it (what a test's quality tracker reads)."""
        return self._last


@dataclass(slots=True, frozen=True)
class DefectPlan:
    """Which entities carry which defect (entity ids)."""

    without_area: tuple[str, ...]
    stale: str
    out_of_order: str
    flapping: str


class Defects:
    """Plants the defects in a simulator's home and springs the timed ones."""

    def __init__(self, sim: Simulator, seed: int) -> None:
        self.sim = sim
        clock = sim._clock
        if not isinstance(clock, SteppedClock):
            raise TypeError("defects run on simulated time: build the Simulator with defects=True")
        self.clock = clock
        rng = random.Random(seed * 7919 + 3)
        entities = sorted(sim.home.entities, key=lambda e: e.entity_id)
        devices = {d.id: d for d in sim.home.devices}
        per_device: dict[str, int] = {}
        for ent in entities:
            if ent.device_id is not None:
                per_device[ent.device_id] = per_device.get(ent.device_id, 0) + 1
        lights = [
            e
            for e in entities
            if e.kind == K_LIGHT
            and e.area_id is None
            and e.device_id is not None
            and devices[e.device_id].area_id is not None
            and per_device[e.device_id] == 1
        ]
        temperatures = [
            e for e in entities if e.kind == K_NUMERIC and e.spec.get("dc") == "temperature"
        ]
        humidities = [e for e in entities if e.kind == K_NUMERIC and e.spec.get("dc") == "humidity"]
        dark = rng.sample(lights, 2)
        stale, disordered = rng.sample(temperatures, 2)
        flapping = rng.choice(humidities)
        self.plan = DefectPlan(
            without_area=tuple(sorted(e.entity_id for e in dark)),
            stale=stale.entity_id,
            out_of_order=disordered.entity_id,
            flapping=flapping.entity_id,
        )
        # The area the registry gets later; until then the device has none.
        self._areas: dict[str, str | None] = {}
        for ent in dark:
            assert ent.device_id is not None
            device = devices[ent.device_id]
            self._areas[device.id], device.area_id = device.area_id, None
        flapping.kind = K_FLAPPING
        self._stale: Entity | None = stale
        self._disordered = disordered
        self._next_disorder = OUT_OF_ORDER_EVERY
        self.out_of_order_sent = 0

    def after_batch(self) -> None:
        """Spring what is due after the events emitted so far."""
        emitted = len(self.sim.emitted)
        if self._areas and emitted >= AREA_AFTER:
            areas, self._areas = self._areas, {}
            for device_id, area_id in areas.items():
                self.sim.move_device(device_id, area_id)
        if self._stale is not None and emitted >= STALE_AFTER:
            self._stale.kind = K_STATIC  # the generator skips static entities
            self._stale = None
        while emitted >= self._next_disorder:
            self._next_disorder += OUT_OF_ORDER_EVERY
            self._send_out_of_order()

    def _send_out_of_order(self) -> None:
        ent = self._disordered
        if len(ent.rows) < 2:  # only its initial state so far: nothing to be older than
            return
        newest = self.sim._log.ts[ent.rows[-1]]
        # Half a step: no reading of the stepped clock lands there, so no real event
        # of the entity has this time (the store would take it for a duplicate).
        event = self.sim.fake_state_changed(
            ent.entity_id,
            str(ent.state),
            ent.attrs,
            last_updated=iso_from_us(newest - STEP_US // 2),
        )
        self.sim.inject_event(event)
        self.out_of_order_sent += 1
