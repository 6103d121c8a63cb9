"""The shared vocabulary: the normalized event record and the registry entries.

Everything above this module (pipeline, sinks, API) speaks these types. Field names are
the contract of DESIGN §5 and are what the API and every sink expose.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any

import orjson


def now_us() -> int:
    """Wall-clock time in integer microseconds since the epoch (the unit of every time here)."""
    return time.time_ns() // 1000


def payload_bytes(message: object, raw: bytes | None = None) -> bytes:
    """A received message as bytes for the dead-letter table: JSON when it can be, else
    the frame it came in (``raw``), else its repr."""
    try:
        return orjson.dumps(message)
    except TypeError:  # orjson refuses non-str keys, and nesting past 254 levels
        pass
    if raw is not None:
        return raw
    try:
        return repr(message).encode()
    except RecursionError:
        return f"<a {type(message).__name__} nested too deeply to keep>".encode()


class Source(enum.IntEnum):
    """Where a record came from; small ints because SQLite stores one per row."""

    LIVE = 0
    BACKFILL = 1
    IMPORT = 2
    # The state Home Assistant reported at a (re)connect, stored because the store's last
    # row for the entity differed or was missing: a baseline, not an observed change.
    SNAPSHOT = 3


class Origin(enum.IntEnum):
    """Home Assistant's event origin."""

    LOCAL = 0
    REMOTE = 1


@dataclass(slots=True)
class EventRecord:
    """One normalized state change.

    ``time`` and ``last_changed`` are integer microseconds since the Unix epoch (UTC):
    exact, cheap to compare, and what the idempotency key ``(entity_id, time)`` uses.
    ``state`` is ``None`` when Home Assistant removed the entity (null ``new_state``).
    ``attributes_json`` is the canonical (sorted-key) JSON of ``attributes``, made once at
    normalization so sinks neither re-serialize nor disagree on it. When the attributes
    exceeded the size cap they are not kept: ``attributes`` is empty and
    ``dropped_attributes_bytes`` says how large they were.
    """

    entity_id: str
    time: int
    state: str | None
    value: float | None = None
    previous_state: str | None = None
    duration_in_state_s: float | None = None
    last_changed: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    attributes_json: bytes = b"{}"
    dropped_attributes_bytes: int = 0
    context_id: str | None = None
    context_parent_id: str | None = None
    context_user_id: str | None = None
    device_id: str | None = None
    area_id: str | None = None
    floor_id: str | None = None
    origin: Origin = Origin.LOCAL
    source: Source = Source.LIVE

    @property
    def domain(self) -> str:
        """The part of entity_id before the dot."""
        return self.entity_id.partition(".")[0]

    @property
    def device_class(self) -> str | None:
        """``device_class`` attribute, when it is a string."""
        return _str_attr(self.attributes, "device_class")

    @property
    def unit_of_measurement(self) -> str | None:
        """``unit_of_measurement`` attribute, when it is a string."""
        return _str_attr(self.attributes, "unit_of_measurement")

    @property
    def friendly_name(self) -> str | None:
        """``friendly_name`` attribute, when it is a string."""
        return _str_attr(self.attributes, "friendly_name")

    @property
    def removed(self) -> bool:
        """True when this record marks the entity's removal."""
        return self.state is None


def _str_attr(attributes: dict[str, Any], key: str) -> str | None:
    value = attributes.get(key)
    return value if isinstance(value, str) else None


@dataclass(slots=True, frozen=True)
class Placement:
    """Where an entity sits: its device, area and floor (any may be unknown)."""

    device_id: str | None = None
    area_id: str | None = None
    floor_id: str | None = None


NO_PLACEMENT = Placement()


@dataclass(slots=True, frozen=True)
class Floor:
    """A floor from Home Assistant's floor registry."""

    floor_id: str
    name: str
    level: int | None = None


@dataclass(slots=True, frozen=True)
class Area:
    """An area from Home Assistant's area registry."""

    area_id: str
    name: str
    floor_id: str | None = None


@dataclass(slots=True, frozen=True)
class Device:
    """A device from Home Assistant's device registry."""

    device_id: str
    name: str | None = None
    area_id: str | None = None
    manufacturer: str | None = None
    model: str | None = None


@dataclass(slots=True, frozen=True)
class Entity:
    """An entity from Home Assistant's entity registry."""

    entity_id: str
    device_id: str | None = None
    area_id: str | None = None
    platform: str | None = None
    name: str | None = None


@dataclass(slots=True, frozen=True)
class RegistrySnapshot:
    """The four registries as Home Assistant listed them at one moment."""

    floors: tuple[Floor, ...] = ()
    areas: tuple[Area, ...] = ()
    devices: tuple[Device, ...] = ()
    entities: tuple[Entity, ...] = ()


@dataclass(slots=True, frozen=True)
class DeadLetter:
    """A message that could not be stored, with why and the payload as received."""

    reason: str
    detail: str
    payload: bytes
    received_at: int
    entity_id: str | None = None


@dataclass(slots=True, frozen=True)
class Gap:
    """A span (microseconds, ``start_us < time <= end_us``) whose live events may be
    missing from the store, to be refilled from Home Assistant's history."""

    start_us: int
    end_us: int
    reason: str
    created_at: int
    id: int | None = None


@dataclass(slots=True, frozen=True)
class QualityEvent:
    """Something users should know about the completeness of their data."""

    time: int
    kind: str
    start_us: int | None
    end_us: int | None
    events: int | None
    detail: str


@dataclass(slots=True, frozen=True)
class BackupRun:
    """One backup operation's outcome: an archive written to a target, or verified."""

    kind: str  # "create" (one per target) or "verify"
    started_at: int  # µs
    finished_at: int  # µs
    ok: bool
    archive: str | None
    target: str | None
    bytes: int | None
    detail: str  # what failed, or a short summary
