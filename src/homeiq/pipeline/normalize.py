"""Validation and normalization: one Home Assistant ``state_changed`` message in, one
:class:`~homeiq.model.EventRecord` out, or :class:`~homeiq.errors.InvalidEvent` with a
stable reason code.

This is the ingestion boundary: nothing past it sees raw Home Assistant JSON. It runs on
the hot path, so it avoids regexes and allocations where a cheaper check does.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from time import time as _wall_clock
from typing import Any

import orjson

from homeiq.errors import InvalidEvent
from homeiq.model import NO_PLACEMENT, EventRecord, Origin, Placement, Source

MAX_STATE_CHARS = 255
MAX_ENTITY_ID_CHARS = 255
# Home Assistant's own rule for entity ids (homeassistant.core.valid_entity_id): lower-case
# slug, no leading/trailing or double underscore on either side of the dot.
_ENTITY_ID = re.compile(r"(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
# Nothing Home Assistant records predates this; older stamps mean a broken clock or input.
MIN_TIME_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z
_ORIGINS = {"LOCAL": Origin.LOCAL, "REMOTE": Origin.REMOTE}
_JSON_OPTS = orjson.OPT_SORT_KEYS

PlacementLookup = Callable[[str], Placement]
# Per-entity caches (valid ids, last attributes) are dropped past this many entities, so
# a stream of garbage ids cannot grow them without bound.
KNOWN_ENTITIES_MAX = 100_000


_MAX_SPAN_US = 2**53  # ~285 years: the largest span a float holds to the microsecond


def describe(value: Any, limit: int = 80) -> str:
    """A short, safe rendering of a received value for an error detail: strings and
    numbers as they are (truncated), anything else by type. ``str()`` of hostile input
    can be huge or nest deep enough to exhaust the recursion limit."""
    if isinstance(value, str):
        return repr(value[:limit])
    if value is None or isinstance(value, bool | int | float):
        return repr(value)[:limit]
    return f"a {type(value).__name__}"


def _no_placement(_entity_id: str) -> Placement:
    return NO_PLACEMENT


def parse_time_us(value: Any, field: str) -> int:
    """Parse an ISO 8601 timestamp with offset into integer microseconds since the epoch."""
    if not isinstance(value, str):
        raise InvalidEvent("bad_timestamp", f"{field} is {type(value).__name__}, not a string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent("bad_timestamp", f"{field} {value[:64]!r} is not ISO 8601") from None
    if parsed.tzinfo is None:
        raise InvalidEvent("bad_timestamp", f"{field} {value[:64]!r} has no UTC offset")
    try:
        return (parsed - _EPOCH) // _ONE_US
    except OverflowError:  # e.g. 9999-12-31T23:59-14:00 lies past datetime's range in UTC
        raise InvalidEvent("bad_timestamp", f"{field} {value[:64]!r} is out of range") from None


def format_time_us(time_us: int) -> str:
    """Render integer microseconds as Home Assistant renders timestamps (``+00:00``), as
    ``datetime.isoformat`` does (no fraction when it is zero)."""
    minute, rest = divmod(time_us, _MINUTE_US)
    prefix = _minute_prefix(minute)
    if prefix is None:  # beyond year 9999: still say something useful
        return f"{time_us} µs since the epoch"
    second, micro = divmod(rest, 1_000_000)
    if micro:
        return f"{prefix}{second:02d}.{micro:06d}+00:00"
    return f"{prefix}{second:02d}+00:00"


_MINUTE_US = 60_000_000


@functools.lru_cache(maxsize=4096)
def _minute_prefix(minute: int) -> str | None:
    """``YYYY-MM-DDTHH:MM:`` of a minute since the epoch: answers render thousands of
    times in a few minutes, and the calendar arithmetic is most of the cost."""
    try:
        return (_EPOCH + timedelta(minutes=minute)).isoformat()[:17]
    except OverflowError:
        return None


def numeric_value(state: str) -> float | None:
    """The state as a float when it is a plain finite number, else None."""
    if not state or state[0] not in "0123456789-+.":
        return None
    try:
        value = float(state)
    except ValueError:
        return None
    # float() also takes "1_000", "infinity" and padded strings; HA's numeric states do not.
    if not math.isfinite(value) or "_" in state or state[-1].isspace():
        return None
    return value


def valid_entity_id(entity_id: str) -> bool:
    """True when ``entity_id`` is a valid Home Assistant ``domain.object_id``."""
    return len(entity_id) <= MAX_ENTITY_ID_CHARS and _ENTITY_ID.fullmatch(entity_id) is not None


def _context(raw: Any) -> tuple[str | None, str | None, str | None]:
    if raw is None:
        return None, None, None
    if not isinstance(raw, dict):
        raise InvalidEvent("bad_context", f"context is {type(raw).__name__}, not an object")
    ids = (raw.get("id"), raw.get("parent_id"), raw.get("user_id"))
    for value in ids:
        if value is not None and (type(value) is not str or len(value) > 64):
            raise InvalidEvent("bad_context", "context ids must be strings of <= 64 chars")
    return ids


class Normalizer:
    """Turns ``state_changed`` messages into records; configured once, called per event."""

    def __init__(
        self,
        *,
        placement_of: PlacementLookup = _no_placement,
        attributes_max_bytes: int = 16_384,
        future_tolerance_s: float = 300.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.placement_of = placement_of
        self.attributes_max_bytes = attributes_max_bytes
        self.future_tolerance_us = int(future_tolerance_s * 1_000_000)
        self._clock = clock or _wall_clock
        self._last_attributes: dict[str, tuple[dict[str, Any], bytes]] = {}
        self._valid_ids: set[str] = set()

    def message(self, message: Any, source: Source = Source.LIVE) -> EventRecord:
        """Normalize a WebSocket ``{"type": "event", "event": {...}}`` message."""
        if not isinstance(message, dict):
            raise InvalidEvent("not_an_object", f"message is {type(message).__name__}")
        kind = message.get("type")
        if kind != "event":
            raise InvalidEvent("unknown_message", f"message type {describe(kind)}")
        event = message.get("event")
        if not isinstance(event, dict):
            raise InvalidEvent("missing_event", "message has no event object")
        return self.event(event, source)

    def event(self, event: dict[str, Any], source: Source = Source.LIVE) -> EventRecord:
        """Normalize the ``event`` object of a ``state_changed`` message."""
        event_type = event.get("event_type")
        if event_type != "state_changed":
            raise InvalidEvent("unexpected_event_type", f"event_type is {describe(event_type)}")
        data = event.get("data")
        if not isinstance(data, dict):
            raise InvalidEvent("missing_data", "event has no data object")
        entity_id = data.get("entity_id")
        # The regex once per entity, not per event (str check first: lists are unhashable).
        if type(entity_id) is not str or entity_id not in self._valid_ids:
            if not isinstance(entity_id, str) or not valid_entity_id(entity_id):
                raise InvalidEvent("bad_entity_id", f"entity_id {describe(entity_id)} is invalid")
            if len(self._valid_ids) >= KNOWN_ENTITIES_MAX:
                self._valid_ids.clear()
                self._last_attributes.clear()
            self._valid_ids.add(entity_id)
        new_state = data.get("new_state")
        old_state = data.get("old_state")
        if old_state is not None and not isinstance(old_state, dict):
            raise InvalidEvent("bad_old_state", "old_state is neither null nor an object")
        raw_origin = event.get("origin")
        origin = (
            _ORIGINS.get(raw_origin, Origin.LOCAL) if isinstance(raw_origin, str) else Origin.LOCAL
        )
        if new_state is None:
            return self._removal(entity_id, event, old_state, origin, source)
        if not isinstance(new_state, dict):
            raise InvalidEvent("bad_new_state", "new_state is neither null nor an object")
        return self._state(entity_id, new_state, old_state, origin, source)

    def state_row(
        self,
        entity_id: str,
        row: dict[str, Any],
        previous: dict[str, Any] | None,
        source: Source,
    ) -> EventRecord:
        """Normalize a bare state object (REST history rows, imports)."""
        if not valid_entity_id(entity_id):
            raise InvalidEvent("bad_entity_id", f"entity_id {entity_id[:80]!r} is invalid")
        return self._state(entity_id, row, previous, Origin.LOCAL, source)

    def _state(
        self,
        entity_id: str,
        new_state: dict[str, Any],
        old_state: dict[str, Any] | None,
        origin: Origin,
        source: Source,
    ) -> EventRecord:
        state = new_state.get("state")
        if not isinstance(state, str):
            raise InvalidEvent("bad_state", f"state is {type(state).__name__}, not a string")
        if len(state) > MAX_STATE_CHARS:
            raise InvalidEvent("state_too_long", f"state has {len(state)} chars (max 255)")
        inner_id = new_state.get("entity_id", entity_id)
        if inner_id != entity_id:
            raise InvalidEvent("entity_id_mismatch", f"new_state is for {describe(inner_id)}")
        raw_updated = new_state.get("last_updated")
        time = parse_time_us(raw_updated, "last_updated")
        self._check_time(time)
        raw_changed = new_state.get("last_changed", raw_updated)
        last_changed = (
            time if raw_changed == raw_updated else parse_time_us(raw_changed, "last_changed")
        )
        attributes = new_state.get("attributes", {})
        if not isinstance(attributes, dict):
            raise InvalidEvent("bad_attributes", "attributes is not an object")
        # Most updates repeat the entity's last attributes: compare (cheap, in C) before
        # serializing again (not cheap). One entry per entity keeps this bounded.
        last = self._last_attributes.get(entity_id)
        if last is not None and last[0] == attributes:
            attributes_json = last[1]
        else:
            try:
                attributes_json = orjson.dumps(attributes, option=_JSON_OPTS)
            except TypeError as exc:  # non-string keys from a lenient parser, say
                raise InvalidEvent("bad_attributes", str(exc)) from None
            self._last_attributes[entity_id] = (attributes, attributes_json)
        dropped = 0
        if len(attributes_json) > self.attributes_max_bytes:
            dropped = len(attributes_json)
            attributes, attributes_json = {}, b"{}"
        context_id, parent_id, user_id = _context(new_state.get("context"))
        previous_state, duration = self._previous(old_state, state, last_changed)
        placement = self.placement_of(entity_id)
        return EventRecord(
            entity_id=entity_id,
            time=time,
            state=state,
            value=numeric_value(state),
            previous_state=previous_state,
            duration_in_state_s=duration,
            last_changed=last_changed,
            attributes=attributes,
            attributes_json=attributes_json,
            dropped_attributes_bytes=dropped,
            context_id=context_id,
            context_parent_id=parent_id,
            context_user_id=user_id,
            device_id=placement.device_id,
            area_id=placement.area_id,
            floor_id=placement.floor_id,
            origin=origin,
            source=source,
        )

    def _removal(
        self,
        entity_id: str,
        event: dict[str, Any],
        old_state: dict[str, Any] | None,
        origin: Origin,
        source: Source,
    ) -> EventRecord:
        if old_state is None:
            raise InvalidEvent("no_state", "both old_state and new_state are null")
        time = parse_time_us(event.get("time_fired"), "time_fired")
        self._check_time(time)
        context_id, parent_id, user_id = _context(event.get("context"))
        previous_state, duration = self._previous(old_state, None, time)
        placement = self.placement_of(entity_id)
        return EventRecord(
            entity_id=entity_id,
            time=time,
            state=None,
            previous_state=previous_state,
            duration_in_state_s=duration,
            last_changed=time,
            context_id=context_id,
            context_parent_id=parent_id,
            context_user_id=user_id,
            device_id=placement.device_id,
            area_id=placement.area_id,
            floor_id=placement.floor_id,
            origin=origin,
            source=source,
        )

    def _previous(
        self, old_state: dict[str, Any] | None, state: str | None, changed_at: int
    ) -> tuple[str | None, float | None]:
        """Previous state, and seconds spent in it when this event ends it."""
        if old_state is None:
            return None, None
        previous = old_state.get("state")
        if not isinstance(previous, str):
            return None, None
        if previous == state:
            return previous, None  # attribute-only update: the state did not end
        try:
            old_changed = parse_time_us(old_state.get("last_changed"), "old_state.last_changed")
        except InvalidEvent:
            return previous, None
        span = changed_at - old_changed
        if old_changed < MIN_TIME_US or not 0 <= span < _MAX_SPAN_US:
            # Time running backwards, or a state "held" for centuries, is a broken clock,
            # not a duration (and past 2**53 µs a float drops microseconds).
            return previous, None
        return previous, span / 1_000_000

    def _check_time(self, time: int) -> None:
        now_us = int(self._clock() * 1_000_000)
        if time > now_us + self.future_tolerance_us:
            raise InvalidEvent("timestamp_in_future", f"{format_time_us(time)} is in the future")
        if time < MIN_TIME_US:
            raise InvalidEvent("timestamp_too_old", f"{format_time_us(time)} predates 2000")
