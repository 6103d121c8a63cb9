"""A small home's events for the read-side contract, and the answers worked out in Python.

Written to every backend by tests/sinks/test_contract_queries.py, which compares what
the backend returns with :func:`expected_events`, :func:`expected_activity` and friends:
one reference, so every backend must answer identically.

The data has what the queries must get right: several entities changing in the same
microsecond (a scene), an entity that moved area (its events keep the placement they
were written with), events without placement, backfilled and imported rows, and an
automation chain with real-looking ULID context ids whose time part is the time the
context was created.
"""

from __future__ import annotations

import random
from typing import Any

from homeiq.model import EventRecord, Source
from homeiq.sinks.base import Activity, EventQuery
from homeiq.sinks.reading import NO_AREA
from tests.support.influxdb import T0, S, event

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(time_us: int, seed: int) -> str:
    """A ULID created at ``time_us`` (ms precision), its random part from ``seed``."""
    ms = time_us // 1000
    head = "".join(_CROCKFORD[(ms >> (5 * i)) & 31] for i in reversed(range(10)))
    rng = random.Random(seed)
    return head + "".join(rng.choice(_CROCKFORD) for _ in range(16))


KITCHEN = {"area_id": "kitchen", "floor_id": "ground"}
BEDROOM = {"area_id": "bedroom", "floor_id": "upstairs"}
HALL = {"area_id": "hall", "floor_id": "ground"}

# The automation chain: motion (its own context) triggers the automation, whose run
# context (parent: the motion's) turns two lights on.
MOTION_CONTEXT = ulid(T0 + 20 * S, 1)
AUTOMATION_CONTEXT = ulid(T0 + 20 * S + 40_000, 2)
SCENE_CONTEXT = ulid(T0 + 30 * S, 3)
# Created two hours before the event that carries it: outside the search window.
STALE_CONTEXT = ulid(T0 + 40 * S - 2 * 3600 * S, 4)
LEGACY_CONTEXT = "0f3c8e1a9b2d4c6e8f0a1b2c3d4e5f60"  # old Home Assistant: a uuid, no time
SCENE_LIGHTS = [f"light.scene_{i}" for i in range(7)]


def _home() -> list[EventRecord]:
    records = [
        event("sensor.kitchen_temp", -100, "20.5", value=20.5, device_id="thermo", **KITCHEN),
        event("light.kitchen", -50, "off", device_id="kitchen_light", **KITCHEN),
        event("switch.heater", -40, "off", device_id="heater", **KITCHEN),
        event("sensor.outdoor", -30, "4.0", value=4.0, source=Source.BACKFILL),
        event("sensor.kitchen_temp", 0, "21.0", value=21.0, device_id="thermo", **KITCHEN),
        event("light.bedroom", 0, "off", device_id="bed_light", **BEDROOM),
        event("switch.heater", 0, "on", device_id="heater", **KITCHEN),
        event("sensor.outdoor", 5, "4.5", value=4.5, source=Source.IMPORT),
        event("sensor.kitchen_temp", 10, "21.5", value=21.5, device_id="thermo", **KITCHEN),
        # The heater moved to the bedroom: later events carry the new placement.
        event("switch.heater", 12, "off", device_id="heater", **BEDROOM),
        event(
            "binary_sensor.hall_motion",
            20,
            "on",
            device_id="motion",
            context_id=MOTION_CONTEXT,
            **HALL,
        ),
        event(
            "automation.motion_lights",
            20.04,
            "on",
            attributes={"last_triggered": "2026-11-25T21:22:37.040000+00:00"},
            context_id=AUTOMATION_CONTEXT,
            context_parent_id=MOTION_CONTEXT,
        ),
    ]
    for entity_id, placement, device in (
        ("light.kitchen", KITCHEN, "kitchen_light"),
        ("light.bedroom", BEDROOM, "bed_light"),
    ):
        records.append(
            event(
                entity_id,
                20.1,
                "on",
                attributes={"brightness": 255, "friendly_name": entity_id},
                device_id=device,
                context_id=AUTOMATION_CONTEXT,
                context_parent_id=MOTION_CONTEXT,
                context_user_id="user-1",
                **placement,
            )
        )
    # A scene: seven lights in the same microsecond (more than the InfluxDB page size).
    records += [
        event(e, 30, "on", context_id=SCENE_CONTEXT, device_id=f"d{i}", **HALL)
        for i, e in enumerate(SCENE_LIGHTS)
    ]
    records += [
        event("sensor.kitchen_temp", 40, "22.0", value=22.0, context_id=STALE_CONTEXT),
        event("sensor.outdoor", 45, "5.0", value=5.0, context_id=LEGACY_CONTEXT),
        event("binary_sensor.hall_motion", 50, "off", device_id="motion", **HALL),
        event("light.kitchen", 55, "off", device_id="kitchen_light", **KITCHEN),
        event("sensor.kitchen_temp", 3600, "22.5", value=22.5, device_id="thermo", **KITCHEN),
    ]
    return records


HOME = _home()
ENTITIES = sorted({r.entity_id for r in HOME})


def ordered(records: list[EventRecord], newest_first: bool = False) -> list[EventRecord]:
    """Records in the order every reader returns them: (time, entity_id)."""
    return sorted(records, key=lambda r: (r.time, r.entity_id), reverse=newest_first)


def matches(r: EventRecord, q: EventQuery) -> bool:
    """What :class:`EventQuery`'s filters mean, for one record."""
    checks: list[tuple[tuple[Any, ...], Any]] = [
        (q.entity_ids, r.entity_id),
        (q.domains, r.domain),
        (q.device_ids, r.device_id),
        (q.area_ids, r.area_id),
        (q.floor_ids, r.floor_id),
        (q.states, r.state),
        (q.sources, r.source),
    ]
    return (
        all(not wanted or value in wanted for wanted, value in checks)
        and (q.start is None or r.time >= q.start)
        and (q.end is None or r.time < q.end)
    )


def expected_events(q: EventQuery) -> list[EventRecord]:
    """Every record of :data:`HOME` the query selects, in its order (ignoring the limit)."""
    return ordered([r for r in HOME if matches(r, q)], q.newest_first)


def without_attributes(r: EventRecord) -> EventRecord:
    """The record as ``history_many(attributes=False)`` returns it."""
    r = EventRecord(**{f: getattr(r, f) for f in EventRecord.__dataclass_fields__})
    r.attributes, r.attributes_json = {}, b"{}"
    return r


def expected_activity(start: int, end: int, bucket_s: int, top: int) -> Activity:
    """:class:`Activity` of :data:`HOME`, counted one record at a time."""
    width = bucket_s * S
    inside = [r for r in HOME if start <= r.time < end]
    result = Activity(start=start, end=end, bucket_s=bucket_s, total=len(inside))
    per_entity: dict[str, int] = {}
    per_bucket: dict[int, int] = {}
    for r in inside:
        per_entity[r.entity_id] = per_entity.get(r.entity_id, 0) + 1
        result.by_domain[r.domain] = result.by_domain.get(r.domain, 0) + 1
        area = r.area_id or NO_AREA
        result.by_area[area] = result.by_area.get(area, 0) + 1
        bucket = r.time // width * width
        per_bucket[bucket] = per_bucket.get(bucket, 0) + 1
    result.top_entities = sorted(per_entity.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    if end > start:
        first = start // width * width
        result.buckets = [(b, per_bucket.get(b, 0)) for b in range(first, end, width)]
    return result
