"""What the generated house is made of: floors, areas, device templates and value ranges."""

from __future__ import annotations

from typing import Any, Final

from homeiq.ha.simulator.model import (
    K_BINARY,
    K_CLIMATE,
    K_COVER,
    K_ENERGY,
    K_LIGHT,
    K_MOTION,
    K_NUMERIC,
    K_SWITCH,
)

FLOORS: Final = (
    ("basement", "Basement", -1),
    ("ground_floor", "Ground Floor", 0),
    ("first_floor", "First Floor", 1),
)
AREAS: Final = (
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
Spec = tuple[str, str, str | None, int, dict[str, Any]]
TEMPLATES: Final[dict[str, tuple[str, str, str, str, list[Spec]]]] = {
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
EXTRA_ROUNDS: Final = ("smart_plug", "door_contact", "thermostat", "lamp", "blind", "smart_plug")
PLUG_NAMES: Final = (
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
NUMERIC: Final = {
    "temperature": ("°C", "measurement", 17.0, 26.0, 0.3, 1),
    "temperature_out": ("°C", "measurement", -5.0, 35.0, 0.4, 1),
    "humidity": ("%", "measurement", 30.0, 75.0, 1.5, 0),
    "battery": ("%", "measurement", 5.0, 100.0, 1.0, 0),
    "power": ("W", "measurement", 0.0, 2400.0, 60.0, 1),
    "energy": ("kWh", "total_increasing", 0.0, 0.0, 0.004, 3),
}
PERSONS: Final = (("Alex", True), ("Sam", True), ("Guest", False))
HELPERS: Final = ("Guest mode", "Vacation mode", "Night mode")
