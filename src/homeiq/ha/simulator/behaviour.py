"""How states move: one step function per behaviour kind, and the attributes they set.

A step mutates the entity's state (and value) in place and returns the new serialized
attributes, or None when the attributes did not change. Steps draw only from the
random stream they are given, so the same stream makes the same changes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable
from typing import Any, Final

from homeiq.ha.simulator.encoding import dumps
from homeiq.ha.simulator.model import Entity

_CT_COLOURS: Final = (
    # kelvin, mireds, hs, rgb, xy: a few fixed points so colour attributes look real.
    (2700, 370, [28.874, 72.522], [255, 167, 89], [0.524, 0.387]),
    (3000, 333, [27.835, 64.93], [255, 180, 107], [0.5, 0.387]),
    (4000, 250, [26.812, 34.87], [255, 205, 166], [0.42, 0.365]),
    (5000, 200, [26.667, 12.941], [255, 228, 206], [0.369, 0.349]),
)


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


def _step_flapping(ent: Entity, rng: random.Random) -> bytes | None:
    # A planted defect (defects.py): a sensor whose link keeps dropping.
    ent.state = ent.fmt % ent.value if ent.state == "unavailable" else "unavailable"
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
    _step_flapping,
)
