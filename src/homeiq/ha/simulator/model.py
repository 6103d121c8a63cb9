"""The home's registry entries (floors, areas, devices) and its entities.

An :class:`Entity` carries its registry entry, its current state (and the serialized
forms the simulator reuses on the hot path) and the parameters of how that state moves;
``kind`` picks the behaviour from :data:`homeiq.ha.simulator.behaviour.STEPS`.
"""

from __future__ import annotations

import re
import unicodedata
from array import array
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Final

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
K_FLAPPING: Final = 11  # a numeric sensor going unavailable every other change (defects)

# Kinds whose changes come from a person pressing something some of the time.
USER_KINDS: Final = frozenset({K_LIGHT, K_SWITCH, K_CLIMATE, K_COVER})


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
