"""Home Assistant registries -> metadata.db and the in-memory lookups.

The four ``config/*_registry/list`` commands are read at every connect and again after
any ``*_registry_updated`` event. A re-list rather than applying the event: HA's update
events carry the *previous* values in ``changes``, not the new ones, so the event alone
cannot say where an entity went. Bursts of registry events are coalesced into one sync.
Parsing is lenient: fields vary by HA version, and an entry we cannot use is skipped
with a log line rather than failing the whole sync.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from homeiq.errors import HomeIQError, ProtocolError
from homeiq.ha.client import HAConnection
from homeiq.metadata.registry import Registry
from homeiq.metadata.store import MetadataStore
from homeiq.model import Area, Device, Entity, Floor, RegistrySnapshot
from homeiq.observability.logging import cancel_and_wait

log = logging.getLogger(__name__)

T = TypeVar("T")
DEBOUNCE_S = 0.5


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _floor(raw: dict[str, Any]) -> Floor:
    level = raw.get("level")
    return Floor(
        raw["floor_id"],
        _str(raw.get("name")) or raw["floor_id"],
        level if isinstance(level, int) else None,
    )


def _area(raw: dict[str, Any]) -> Area:
    area_id = raw.get("area_id") or raw["id"]
    return Area(area_id, _str(raw.get("name")) or area_id, _str(raw.get("floor_id")))


def _device(raw: dict[str, Any]) -> Device:
    return Device(
        raw["id"],
        _str(raw.get("name_by_user")) or _str(raw.get("name")),
        _str(raw.get("area_id")),
        _str(raw.get("manufacturer")),
        _str(raw.get("model")),
    )


def _entity(raw: dict[str, Any]) -> Entity:
    return Entity(
        raw["entity_id"],
        _str(raw.get("device_id")),
        _str(raw.get("area_id")),
        _str(raw.get("platform")),
        _str(raw.get("name")) or _str(raw.get("original_name")),
    )


def _parse(kind: str, items: Any, parse: Callable[[dict[str, Any]], T]) -> tuple[T, ...]:
    if not isinstance(items, list):
        raise ProtocolError(f"{kind} list is {type(items).__name__}, not a list")
    parsed: list[T] = []
    for item in items:
        try:
            if not isinstance(item, dict):
                raise TypeError("not an object")
            parsed.append(parse(item))
        except (KeyError, TypeError) as exc:
            log.warning("skipping unusable %s entry %.200r: %s", kind, item, exc)
    return tuple(parsed)


def parse_snapshot(floors: Any, areas: Any, devices: Any, entities: Any) -> RegistrySnapshot:
    """Build a snapshot from the four list results, skipping unusable entries."""
    return RegistrySnapshot(
        floors=_parse("floor", floors, _floor),
        areas=_parse("area", areas, _area),
        devices=_parse("device", devices, _device),
        entities=_parse("entity", entities, _entity),
    )


async def fetch_snapshot(conn: HAConnection) -> RegistrySnapshot:
    """List the four registries over ``conn``."""
    try:
        floors = await conn.command({"type": "config/floor_registry/list"})
    except ProtocolError:  # before HA 2024.3 there is no floor registry
        floors = []
    areas = await conn.command({"type": "config/area_registry/list"})
    devices = await conn.command({"type": "config/device_registry/list"})
    entities = await conn.command({"type": "config/entity_registry/list"})
    return parse_snapshot(floors, areas, devices, entities)


class RegistrySync:
    """Keeps metadata.db and the in-memory :class:`Registry` equal to HA's registries."""

    def __init__(self, metadata: MetadataStore, registry: Registry) -> None:
        self.metadata = metadata
        self.registry = registry
        self.synced = asyncio.Event()
        self.syncs = 0
        self._conn: HAConnection | None = None
        self._pending: asyncio.Task[None] | None = None

    async def on_connected(self, conn: HAConnection) -> None:
        """Full sync at connect (the client calls this before subscribing to states)."""
        self._conn = conn
        await self.sync(conn)

    async def sync(self, conn: HAConnection) -> None:
        """Fetch, store and swap in the registries."""
        snapshot = await fetch_snapshot(conn)
        await asyncio.to_thread(self.metadata.replace_registry, snapshot)
        self.registry.update(snapshot)
        self.syncs += 1
        self.synced.set()
        log.info(
            "registry synced: %d entities, %d devices, %d areas, %d floors",
            len(snapshot.entities),
            len(snapshot.devices),
            len(snapshot.areas),
            len(snapshot.floors),
        )

    def on_registry_event(self, event_type: str) -> None:
        """Schedule one re-sync for a burst of registry events."""
        if self._pending is None or self._pending.done():
            self._pending = asyncio.create_task(self._resync(event_type), name="registry-resync")

    async def _resync(self, event_type: str) -> None:
        await asyncio.sleep(DEBOUNCE_S)
        conn = self._conn
        if conn is None:
            return
        try:
            await self.sync(conn)
        except HomeIQError as exc:  # the next connect syncs again
            log.warning("registry re-sync after %s failed: %s", event_type, exc)

    async def close(self) -> None:
        """Cancel a pending re-sync."""
        if self._pending is not None:
            await cancel_and_wait(self._pending)
