"""Stores are chosen here, and only here: a store name maps to its :class:`Backend`.

A backend builds what HomeIQ needs from one store: the sink (writes), the reader
(queries), a read-only reader for one-off commands, and the part of a backup that is the
store's own (:class:`BackupPart`: the SQLite store has none, its events.db is one of the
data directory's databases). No other module compares ``settings.store``::

    from homeiq.sinks import registry

    backend = registry.backend(settings)        # ConfigError for an unknown store
    sink, reader = backend.open_sink(), backend.open_reader()
    eraser = backend.eraser(sink)               # deletes, once the sink is open

Each store's folder registers itself (``@registry.add`` on its backend class, in its
``backend.py``), the way Telegraf's outputs call ``outputs.Add``; :data:`STORES` below
says which module holds each store's backend, so only the chosen store is imported.
Adding a store is one new folder (with its ``backend.py`` and README.md) and one line
in :data:`STORES` (and its name in the ``store`` setting's choices).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from homeiq.errors import ConfigError
from homeiq.settings import Settings
from homeiq.sinks.base import Eraser, EventReader, RawRetention, Sink

STORES: dict[str, str] = {  # store name -> the module whose import registers its backend
    "sqlite": "homeiq.sinks.sqlite.backend",
    "influxdb": "homeiq.sinks.influxdb.backend",
}

Progress = Callable[[str, int, int | None], None]
"""``progress(step, done, total)``, as the backup reports a long step (total None: unknown)."""


@dataclass(frozen=True, slots=True)
class ExportedFile:
    """One file a store's backup part wrote: its path, its manifest kind and details."""

    path: Path
    kind: str
    info: dict[str, Any]


class BackupPart(Protocol):
    """A store's own part of a backup, for a store whose data is not in the data dir."""

    async def export(
        self, content: Path, progress: Progress
    ) -> tuple[list[ExportedFile], dict[str, Any]]:
        """Write the store's data under ``content``; the files, and the events summary of
        the manifest (``count``, ``first_time_us``, ``last_time_us``)."""

    def destination(self, database: str | None) -> str:
        """Where a restore writes, in words (``InfluxDB database homeiq``)."""

    async def test_restore(self, path: Path, info: dict[str, Any]) -> str:
        """Restore ``path`` into a scratch place, compare with ``info`` and remove it; what
        was checked. BackupError saying what differs."""

    async def restore(
        self, path: Path, database: str | None, aside: Path, progress: Progress
    ) -> None:
        """Restore ``path`` into the store (``database``: another than the configured one);
        data already there is kept in ``aside`` first."""


class Backend(ABC):
    """One store: what opens its sink and readers, and its part of a backup."""

    #: The store's name, as ``HOMEIQ_STORE`` spells it.
    name: ClassVar[str]
    #: The SQLite file of the data directory that holds the events, if the store keeps
    #: them there (the backup counts events from its snapshot).
    events_db: ClassVar[str | None] = None
    #: Manifest kinds of archive members only this store's backup part restores.
    archive_kinds: ClassVar[tuple[str, ...]] = ()

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @abstractmethod
    def open_sink(self) -> Sink:
        """The sink for the pipeline (not yet opened: the writer opens it)."""

    @abstractmethod
    def open_reader(self) -> EventReader:
        """The reader for a long-running process (the API, rollups)."""

    @abstractmethod
    def eraser(self, sink: Sink) -> Eraser:
        """What deletes this store's events (purge, cleanup), given the open ``sink`` that
        this backend's :meth:`open_sink` made: SQLite deletes through its one writer,
        between write batches. TypeError for another store's sink."""

    def raw_retention(self, sink: Sink) -> RawRetention | None:
        """The store's own expiry of old events, if it has one HomeIQ can set."""
        return None

    def open_reader_readonly(self) -> EventReader:
        """A reader for one command that never writes (``homeiq query``...); close it after.

        ConfigError when there is nothing to read yet, naming the setting to check.
        """
        return self.open_reader()

    def backup_part(self) -> BackupPart | None:
        """The store's own part of a backup; None when the data directory holds it all."""
        return None


B = TypeVar("B", bound=type[Backend])
_BACKENDS: dict[str, type[Backend]] = {}


def add(cls: B) -> B:
    """Register a backend class under its ``name`` (a class decorator)."""
    if cls.name not in STORES:
        raise ValueError(f"store {cls.name!r} has no line in homeiq.sinks.registry.STORES")
    _BACKENDS[cls.name] = cls
    return cls


def backend_class(name: str) -> type[Backend]:
    """The backend class of store ``name``; ConfigError naming HOMEIQ_STORE if unknown."""
    if name not in _BACKENDS:
        module = STORES.get(name)
        if module is None:
            known = ", ".join(sorted(STORES))
            raise ConfigError("HOMEIQ_STORE", f"unknown store {name!r} (stores: {known})")
        importlib.import_module(module)
    return _BACKENDS[name]


def backend(settings: Settings) -> Backend:
    """The configured store's backend."""
    return backend_class(settings.store)(settings)


def store_of_kind(kind: str) -> str | None:
    """The store whose backup part writes manifest members of ``kind``, if any."""
    for name in STORES:
        if kind in backend_class(name).archive_kinds:
            return name
    return None


def names() -> list[str]:
    """Every store name, in registry order."""
    return list(STORES)
