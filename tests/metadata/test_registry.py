"""Placement rules: entity_id -> device, area, floor from the Home Assistant registries."""

from __future__ import annotations

from homeiq.metadata.registry import Registry, placements
from homeiq.model import NO_PLACEMENT, Area, Device, Entity, Floor, Placement, RegistrySnapshot

FLOORS = (Floor("ground", "Ground", 0), Floor("first", "First", 1))
AREAS = (
    Area("kitchen", "Kitchen", "ground"),
    Area("bedroom", "Bedroom", "first"),
    Area("shed", "Shed", None),
)
DEVICES = (
    Device("dev-kitchen", "Fridge", "kitchen"),
    Device("dev-shed", "Mower", "shed"),
    Device("dev-nowhere", "Loose"),
)


def snapshot(*entities: Entity) -> RegistrySnapshot:
    return RegistrySnapshot(floors=FLOORS, areas=AREAS, devices=DEVICES, entities=entities)


def test_entity_area_overrides_device_area() -> None:
    result = placements(
        snapshot(Entity("sensor.fridge", device_id="dev-kitchen", area_id="bedroom"))
    )
    assert result["sensor.fridge"] == Placement("dev-kitchen", "bedroom", "first")


def test_device_area_used_when_entity_has_none() -> None:
    result = placements(snapshot(Entity("sensor.fridge", device_id="dev-kitchen")))
    assert result["sensor.fridge"] == Placement("dev-kitchen", "kitchen", "ground")


def test_floor_comes_from_the_area() -> None:
    result = placements(
        snapshot(
            Entity("light.bed", area_id="bedroom"),
            Entity("light.shed", area_id="shed"),
            Entity("light.ghost", area_id="unknown-area"),
        )
    )
    assert result["light.bed"] == Placement(None, "bedroom", "first")
    assert result["light.shed"] == Placement(None, "shed", None)
    assert result["light.ghost"] == Placement(None, "unknown-area", None)


def test_device_without_area_gives_device_only() -> None:
    result = placements(
        snapshot(
            Entity("switch.loose", device_id="dev-nowhere"),
            Entity("switch.orphan", device_id="dev-not-in-registry"),
        )
    )
    assert result["switch.loose"] == Placement("dev-nowhere", None, None)
    assert result["switch.orphan"] == Placement("dev-not-in-registry", None, None)


def test_entities_with_neither_device_nor_area_are_omitted() -> None:
    result = placements(snapshot(Entity("sun.sun"), Entity("light.bed", area_id="bedroom")))
    assert set(result) == {"light.bed"}


def test_empty_snapshot() -> None:
    assert placements(RegistrySnapshot()) == {}


def test_registry_lookup_and_unknown_entity() -> None:
    registry = Registry(
        snapshot(Entity("sensor.fridge", device_id="dev-kitchen"), Entity("sun.sun"))
    )
    assert registry.placement_of("sensor.fridge") == Placement("dev-kitchen", "kitchen", "ground")
    assert registry.placement_of("sun.sun") is NO_PLACEMENT
    assert registry.placement_of("sensor.never_registered") is NO_PLACEMENT
    assert Placement(None, None, None) == NO_PLACEMENT


def test_empty_registry() -> None:
    registry = Registry()
    assert registry.snapshot == RegistrySnapshot()
    assert registry.placement_of("sensor.x") is NO_PLACEMENT


def test_update_swaps_in_the_new_snapshot() -> None:
    registry = Registry(snapshot(Entity("sensor.fridge", device_id="dev-kitchen")))
    moved = RegistrySnapshot(
        floors=FLOORS,
        areas=AREAS,
        devices=(Device("dev-kitchen", "Fridge", "shed"),),
        entities=(
            Entity("sensor.fridge", device_id="dev-kitchen"),
            Entity("light.new", area_id="kitchen"),
        ),
    )
    registry.update(moved)
    assert registry.snapshot is moved
    assert registry.placement_of("sensor.fridge") == Placement("dev-kitchen", "shed", None)
    assert registry.placement_of("light.new") == Placement(None, "kitchen", "ground")
    registry.update(RegistrySnapshot())
    assert registry.placement_of("sensor.fridge") is NO_PLACEMENT
