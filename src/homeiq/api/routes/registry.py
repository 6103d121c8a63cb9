"""The registry: entities, devices, areas and floors as Home Assistant last listed them,
with filters and relationships.

Served from the in-memory registry (kept live by registry sync), so no request touches
the database. An entity's ``area_id`` is its effective area: its own, else its device's
(what enrichment stores with each event); ``own_area_id`` tells which it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from homeiq.api.auth import require
from homeiq.api.context import RegistryDep
from homeiq.api.errors import ApiError, error_responses
from homeiq.model import Area, Device, Entity, Floor, RegistrySnapshot

router = APIRouter(
    prefix="/api/v1/registry",
    tags=["registry"],
    dependencies=[Depends(require("read"))],
    responses=error_responses(401, 403, 413, 414, 422, 429, 500),
)

AreaId = Annotated[str, Path(min_length=1, max_length=255, examples=["kitchen"])]
DeviceId = Annotated[
    str, Path(min_length=1, max_length=255, examples=["8f3b2c1d9e7a4b6c8d0e1f2a3b4c5d6e"])
]
Filter = Annotated[str | None, Query(min_length=1, max_length=255)]
# Items per list answer; a home has hundreds to a few thousand entities, so paging is
# only for the largest, but no answer is unbounded.
PAGE_MAX = 5000
Limit = Annotated[int, Query(ge=1, le=PAGE_MAX, description="Items per answer, at most 5,000.")]
After = Annotated[
    str | None,
    Query(min_length=1, max_length=255, description="`next_cursor` of the previous page."),
]
T = TypeVar("T")


def _page(
    items: Sequence[T], key: Callable[[T], str], limit: int, cursor: str | None
) -> tuple[list[T], str | None]:
    """Items (sorted by ``key``) after ``cursor``, at most ``limit``, and the cursor of
    the next page (None on the last)."""
    after = [i for i in items if cursor is None or key(i) > cursor]
    page = after[:limit]
    return page, key(page[-1]) if len(after) > limit else None


class FloorOut(BaseModel):
    """A floor."""

    floor_id: str
    name: str
    level: int | None


class AreaOut(BaseModel):
    """An area."""

    area_id: str
    name: str
    floor_id: str | None


class DeviceOut(BaseModel):
    """A device."""

    device_id: str
    name: str | None
    manufacturer: str | None
    model: str | None
    area_id: str | None
    floor_id: str | None
    entity_count: int = Field(description="Entities registered on this device.")


class EntityOut(BaseModel):
    """An entity with its effective placement."""

    entity_id: str
    domain: str
    name: str | None
    platform: str | None = Field(description="The integration that provides it.")
    device_id: str | None
    area_id: str | None = Field(description="Its own area, else its device's.")
    own_area_id: str | None = Field(description="The area set on the entity itself.")
    floor_id: str | None


class FloorList(BaseModel):
    """Floors, by id, a page at a time."""

    items: list[FloorOut]
    count: int = Field(description="Items matching, on every page together.")
    next_cursor: str | None = Field(description="Pass back as `cursor` for the next page.")


class AreaList(BaseModel):
    """Areas, by id, a page at a time."""

    items: list[AreaOut]
    count: int = Field(description="Items matching, on every page together.")
    next_cursor: str | None = Field(description="Pass back as `cursor` for the next page.")


class DeviceList(BaseModel):
    """Devices, by id, a page at a time."""

    items: list[DeviceOut]
    count: int = Field(description="Items matching, on every page together.")
    next_cursor: str | None = Field(description="Pass back as `cursor` for the next page.")


class EntityList(BaseModel):
    """Entities, by id, a page at a time."""

    items: list[EntityOut]
    count: int = Field(description="Items matching, on every page together.")
    next_cursor: str | None = Field(description="Pass back as `cursor` for the next page.")


class DeviceDetail(DeviceOut):
    """A device and its entities."""

    entities: list[EntityOut]


class AreaDetail(AreaOut):
    """An area, the devices in it and every entity placed in it."""

    devices: list[DeviceOut]
    entities: list[EntityOut]


class _View:
    """One snapshot's lookups, built per request (a few thousand entries at most);
    everything sorted by id, whatever order Home Assistant listed it in."""

    def __init__(self, source: RegistrySnapshot) -> None:
        snapshot = RegistrySnapshot(
            floors=tuple(sorted(source.floors, key=lambda f: f.floor_id)),
            areas=tuple(sorted(source.areas, key=lambda a: a.area_id)),
            devices=tuple(sorted(source.devices, key=lambda d: d.device_id)),
            entities=tuple(sorted(source.entities, key=lambda e: e.entity_id)),
        )
        self.snapshot = snapshot
        self.area_floor = {a.area_id: a.floor_id for a in snapshot.areas}
        self.device_area = {d.device_id: d.area_id for d in snapshot.devices}
        self.entity_count: dict[str, int] = {}
        for e in snapshot.entities:
            if e.device_id is not None:
                self.entity_count[e.device_id] = self.entity_count.get(e.device_id, 0) + 1

    def floor(self, f: Floor) -> FloorOut:
        return FloorOut(floor_id=f.floor_id, name=f.name, level=f.level)

    def area(self, a: Area) -> AreaOut:
        return AreaOut(area_id=a.area_id, name=a.name, floor_id=a.floor_id)

    def device(self, d: Device) -> DeviceOut:
        return DeviceOut(
            device_id=d.device_id,
            name=d.name,
            manufacturer=d.manufacturer,
            model=d.model,
            area_id=d.area_id,
            floor_id=self.area_floor.get(d.area_id) if d.area_id is not None else None,
            entity_count=self.entity_count.get(d.device_id, 0),
        )

    def entity(self, e: Entity) -> EntityOut:
        area_id = e.area_id
        if area_id is None and e.device_id is not None:
            area_id = self.device_area.get(e.device_id)
        return EntityOut(
            entity_id=e.entity_id,
            domain=e.entity_id.partition(".")[0],
            name=e.name,
            platform=e.platform,
            device_id=e.device_id,
            area_id=area_id,
            own_area_id=e.area_id,
            floor_id=self.area_floor.get(area_id) if area_id is not None else None,
        )


@router.get("/floors", summary="List floors")
async def list_floors(
    registry: RegistryDep, limit: Limit = PAGE_MAX, cursor: After = None
) -> FloorList:
    """Every floor (5,000 per page at most)."""
    view = _View(registry.snapshot)
    items = [view.floor(f) for f in view.snapshot.floors]
    page, after = _page(items, lambda f: f.floor_id, limit, cursor)
    return FloorList(items=page, count=len(items), next_cursor=after)


@router.get("/areas", summary="List areas")
async def list_areas(
    registry: RegistryDep, floor: Filter = None, limit: Limit = PAGE_MAX, cursor: After = None
) -> AreaList:
    """Every area, or those on one floor (5,000 per page at most)."""
    view = _View(registry.snapshot)
    items = [view.area(a) for a in view.snapshot.areas if floor is None or a.floor_id == floor]
    page, after = _page(items, lambda a: a.area_id, limit, cursor)
    return AreaList(items=page, count=len(items), next_cursor=after)


@router.get("/areas/{area_id}", summary="One area", responses=error_responses(404))
async def get_area(registry: RegistryDep, area_id: AreaId) -> AreaDetail:
    """An area with its devices and every entity placed in it (directly or by device)."""
    view = _View(registry.snapshot)
    found = next((a for a in view.snapshot.areas if a.area_id == area_id), None)
    if found is None:
        raise ApiError(404, f"no area {area_id!r}")
    devices = [view.device(d) for d in view.snapshot.devices if d.area_id == area_id]
    entities = [view.entity(e) for e in view.snapshot.entities]
    return AreaDetail(
        **view.area(found).model_dump(),
        devices=devices,
        entities=[e for e in entities if e.area_id == area_id],
    )


@router.get("/devices", summary="List devices")
async def list_devices(
    registry: RegistryDep,
    area: Filter = None,
    floor: Filter = None,
    limit: Limit = PAGE_MAX,
    cursor: After = None,
) -> DeviceList:
    """Every device, or those in one area or on one floor (5,000 per page at most)."""
    view = _View(registry.snapshot)
    items = [
        d
        for d in map(view.device, view.snapshot.devices)
        if (area is None or d.area_id == area) and (floor is None or d.floor_id == floor)
    ]
    page, after = _page(items, lambda d: d.device_id, limit, cursor)
    return DeviceList(items=page, count=len(items), next_cursor=after)


@router.get("/devices/{device_id}", summary="One device", responses=error_responses(404))
async def get_device(registry: RegistryDep, device_id: DeviceId) -> DeviceDetail:
    """A device with its entities."""
    view = _View(registry.snapshot)
    found = next((d for d in view.snapshot.devices if d.device_id == device_id), None)
    if found is None:
        raise ApiError(404, f"no device {device_id!r}")
    entities = [view.entity(e) for e in view.snapshot.entities if e.device_id == device_id]
    return DeviceDetail(**view.device(found).model_dump(), entities=entities)


@router.get("/entities", summary="List entities")
async def list_entities(
    registry: RegistryDep,
    area: Filter = None,
    device: Filter = None,
    domain: Filter = None,
    platform: Filter = None,
    floor: Filter = None,
    limit: Limit = PAGE_MAX,
    cursor: After = None,
) -> EntityList:
    """Every entity, filtered by effective area, device, domain (`light`), platform
    (the integration, e.g. `hue`) or floor; filters combine. 5,000 per page at most."""
    view = _View(registry.snapshot)
    items = [
        e
        for e in map(view.entity, view.snapshot.entities)
        if (area is None or e.area_id == area)
        and (device is None or e.device_id == device)
        and (domain is None or e.domain == domain)
        and (platform is None or e.platform == platform)
        and (floor is None or e.floor_id == floor)
    ]
    page, after = _page(items, lambda e: e.entity_id, limit, cursor)
    return EntityList(items=page, count=len(items), next_cursor=after)
