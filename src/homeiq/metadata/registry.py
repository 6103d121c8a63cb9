"""In-memory registry lookups for enrichment: entity_id -> device, area, floor.

Rebuilt whole from a :class:`~homeiq.model.RegistrySnapshot` (a few thousand entries at
most), and swapped in one assignment so the hot path never sees a half-built map.
"""

from __future__ import annotations

from homeiq.model import NO_PLACEMENT, Placement, RegistrySnapshot


def placements(snapshot: RegistrySnapshot) -> dict[str, Placement]:
    """Each registered entity's placement; an entity's own area overrides its device's."""
    device_area = {d.device_id: d.area_id for d in snapshot.devices}
    area_floor = {a.area_id: a.floor_id for a in snapshot.areas}
    result: dict[str, Placement] = {}
    for entity in snapshot.entities:
        area_id = entity.area_id
        if area_id is None and entity.device_id is not None:
            area_id = device_area.get(entity.device_id)
        floor_id = area_floor.get(area_id) if area_id is not None else None
        if entity.device_id is None and area_id is None:
            continue
        result[entity.entity_id] = Placement(entity.device_id, area_id, floor_id)
    return result


class Registry:
    """The current registry and the placement of every entity in it."""

    def __init__(self, snapshot: RegistrySnapshot | None = None) -> None:
        self.snapshot = snapshot or RegistrySnapshot()
        self._placements = placements(self.snapshot)

    def update(self, snapshot: RegistrySnapshot) -> None:
        """Replace the registry with a newer snapshot."""
        new = placements(snapshot)
        self.snapshot, self._placements = snapshot, new

    def placement_of(self, entity_id: str) -> Placement:
        """Where ``entity_id`` sits now; empty when the registry does not know it."""
        return self._placements.get(entity_id, NO_PLACEMENT)
