"""Event records as InfluxDB line protocol (DESIGN §5), the schema the reader inverts.

One point per record::

    <measurement>,area_id=..,device_class=..,device_id=..,domain=..,entity_id=.. \
state="..",value=21.0,previous_state="..",duration_in_state_s=..,last_changed=..i,\
attributes="{..}",unit_of_measurement="..",friendly_name="..",dropped_attributes_bytes=..i,\
context_id="..",context_parent_id="..",context_user_id="..",floor_id="..",\
origin=0i,source=0i <time µs>

Tags are written in key order (InfluxDB's own order, so it need not sort them) and left
out when empty: InfluxDB refuses empty tag values. Fields that are None are left out;
``source`` is always written, so every point has a field. ``value`` is always a float
(``21.0``), so the field never changes type.

Tag values are stored percent-coded (``%`` ``\\`` newline and carriage return as
``%25`` ``%5C`` ``%0A`` ``%0D``), so any string can be a tag; every valid entity id is
stored unchanged. The escaping rules, shared with the reader and the backup, are in
:mod:`homeiq.sinks.influxdb.escaping`. Field keys are fixed names, and the attributes
travel as one JSON string field, so no key ever needs that treatment.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from homeiq.model import EventRecord
from homeiq.sinks.influxdb.escaping import (
    escape_measurement,
    escape_string_field,
    escape_tag_value,
)

# Bounds of the encoder's caches (see LineEncoder): entries, and the largest attributes
# JSON cached (bigger sets are rare and would make the cache large).
PREFIX_CACHE_SIZE = 16_384
ATTRIBUTES_CACHE_SIZE = 4096
ATTRIBUTES_CACHE_MAX_BYTES = 2048


class LineEncoder:
    """Encodes records for one measurement, caching what repeats from event to event.

    Two caches, both bounded: the series key (measurement and tags) per tag set, and the
    attribute fields per attributes JSON; a home has a few thousand of each, repeated on
    every state change, and together they are most of a line.
    """

    def __init__(self, measurement: str) -> None:
        self.measurement = measurement
        self._measurement = escape_measurement(measurement)
        self._prefixes: dict[tuple[str, str | None, str | None, str | None], str] = {}
        self._attributes: dict[bytes, str] = {}

    def _prefix(self, key: tuple[str, str | None, str | None, str | None]) -> str:
        entity_id, device_id, area_id, device_class = key
        if not entity_id:
            raise ValueError("a record without entity_id cannot be written")
        tags = [self._measurement]
        # Key order: area_id, device_class, device_id, domain, entity_id.
        for name, tag in (
            ("area_id", area_id),
            ("device_class", device_class),
            ("device_id", device_id),
            ("domain", entity_id.partition(".")[0]),
            ("entity_id", entity_id),
        ):
            if tag:
                tags.append(f"{name}={escape_tag_value(tag)}")
        prefix = ",".join(tags) + " "
        if len(self._prefixes) >= PREFIX_CACHE_SIZE:
            self._prefixes.clear()
        self._prefixes[key] = prefix
        return prefix

    def _attribute_fields(self, r: EventRecord) -> str:
        """``attributes``, ``unit_of_measurement`` and ``friendly_name``: all three follow
        from the canonical JSON, so one cache entry per distinct JSON serves them."""
        esc = escape_string_field
        fields = f'attributes="{esc(r.attributes_json.decode())}"'
        unit = r.attributes.get("unit_of_measurement")
        if type(unit) is str:
            fields += f',unit_of_measurement="{esc(unit)}"'
        friendly_name = r.attributes.get("friendly_name")
        if type(friendly_name) is str:
            fields += f',friendly_name="{esc(friendly_name)}"'
        if len(r.attributes_json) <= ATTRIBUTES_CACHE_MAX_BYTES:
            if len(self._attributes) >= ATTRIBUTES_CACHE_SIZE:
                self._attributes.clear()
            self._attributes[r.attributes_json] = fields
        return fields

    def encode(self, r: EventRecord) -> bytes:
        """One record as one line (with its newline), UTF-8; ValueError if it cannot be."""
        device_class = r.attributes.get("device_class")
        key = (
            r.entity_id,
            r.device_id,
            r.area_id,
            device_class if type(device_class) is str else None,
        )
        esc = escape_string_field
        line = [self._prefixes.get(key) or self._prefix(key)]
        if r.state is not None:
            line.append(f'state="{esc(r.state)}",')
        value = r.value
        # Non-finite floats have no line-protocol form; the normalizer never makes them.
        if value is not None and math.isfinite(value):
            line.append(f"value={float(value)!r},")
        if r.previous_state is not None:
            line.append(f'previous_state="{esc(r.previous_state)}",')
        duration = r.duration_in_state_s
        if duration is not None and math.isfinite(duration):
            line.append(f"duration_in_state_s={float(duration)!r},")
        if r.last_changed is not None:
            line.append(f"last_changed={int(r.last_changed)}i,")
        line.append(self._attributes.get(r.attributes_json) or self._attribute_fields(r))
        if r.dropped_attributes_bytes > 0:
            line.append(f",dropped_attributes_bytes={int(r.dropped_attributes_bytes)}i")
        if r.context_id is not None:
            line.append(f',context_id="{esc(r.context_id)}"')
        if r.context_parent_id is not None:
            line.append(f',context_parent_id="{esc(r.context_parent_id)}"')
        if r.context_user_id is not None:
            line.append(f',context_user_id="{esc(r.context_user_id)}"')
        if r.floor_id is not None:
            line.append(f',floor_id="{esc(r.floor_id)}"')
        line.append(f",origin={int(r.origin)}i,source={int(r.source)}i {int(r.time)}\n")
        return "".join(line).encode()

    def encode_many(self, records: Sequence[EventRecord]) -> list[bytes]:
        """Every record of a batch as its line."""
        encode = self.encode
        return [encode(r) for r in records]


def bodies(lines: Sequence[bytes], max_bytes: int, max_events: int) -> Iterator[bytes]:
    """Request bodies of at most ``max_bytes`` and ``max_events`` lines each, in order.

    A single line longer than ``max_bytes`` goes alone: it cannot be split, and InfluxDB
    decides whether it is too large.
    """
    start, size = 0, 0
    for index, line in enumerate(lines):
        if index > start and (size + len(line) > max_bytes or index - start >= max_events):
            yield b"".join(lines[start:index])
            start, size = index, 0
        size += len(line)
    if start < len(lines):
        yield b"".join(lines[start:])
