"""Changes made from outside the stream: states set through the API, registry edits."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import orjson

from homeiq.ha.simulator.core import Core
from homeiq.ha.simulator.model import K_STATIC, Area, Entity, Floor, slugify


class Edits(Core):
    """Reading and setting states and editing the registries, as HA's APIs would."""

    def get_state(self, entity_id: str) -> dict[str, Any] | None:
        """The current state object, as ``get_states`` would return it."""
        ent = self._by_id.get(entity_id)
        if ent is None or ent.state_json is None:
            return None
        state: dict[str, Any] = orjson.loads(ent.state_json)
        return state

    def set_state(
        self,
        entity_id: str,
        state: str,
        attributes: Mapping[str, Any] | None = None,
        *,
        user_id: str | None = None,
    ) -> bool:
        """Set a state like ``POST /api/states``; True if that created the entity.

        An entity set this way stops being driven by the generator. As in HA, an update
        with identical state and attributes fires no state_changed.
        """
        ent = self._by_id.get(entity_id)
        created = ent is None or ent.removed
        if ent is None:
            ent = self._new_entity(entity_id, "homeiq_sim", register=False)
        attrs = dict(attributes or {})
        attrs_json = orjson.dumps(attrs)
        if not created and ent.state == state and attrs_json == ent.attrs_json:
            return False
        prev = None if created else ent.state
        ent.removed = False
        ent.kind = K_STATIC
        ent.state = state
        ent.attrs = attrs
        us = self._clock.now_us()
        ctx = self._new_ctx(us // 1000, user=self._user_index(user_id))
        self._commit(ent, prev, attrs_json, ctx, us)
        self._after_batch()
        return created

    def create_entity(
        self,
        entity_id: str,
        state: str,
        attributes: Mapping[str, Any] | None = None,
        *,
        device_id: str | None = None,
        area_id: str | None = None,
        platform: str = "homeiq_sim",
        register: bool = True,
    ) -> None:
        """Add an entity: registry ``create`` (if registered), then old_state null."""
        existing = self._by_id.get(entity_id)
        if existing is not None and not existing.removed:
            raise ValueError(f"{entity_id} already exists")
        if device_id is not None and all(d.id != device_id for d in self.home.devices):
            raise KeyError(device_id)
        self._check_area(area_id)
        ent = existing or self._new_entity(entity_id, platform, register=register)
        ent.device_id = device_id
        ent.area_id = area_id
        if register:
            ent.registered = True
            self._fire("entity_registry_updated", {"action": "create", "entity_id": entity_id})
        self.set_state(entity_id, state, attributes)

    def remove_entity(self, entity_id: str, *, unregister: bool = True) -> None:
        """Remove an entity: registry ``remove`` (if registered), then new_state null."""
        ent = self._by_id.get(entity_id)
        if ent is None or ent.removed:
            raise KeyError(entity_id)
        if unregister and ent.registered:
            ent.registered = False
            self._fire("entity_registry_updated", {"action": "remove", "entity_id": entity_id})
        self._remove_state(ent)
        self._after_batch()

    def move_entity(self, entity_id: str, area_id: str | None) -> None:
        """Set the entity's own area; fires ``update`` with the *old* area in ``changes``."""
        ent = self._by_id.get(entity_id)
        if ent is None or not ent.registered:
            raise KeyError(entity_id)
        self._check_area(area_id)
        old, ent.area_id = ent.area_id, area_id
        self._fire(
            "entity_registry_updated",
            {"action": "update", "entity_id": entity_id, "changes": {"area_id": old}},
        )

    def move_device(self, device_id: str, area_id: str | None) -> None:
        """Set a device's area; fires ``device_registry_updated`` with the old area."""
        device = next((d for d in self.home.devices if d.id == device_id), None)
        if device is None:
            raise KeyError(device_id)
        self._check_area(area_id)
        old, device.area_id = device.area_id, area_id
        self._fire(
            "device_registry_updated",
            {"action": "update", "device_id": device_id, "changes": {"area_id": old}},
        )

    def create_area(
        self, name: str, *, floor_id: str | None = None, area_id: str | None = None
    ) -> str:
        """Add an area (``area_registry_updated`` create); returns its id."""
        area_id = area_id or slugify(name)
        if any(a.area_id == area_id for a in self.home.areas):
            raise ValueError(f"area {area_id} exists")
        if floor_id is not None and all(f.floor_id != floor_id for f in self.home.floors):
            raise KeyError(floor_id)
        self.home.areas.append(Area(area_id, name, floor_id))
        self._fire("area_registry_updated", {"action": "create", "area_id": area_id})
        return area_id

    def create_floor(self, name: str, level: int, *, floor_id: str | None = None) -> str:
        """Add a floor (``floor_registry_updated`` create); returns its id."""
        floor_id = floor_id or slugify(name)
        if any(f.floor_id == floor_id for f in self.home.floors):
            raise ValueError(f"floor {floor_id} exists")
        self.home.floors.append(Floor(floor_id, name, level))
        self._fire("floor_registry_updated", {"action": "create", "floor_id": floor_id})
        return floor_id

    def _new_entity(self, entity_id: str, platform: str, *, register: bool) -> Entity:
        ent = Entity(entity_id, K_STATIC, platform)
        ent.eid_b = orjson.dumps(entity_id)[1:-1]
        ent.idx = len(self._entities)
        ent.registered = register
        ent.removed = True
        ent.original_name = entity_id.partition(".")[2].replace("_", " ").capitalize()
        ent.unique_id = f"sim-{ent.idx}"
        ent.reg_id = f"{random.Random(self.seed * 1_000_003 + ent.idx).getrandbits(128):032x}"
        self._entities.append(ent)
        self._by_id[entity_id] = ent
        return ent

    def _check_area(self, area_id: str | None) -> None:
        if area_id is not None and all(a.area_id != area_id for a in self.home.areas):
            raise KeyError(area_id)
