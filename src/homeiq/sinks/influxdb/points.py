"""InfluxDB query results as records: the inverse of :mod:`~homeiq.sinks.influxdb.lineprotocol`.

Shared by :mod:`~homeiq.sinks.influxdb.reader` and :mod:`~homeiq.sinks.influxdb.queries`.
"""

from __future__ import annotations

from typing import Any

import orjson

from homeiq.model import EventRecord, Origin, Source
from homeiq.sinks.influxdb.escaping import decode_tag_value

# InfluxDB's time range is ±(2**63 - 2) ns; a bound outside it is clamped.
_MIN_NS = -(2**63) + 2
_MAX_NS = 2**63 - 2

Point = dict[str, Any]


def time_ns(us: int) -> int:
    """Microseconds as an InfluxQL time literal (ns), clamped to InfluxDB's range."""
    return min(max(int(us) * 1000, _MIN_NS), _MAX_NS)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def tag(value: Any) -> str | None:
    """A tag value as read back (None when absent)."""
    # InfluxDB has no empty tag values: an absent tag reads as null (or "" in GROUP BY).
    return decode_tag_value(str(value)) if value else None


def _float(value: Any) -> float | None:
    # InfluxDB's JSON writes 21.0 as 21: it reads back as an int.
    return None if value is None else float(value)


def record_from_point(point: Point) -> EventRecord | None:
    """The record a point of the schema was written from (None without an entity_id)."""
    entity_id = tag(point.get("entity_id"))
    if entity_id is None:
        return None
    text = point.get("attributes")
    blob = text.encode() if isinstance(text, str) else b"{}"
    try:
        attributes = orjson.loads(blob)
    except orjson.JSONDecodeError:
        attributes = None
    if not isinstance(attributes, dict):  # written by someone else: keep what we can
        attributes, blob = {}, b"{}"
    last_changed = point.get("last_changed")
    return EventRecord(
        entity_id=entity_id,
        time=int(point["time"]),
        state=_text(point.get("state")),
        value=_float(point.get("value")),
        previous_state=_text(point.get("previous_state")),
        duration_in_state_s=_float(point.get("duration_in_state_s")),
        last_changed=None if last_changed is None else int(last_changed),
        attributes=attributes,
        attributes_json=blob,
        dropped_attributes_bytes=int(point.get("dropped_attributes_bytes") or 0),
        context_id=_text(point.get("context_id")),
        context_parent_id=_text(point.get("context_parent_id")),
        context_user_id=_text(point.get("context_user_id")),
        device_id=tag(point.get("device_id")),
        area_id=tag(point.get("area_id")),
        floor_id=_text(point.get("floor_id")),
        origin=Origin(int(point.get("origin") or 0)),
        source=Source(int(point.get("source") or 0)),
    )


def points_of(series: list[dict[str, Any]]) -> list[Point]:
    """The rows of a statement's series as dicts (tags of a GROUP BY included)."""
    rows: list[Point] = []
    for one in series:
        columns = one.get("columns", [])
        tags = one.get("tags") or {}
        for values in one.get("values", []):
            point = dict(zip(columns, values, strict=False))
            point.update(tags)
            rows.append(point)
    return rows
