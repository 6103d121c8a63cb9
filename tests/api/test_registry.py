"""The registry endpoints: lists with filters, effective areas (an entity's own area
beats its device's), and the relationships (a device's entities, an area's devices)."""

from __future__ import annotations

from typing import Any

import pytest

from homeiq.model import Area, RegistrySnapshot
from tests.api.conftest import SNAPSHOT, Api, assert_error


async def get(api: Api, path: str, **params: str) -> dict[str, Any]:
    response = await api.client.get(path, params=params, headers=api.keys.auth("read"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(body: dict[str, Any], key: str) -> list[str]:
    assert body["count"] == len(body["items"])
    return [item[key] for item in body["items"]]


async def test_floors(api: Api) -> None:
    body = await get(api, "/api/v1/registry/floors")
    assert body == {
        "items": [
            {"floor_id": "ground", "name": "Ground floor", "level": 0},
            {"floor_id": "upstairs", "name": "Upstairs", "level": 1},
        ],
        "count": 2,
        "next_cursor": None,
    }


async def test_areas_and_the_floor_filter(api: Api) -> None:
    body = await get(api, "/api/v1/registry/areas")
    assert body["items"][0] == {"area_id": "bedroom", "name": "Bedroom", "floor_id": "upstairs"}
    assert ids(body, "area_id") == ["bedroom", "garage", "kitchen"]
    assert ids(await get(api, "/api/v1/registry/areas", floor="ground"), "area_id") == ["kitchen"]
    assert ids(await get(api, "/api/v1/registry/areas", floor="attic"), "area_id") == []


async def test_devices_with_floor_and_entity_count(api: Api) -> None:
    body = await get(api, "/api/v1/registry/devices")
    by_id = {d["device_id"]: d for d in body["items"]}
    assert by_id["dev_lamp"] == {
        "device_id": "dev_lamp",
        "name": "Bedside lamp",
        "manufacturer": "Signify",
        "model": "LCT015",
        "area_id": "bedroom",
        "floor_id": "upstairs",
        "entity_count": 2,
    }
    assert by_id["dev_hub"]["area_id"] is None and by_id["dev_hub"]["floor_id"] is None
    assert ids(await get(api, "/api/v1/registry/devices", area="kitchen"), "device_id") == [
        "dev_fridge"
    ]
    upstairs = await get(api, "/api/v1/registry/devices", floor="upstairs")
    assert ids(upstairs, "device_id") == ["dev_lamp"]


async def test_entities_carry_their_effective_placement(api: Api) -> None:
    body = await get(api, "/api/v1/registry/entities")
    by_id = {e["entity_id"]: e for e in body["items"]}
    assert len(by_id) == len(SNAPSHOT.entities)
    assert by_id["light.bedside"] == {
        "entity_id": "light.bedside",
        "domain": "light",
        "name": "Bedside",
        "platform": "hue",
        "device_id": "dev_lamp",
        "area_id": "bedroom",  # from its device
        "own_area_id": None,
        "floor_id": "upstairs",
    }
    nightlight = by_id["light.lamp_nightlight"]
    assert (nightlight["area_id"], nightlight["own_area_id"]) == ("kitchen", "kitchen")
    assert nightlight["floor_id"] == "ground"  # the entity's area's floor, not the device's
    assert by_id["sun.sun"]["area_id"] is None and by_id["sun.sun"]["device_id"] is None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"domain": "light"}, ["light.bedside", "light.lamp_nightlight"]),
        ({"area": "kitchen"}, ["light.lamp_nightlight", "sensor.fridge_temperature"]),
        ({"area": "bedroom"}, ["light.bedside"]),
        ({"device": "dev_lamp"}, ["light.bedside", "light.lamp_nightlight"]),
        ({"platform": "acme"}, ["sensor.fridge_temperature", "sensor.hub_uptime"]),
        ({"floor": "ground"}, ["light.lamp_nightlight", "sensor.fridge_temperature"]),
        (
            {"domain": "sensor", "platform": "acme", "area": "kitchen"},
            ["sensor.fridge_temperature"],
        ),
        ({"domain": "climate"}, []),
    ],
)
async def test_entity_filters_combine(
    api: Api, params: dict[str, str], expected: list[str]
) -> None:
    body = await get(api, "/api/v1/registry/entities", **params)
    assert sorted(ids(body, "entity_id")) == expected


async def test_a_device_with_its_entities(api: Api) -> None:
    body = await get(api, "/api/v1/registry/devices/dev_lamp")
    assert body["device_id"] == "dev_lamp"
    assert body["entity_count"] == 2
    assert [e["entity_id"] for e in body["entities"]] == ["light.bedside", "light.lamp_nightlight"]
    assert {e["area_id"] for e in body["entities"]} == {"bedroom", "kitchen"}


async def test_an_area_with_its_devices_and_every_entity_placed_in_it(api: Api) -> None:
    body = await get(api, "/api/v1/registry/areas/kitchen")
    assert (body["area_id"], body["name"], body["floor_id"]) == ("kitchen", "Kitchen", "ground")
    assert [d["device_id"] for d in body["devices"]] == ["dev_fridge"]
    # The night light's device is in the bedroom, but the entity itself is in the kitchen.
    assert [e["entity_id"] for e in body["entities"]] == [
        "light.lamp_nightlight",
        "sensor.fridge_temperature",
    ]
    garage = await get(api, "/api/v1/registry/areas/garage")
    assert garage["devices"] == []
    assert [e["entity_id"] for e in garage["entities"]] == ["switch.garage_door"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/api/v1/registry/devices/dev_toaster", "no device 'dev_toaster'"),
        ("/api/v1/registry/areas/attic", "no area 'attic'"),
    ],
)
async def test_unknown_ids_are_404(api: Api, path: str, message: str) -> None:
    response = await api.client.get(path, headers=api.keys.auth("read"))
    assert assert_error(response, 404, "not_found")["message"] == message


async def test_the_registry_is_live(api: Api) -> None:
    """Registry sync swaps the in-memory registry; the API serves the new one at once."""
    api.runtime.registry.update(RegistrySnapshot(areas=(Area("loft", "Loft", None),)))
    body = await get(api, "/api/v1/registry/areas")
    assert ids(body, "area_id") == ["loft"]
    assert (await get(api, "/api/v1/registry/entities"))["count"] == 0
