"""Frames a robust client must survive, to feed through ``Simulator.inject_raw``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson


def malformed_frames(sub_id: int) -> list[str]:
    """Frames a robust client must survive, for :meth:`Simulator.inject_raw`.

    ``sub_id`` is the client's state_changed subscription id, so the well-formed-looking
    ones reach the event path.
    """
    now = datetime.now(UTC).isoformat()
    future = "9999-12-31T23:59:59.999999+00:00"
    ctx = {"id": "01M8A9DZ3E3CN6M85B4ZCGEPS1", "parent_id": None, "user_id": None}

    def event(data: Any, time_fired: str = now) -> str:
        body = {
            "event_type": "state_changed",
            "data": data,
            "origin": "LOCAL",
            "time_fired": time_fired,
            "context": ctx,
        }
        return orjson.dumps({"type": "event", "event": body, "id": sub_id}).decode()

    def state(entity_id: Any, value: Any, attributes: Any, when: str = now) -> dict[str, Any]:
        return {
            "entity_id": entity_id,
            "state": value,
            "attributes": attributes,
            "last_changed": when,
            "last_updated": when,
            "context": ctx,
        }

    big = {"friendly_name": "Oversized", "blob": "x" * 300_000}
    return [
        '{"type":"event","event":{"event_type":"state_changed"',  # truncated JSON
        "not json at all",
        "[]",
        "42",
        "null",
        '{"type":"event"}',
        f'{{"type":"event","event":null,"id":{sub_id}}}',
        event(None),
        event({"entity_id": 42, "old_state": None, "new_state": "on"}),
        event({"entity_id": "sensor.x", "old_state": None, "new_state": {"state": "1"}}),
        event(
            {
                "entity_id": "Not An Entity",
                "old_state": None,
                "new_state": state("Not An Entity", "1", {}),
            }
        ),
        event(
            {
                "entity_id": "sensor.future",
                "old_state": None,
                "new_state": state("sensor.future", "1", {}, future),
            },
            future,
        ),
        event(
            {
                "entity_id": "sensor.bad_time",
                "old_state": None,
                "new_state": state("sensor.bad_time", "1", {}, "yesterday"),
            }
        ),
        event(
            {
                "entity_id": "sensor.attrs_list",
                "old_state": None,
                "new_state": state("sensor.attrs_list", "1", [1, 2]),
            }
        ),
        event(
            {
                "entity_id": "sensor.state_number",
                "old_state": None,
                "new_state": state("sensor.state_number", 21.5, {}),
            }
        ),
        event(
            {
                "entity_id": "sensor.oversized",
                "old_state": None,
                "new_state": state("sensor.oversized", "1", big),
            }
        ),
        '{"type":"event","event":{"event_type":"state_changed","data":{}},"id":987654}',
        '{"id":987654,"type":"result","success":true,"result":null}',
        '{"type":"mystery"}',
    ]
