"""What the API needs from the process that hosts it, and the dependencies routes use.

The API sits below the runtime (DESIGN §4: cli -> runtime -> api), so it never imports
:class:`homeiq.runtime.Runtime`; it declares the parts it uses as a protocol the runtime
satisfies. A data router gets its stores through the dependencies at the bottom::

    from homeiq.api.context import Metadata, Reader, RegistryDep

    @router.get("/events")
    async def events(reader: Reader) -> ...: ...

Read-only protocol members (properties) let the runtime's plain attributes, including
ones typed more narrowly (an ``HAClient``), satisfy them.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Protocol, cast

from fastapi import Depends, Request

from homeiq.maintenance.alerts import Alerts
from homeiq.maintenance.backup.schedule import BackupScheduler
from homeiq.maintenance.backup.service import BackupService
from homeiq.maintenance.quality import QualityTracker
from homeiq.maintenance.rollups import RollupStore
from homeiq.maintenance.statistics import RollupMaintainer
from homeiq.metadata.registry import Registry
from homeiq.metadata.store import MetadataStore
from homeiq.observability.metrics import Metrics
from homeiq.observability.resources import ResourceWatch
from homeiq.pipeline.breaker import CircuitBreaker
from homeiq.pipeline.delivery import Delivery
from homeiq.pipeline.normalize import Normalizer
from homeiq.pipeline.queue import EventQueue
from homeiq.pipeline.spool import Spool
from homeiq.settings import Settings
from homeiq.sinks.base import EventReader


class HAConnectionView(Protocol):
    """An open Home Assistant connection, as far as health reports need it."""

    @property
    def ha_version(self) -> str | None:
        """The version Home Assistant reported at authentication."""


class HAClientView(Protocol):
    """The Home Assistant client, as far as health and readiness need it."""

    @property
    def connected(self) -> asyncio.Event:
        """Set while subscribed to Home Assistant."""

    @property
    def connection(self) -> HAConnectionView | None:
        """The current connection, if any."""


class ApiHost(Protocol):
    """The process the API runs in: :class:`homeiq.runtime.Runtime` satisfies this."""

    @property
    def settings(self) -> Settings:
        """The effective settings."""

    @property
    def metrics(self) -> Metrics:
        """The process's metrics (the API adds its own to the same registry)."""

    @property
    def metadata(self) -> MetadataStore:
        """metadata.db: registry, dead letters, API keys."""

    @property
    def registry(self) -> Registry:
        """The live, in-memory registry."""

    @property
    def reader(self) -> EventReader:
        """Queries over the event store."""

    @property
    def queue(self) -> EventQueue:
        """The reader-writer queue (depth for health)."""

    @property
    def spool(self) -> Spool:
        """The outage spool (size for health)."""

    @property
    def breaker(self) -> CircuitBreaker:
        """The event store's circuit breaker."""

    @property
    def delivery(self) -> Delivery:
        """The path into the store that dead-letter re-drive uses."""

    @property
    def normalizer(self) -> Normalizer:
        """The normalizer that re-driven dead letters go through again."""

    @property
    def client(self) -> HAClientView | None:
        """The Home Assistant client; None when this process has no source."""

    @property
    def gaps(self) -> object | None:
        """The gap filler; None when backfill is off or there is no source."""

    @property
    def writing(self) -> bool:
        """True while the writer runs."""

    @property
    def rollups(self) -> RollupStore:
        """rollups.db: the buckets statistics are answered from."""

    @property
    def rollup_maintainer(self) -> RollupMaintainer:
        """Keeps the rollups current; rebuilds ranges on request."""

    @property
    def alerts(self) -> Alerts:
        """The alert engine: active alerts and their history."""

    @property
    def resources(self) -> ResourceWatch:
        """The resource watch: CPU, memory, disk, events per second."""

    @property
    def backups(self) -> BackupService:
        """Backup operations: create, list, verify."""

    @property
    def backup_scheduler(self) -> BackupScheduler:
        """The backup schedule (its status for health)."""

    @property
    def quality(self) -> QualityTracker:
        """Data quality measured on the stored events."""


def host_of(request: Request) -> ApiHost:
    """The host stored on the app by :func:`homeiq.api.app.create_app`."""
    return cast(ApiHost, request.app.state.host)


# Dependencies are coroutines on purpose: FastAPI runs plain functions in a worker
# thread pool, a thread hop per request for what is an attribute read.


async def get_host(request: Request) -> ApiHost:
    """Dependency: the hosting process."""
    return host_of(request)


async def get_settings(request: Request) -> Settings:
    """Dependency: the effective settings."""
    return host_of(request).settings


async def get_reader(request: Request) -> EventReader:
    """Dependency: the event store's reader (history, summaries, ...)."""
    return host_of(request).reader


async def get_metadata(request: Request) -> MetadataStore:
    """Dependency: metadata.db (synchronous: call it with ``asyncio.to_thread``)."""
    return host_of(request).metadata


async def get_registry(request: Request) -> Registry:
    """Dependency: the live registry (``.snapshot`` holds floors, areas, devices, entities)."""
    return host_of(request).registry


async def get_rollups(request: Request) -> RollupStore:
    """Dependency: rollups.db (synchronous: call it with ``asyncio.to_thread``)."""
    return host_of(request).rollups


Host = Annotated[ApiHost, Depends(get_host)]
Rollups = Annotated[RollupStore, Depends(get_rollups)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
Reader = Annotated[EventReader, Depends(get_reader)]
Metadata = Annotated[MetadataStore, Depends(get_metadata)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
