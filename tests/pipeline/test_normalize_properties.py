"""Property tests for the ingestion boundary and what sits right behind it.

1. Arbitrary JSON-like values thrown at :meth:`Normalizer.message` only ever produce a
   valid record or :class:`InvalidEvent`.
2. The same for mutations of real ``state_changed`` messages (keys dropped, values
   replaced by arbitrary JSON, huge strings, odd unicode, far-away timestamps).
3. The ULID codec round-trips every ULID and every other string.
4. Records written to a real SQLite store read back equal, and writing them again
   stores nothing new.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from homeiq.errors import InvalidEvent
from homeiq.model import EventRecord, Origin, Placement, Source
from homeiq.pipeline.normalize import (
    MAX_STATE_CHARS,
    MIN_TIME_US,
    Normalizer,
    format_time_us,
    numeric_value,
    parse_time_us,
    valid_entity_id,
)
from homeiq.sinks.sqlite import SQLiteEventStore
from homeiq.sinks.sqlite.codec import decode_context, encode_context
from tests.support.replay import load_session

NOW = datetime(2026, 11, 25, 21, 30, tzinfo=UTC).timestamp()
TOLERANCE_S = 300.0
CAP = 4096
PLACED = Placement("device-1", "kitchen", "ground")


def _placement_of(entity_id: str) -> Placement:
    return PLACED if entity_id.startswith("sensor.") else Placement()


NORMALIZER = Normalizer(
    placement_of=_placement_of,
    attributes_max_bytes=CAP,
    future_tolerance_s=TOLERANCE_S,
    clock=lambda: NOW,
)

# -- the record contract ----------------------------------------------------------------------


def assert_contract(record: EventRecord, source: Source = Source.LIVE) -> None:
    """What every record leaving the normalizer promises the rest of the system."""
    assert isinstance(record, EventRecord)
    assert isinstance(record.entity_id, str)
    assert valid_entity_id(record.entity_id)
    assert record.domain == record.entity_id.split(".")[0]

    assert type(record.time) is int
    assert MIN_TIME_US <= record.time <= int(NOW * 1_000_000) + int(TOLERANCE_S * 1_000_000)
    assert type(record.last_changed) is int

    if record.state is None:
        assert record.value is None
        assert record.attributes == {}
        assert record.last_changed == record.time
    else:
        assert isinstance(record.state, str)
        assert len(record.state) <= MAX_STATE_CHARS
    if record.value is not None:
        assert type(record.value) is float
        assert math.isfinite(record.value)
        assert record.state is not None
        assert record.value == float(record.state)

    assert record.previous_state is None or isinstance(record.previous_state, str)
    if record.duration_in_state_s is not None:
        assert type(record.duration_in_state_s) is float
        assert math.isfinite(record.duration_in_state_s)
        assert record.previous_state is not None
        assert record.previous_state != record.state

    assert isinstance(record.attributes, dict)
    assert isinstance(record.attributes_json, bytes)
    assert record.attributes_json == orjson.dumps(record.attributes, option=orjson.OPT_SORT_KEYS)
    if record.dropped_attributes_bytes:
        assert record.dropped_attributes_bytes > CAP
        assert record.attributes == {}
        assert record.attributes_json == b"{}"
    else:
        assert record.dropped_attributes_bytes == 0
        assert len(record.attributes_json) <= CAP

    for context in (record.context_id, record.context_parent_id, record.context_user_id):
        assert context is None or (isinstance(context, str) and len(context) <= 64)

    expected = _placement_of(record.entity_id)
    assert (record.device_id, record.area_id, record.floor_id) == (
        expected.device_id,
        expected.area_id,
        expected.floor_id,
    )
    assert record.origin in (Origin.LOCAL, Origin.REMOTE)
    assert record.source is source
    for name in ("device_class", "unit_of_measurement", "friendly_name"):
        got = getattr(record, name)
        assert got is None or isinstance(got, str)


def check(message: Any, source: Source = Source.LIVE) -> EventRecord | None:
    """Normalize ``message``: a record meeting the contract, or InvalidEvent (None)."""
    try:
        record = NORMALIZER.message(message, source)
    except InvalidEvent as exc:
        event(f"rejected: {exc.reason}")
        assert isinstance(exc.reason, str)
        assert re.fullmatch(r"[a-z_]+", exc.reason)
        assert isinstance(exc.detail, str)
        return None
    assert_contract(record, source)
    event("removal record" if record.removed else "state record")
    return record


# -- strategies -------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)
json_objects = st.dictionaries(st.text(max_size=6), json_values, max_size=4)

STRUCTURAL_KEYS = [
    "event",
    "event_type",
    "data",
    "entity_id",
    "new_state",
    "old_state",
    "state",
    "attributes",
    "last_changed",
    "last_updated",
    "context",
    "id",
    "parent_id",
    "user_id",
    "origin",
    "time_fired",
]
# Objects whose keys are usually the ones the normalizer looks for.
keyed_objects = st.dictionaries(
    st.sampled_from(STRUCTURAL_KEYS), json_scalars | json_values, max_size=5
)


def _recorded() -> list[dict[str, Any]]:
    wanted = {
        "sensor.harness_temperature",
        "automation.harness_tick",
        "light.bed_light",
        "sensor.fixture_new",
        "sensor.fixture_unicode",
        "binary_sensor.harness_motion",
    }
    chosen: dict[tuple[str, bool, bool], dict[str, Any]] = {}
    for line in load_session():
        if line["dir"] != "in":
            continue
        frame = line["frame"]
        for message in frame if isinstance(frame, list) else [frame]:
            if message.get("type") != "event" or message["event"]["event_type"] != "state_changed":
                continue
            data = message["event"]["data"]
            if data["entity_id"] in wanted:
                key = (data["entity_id"], data["new_state"] is None, data["old_state"] is None)
                chosen.setdefault(key, message)
    return list(chosen.values())


BASES = _recorded()

offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
aware_stamps = st.builds(
    lambda moment, tz: moment.replace(tzinfo=tz).isoformat(),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    offsets,
)
# Boundary instants: the ends of datetime's range and of the accepted window.
edge_stamps = st.builds(
    lambda moment, tz: moment.replace(tzinfo=tz).isoformat(),
    st.sampled_from(
        [
            datetime.min,
            datetime.max,
            datetime(2000, 1, 1),
            datetime(1999, 12, 31, 23, 59, 59, 999999),
            datetime.fromtimestamp(NOW + TOLERANCE_S, UTC).replace(tzinfo=None),
        ]
    ),
    offsets | st.just(UTC),
)
near_stamps = st.builds(
    lambda delta_us: (
        datetime.fromtimestamp(NOW, UTC) + timedelta(microseconds=delta_us)
    ).isoformat(),
    st.integers(-(10**15), 10**12),
)
naive_stamps = st.datetimes().map(lambda moment: moment.isoformat())
odd_strings = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "\u202e\u202d",
        "\ufeff42",
        "１２",
        "1٢",
        "e\u0301",
        "🏠🔥",
        "sensor.temp",
        "SENSOR.TEMP",
        "unavailable",
        "NaN",
        "-inf",
        "1_000",
        "2026-11-25T21:22:17+00:00",
        "2026-11-25T21:22:17",
        "24:00",
    ]
)
weird_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
huge_strings = st.integers(250, 70_000).map(lambda n: "x" * n)
replacements = (
    json_values
    | aware_stamps
    | edge_stamps
    | near_stamps
    | naive_stamps
    | odd_strings
    | weird_text
    | huge_strings
)
# Where the normalizer looks; mutated more often than attribute internals.
KNOWN_PATHS = [
    ("event",),
    ("event", "event_type"),
    ("event", "origin"),
    ("event", "time_fired"),
    ("event", "context"),
    ("event", "data"),
    ("event", "data", "entity_id"),
    ("event", "data", "new_state"),
    ("event", "data", "old_state"),
    ("event", "data", "new_state", "state"),
    ("event", "data", "new_state", "entity_id"),
    ("event", "data", "new_state", "last_updated"),
    ("event", "data", "new_state", "last_changed"),
    ("event", "data", "new_state", "attributes"),
    ("event", "data", "new_state", "context"),
    ("event", "data", "new_state", "context", "id"),
    ("event", "data", "old_state", "state"),
    ("event", "data", "old_state", "last_changed"),
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    items: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    for key, child in items:
        found.append((*prefix, key))
        found.extend(_paths(child, (*prefix, key)))
    return found


def _parent(message: Any, path: tuple[Any, ...]) -> Any:
    target = message
    for key in path[:-1]:
        target = target[key]
    return target


@st.composite
def mutated_messages(draw: st.DrawFn) -> dict[str, Any]:
    message = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(message)
        if not paths:
            break
        known = [p for p in KNOWN_PATHS if p in paths]
        path = draw(
            st.sampled_from(known) if known and draw(st.booleans()) else st.sampled_from(paths)
        )
        parent = _parent(message, path)
        action = draw(st.sampled_from(["drop", "replace", "replace", "add_origin"]))
        if action == "drop":
            del parent[path[-1]]
        elif action == "replace":
            parent[path[-1]] = draw(replacements)
        elif isinstance(message.get("event"), dict):
            message["event"]["origin"] = draw(st.sampled_from(["LOCAL", "REMOTE", "", None, 1]))
    return message


# -- 1. arbitrary JSON ----------------------------------------------------------------------


@settings(max_examples=150)
@given(json_values)
def test_any_json_value_is_a_record_or_invalid_event(value: Any) -> None:
    check(value)
    check({"type": "event", "event": value})


@settings(max_examples=100)
@given(keyed_objects, keyed_objects, keyed_objects, st.sampled_from(Source))
def test_any_json_in_the_known_places_is_a_record_or_invalid_event(
    data: dict[str, Any], new_state: dict[str, Any], old_state: dict[str, Any], source: Source
) -> None:
    check({"event": {"event_type": "state_changed", "data": data}}, source)
    data = {**data, "entity_id": "sensor.temp", "new_state": new_state, "old_state": old_state}
    check({"event": {"event_type": "state_changed", "data": data}}, source)


@settings(max_examples=100)
@given(
    st.sampled_from(["sensor.temp", "light.kitchen"]),
    json_values,
    json_objects,
    json_values,
    st.one_of(aware_stamps, near_stamps),
    st.sampled_from(["REMOTE", "LOCAL", None]),
)
def test_states_with_any_values_are_records_or_invalid_events(
    entity_id: str,
    state: Any,
    attributes: dict[str, Any],
    context: Any,
    stamp: str,
    origin: str | None,
) -> None:
    new_state = {
        "entity_id": entity_id,
        "state": state,
        "attributes": attributes,
        "last_changed": stamp,
        "last_updated": stamp,
        "context": context,
    }
    message = {
        "event": {
            "event_type": "state_changed",
            "data": {"entity_id": entity_id, "new_state": new_state, "old_state": None},
            "origin": origin,
        }
    }
    record = check(message)
    if record is not None:
        assert record.state == state
        assert record.origin is (Origin.REMOTE if origin == "REMOTE" else Origin.LOCAL)


# -- 2. mutations of real messages -------------------------------------------------------------


def test_recorded_bases_are_valid_and_varied() -> None:
    records = [NORMALIZER.message(m) for m in BASES]
    for record in records:
        assert_contract(record)
    assert any(r.removed for r in records)
    assert any(r.previous_state is None and not r.removed for r in records)
    assert any(r.context_user_id for r in records)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_messages(), st.sampled_from(Source))
def test_mutated_recorded_messages_are_records_or_invalid_events(
    message: dict[str, Any], source: Source
) -> None:
    check(message, source)


@settings(max_examples=150)
@given(st.sampled_from(BASES), aware_stamps | edge_stamps | near_stamps)
def test_any_aware_timestamp_is_a_record_or_invalid_event(base: dict[str, Any], stamp: str) -> None:
    message = copy.deepcopy(base)
    event = message["event"]
    new_state = event["data"]["new_state"]
    if new_state is None:
        event["time_fired"] = stamp
    else:
        new_state["last_updated"] = new_state["last_changed"] = stamp
    record = check(message)
    try:
        utc = datetime.fromisoformat(stamp).astimezone(UTC)
    except OverflowError:  # its UTC instant lies outside datetime's range
        assert record is None
        return
    in_window = (
        datetime(2000, 1, 1, tzinfo=UTC) <= utc <= datetime.fromtimestamp(NOW + TOLERANCE_S, UTC)
    )
    assert (record is not None) is in_window
    if record is not None:
        assert record.time == (utc - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


@settings(max_examples=100)
@given(st.sampled_from(BASES), replacements)
def test_any_state_value_is_kept_verbatim_or_rejected(base: dict[str, Any], state: Any) -> None:
    message = copy.deepcopy(base)
    new_state = message["event"]["data"]["new_state"]
    assume(new_state is not None)
    new_state["state"] = state
    record = check(message)
    if isinstance(state, str) and len(state) <= MAX_STATE_CHARS:
        assert record is not None
        assert record.state == state
        assert record.value == numeric_value(state)
    else:
        assert record is None


# -- 3. ULID codec ------------------------------------------------------------------------------

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _crockford(number: int) -> str:
    digits = ""
    for _ in range(26):
        number, rest = divmod(number, 32)
        digits = CROCKFORD[rest] + digits
    return digits


ulids = st.integers(0, 2**128 - 1).map(_crockford)


@settings(max_examples=60)
@given(st.from_regex(r"[0-7][0-9A-HJKMNP-TV-Z]{25}", fullmatch=True))
def test_ulids_are_stored_as_16_bytes_and_round_trip(ulid: str) -> None:
    stored = encode_context(ulid)
    assert isinstance(stored, bytes)
    assert len(stored) == 16
    assert decode_context(stored) == ulid


@settings(max_examples=150)
@given(st.integers(0, 2**128 - 1))
def test_ulid_bytes_are_the_big_endian_number(number: int) -> None:
    ulid = _crockford(number)
    assert encode_context(ulid) == number.to_bytes(16, "big")
    assert decode_context(number.to_bytes(16, "big")) == ulid


@settings(max_examples=150)
@given(st.text(max_size=30) | ulids | ulids.map(str.lower) | ulids.map(lambda u: u + "0"))
def test_any_string_round_trips(text: str) -> None:
    stored = encode_context(text)
    is_ulid = re.fullmatch(r"[0-7][0-9A-HJKMNP-TV-Z]{25}", text) is not None
    assert isinstance(stored, bytes) is is_ulid
    if not is_ulid:
        assert stored == text
    assert decode_context(stored) == text


def test_codec_edges() -> None:
    assert encode_context(None) is None
    assert decode_context(None) is None
    assert encode_context("0" * 26) == bytes(16)
    assert encode_context("7" + "Z" * 25) == b"\xff" * 16
    # "8..." would need 131 bits: not a ULID, kept as text.
    assert encode_context("8" + "0" * 25) == "8" + "0" * 25
    # Crockford excludes I, L, O, U.
    assert encode_context("01M8A9CZW8ENE63FBQ2PA6RTGI") == "01M8A9CZW8ENE63FBQ2PA6RTGI"


# -- 4. SQLite store round trip ----------------------------------------------------------------

STORE_ENTITIES = ["sensor.a", "sensor.b_2", "light.kitchen", "binary_sensor.door"]
TIMES = st.integers(MIN_TIME_US, 4_102_444_800_000_000)  # 2000 .. 2100
stored_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
store_attributes = st.dictionaries(
    st.sampled_from(["friendly_name", "unit_of_measurement", "device_class"]) | st.text(max_size=8),
    stored_json,
    max_size=4,
)
states = (
    st.none()
    | st.sampled_from(["on", "off", "21.5", "-3", "1e3", "unavailable", "é" * MAX_STATE_CHARS])
    | st.text(max_size=16)
)
context_ids = (
    st.none()
    | ulids
    | st.uuids().map(lambda u: u.hex)
    | st.text(max_size=64)
    | st.sampled_from(["01M8A9CZW8ENE63FBQ2PA6RTGS"])
)
small_ids = st.none() | st.sampled_from(["a", "b", "c"]) | st.text(min_size=1, max_size=10)


@st.composite
def records(draw: st.DrawFn) -> EventRecord:
    state = draw(states)
    time = draw(TIMES)
    dropped = draw(st.sampled_from([0, 0, 0, 20_000]))
    attributes = {} if state is None or dropped else draw(store_attributes)
    duration_us = draw(st.none() | st.integers(-(10**13), 10**13))
    return EventRecord(
        entity_id=draw(st.sampled_from(STORE_ENTITIES)),
        time=time,
        state=state,
        value=None if state is None else numeric_value(state),
        previous_state=draw(states),
        duration_in_state_s=None if duration_us is None else duration_us / 1_000_000,
        last_changed=draw(st.just(time) | TIMES),
        attributes=attributes,
        attributes_json=orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS),
        dropped_attributes_bytes=dropped,
        context_id=draw(context_ids),
        context_parent_id=draw(context_ids),
        context_user_id=draw(small_ids),
        device_id=draw(small_ids),
        area_id=draw(small_ids),
        floor_id=draw(small_ids),
        origin=draw(st.sampled_from(Origin)),
        source=draw(st.sampled_from(Source)),
    )


def _key(record: EventRecord) -> tuple[int, str]:
    return record.time, record.entity_id


def assert_same_records(got: list[EventRecord], expected: list[EventRecord]) -> None:
    assert len(got) == len(expected)
    for stored, original in zip(got, expected, strict=True):
        for field in dataclasses.fields(EventRecord):
            assert getattr(stored, field.name) == getattr(original, field.name), field.name
        assert type(stored.origin) is Origin
        assert type(stored.source) is Source


@settings(max_examples=10, deadline=None)
@given(st.lists(records(), min_size=1, max_size=10, unique_by=lambda r: (r.entity_id, r.time)))
def test_store_round_trip_and_idempotency(batch: list[EventRecord]) -> None:
    expected = sorted(batch, key=_key)
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteEventStore.in_dir(Path(tmp))
        try:
            assert store.write(batch) == len(batch)
            assert_same_records(store.all_records(), expected)
            assert store.write(batch) == 0
            assert store.keys() == {(r.entity_id, r.time) for r in batch}
        finally:
            store.close()
        reopened = SQLiteEventStore.in_dir(Path(tmp))
        try:
            assert reopened.write(list(reversed(batch))) == 0
            assert_same_records(reopened.all_records(), expected)
            for entity_id in {r.entity_id for r in batch}:
                history = reopened.history(entity_id, None, None, 1000)
                assert_same_records(history, [r for r in expected if r.entity_id == entity_id])
        finally:
            reopened.close()


@settings(max_examples=12, deadline=None)
@given(st.lists(records(), min_size=1, max_size=8), st.integers(0, 8))
def test_store_keeps_the_first_of_duplicate_keys(batch: list[EventRecord], split: int) -> None:
    first: dict[tuple[str, int], EventRecord] = {}
    for record in batch:
        first.setdefault((record.entity_id, record.time), record)
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteEventStore.in_dir(Path(tmp))
        try:
            new = store.write(batch[:split]) + store.write(batch[split:])
            assert new == len(first)
            assert_same_records(store.all_records(), sorted(first.values(), key=_key))
        finally:
            store.close()


@settings(max_examples=15, deadline=None)
@given(st.lists(mutated_messages(), min_size=1, max_size=6))
def test_normalized_messages_survive_the_store(messages: list[dict[str, Any]]) -> None:
    normalized: dict[tuple[str, int], EventRecord] = {}
    for message in messages:
        record = check(message)
        if record is not None:
            normalized.setdefault((record.entity_id, record.time), record)
    assume(normalized)
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteEventStore.in_dir(Path(tmp))
        try:
            assert store.write(list(normalized.values())) == len(normalized)
            assert_same_records(store.all_records(), sorted(normalized.values(), key=_key))
        finally:
            store.close()


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_format_time_us_renders_as_datetime_isoformat(time_us: int) -> None:
    """The fast renderer (a cached minute prefix) says what ``datetime`` says, µs exact."""
    try:
        expected = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=time_us)).isoformat()
    except OverflowError:
        expected = f"{time_us} µs since the epoch"
    assert format_time_us(time_us) == expected
    if time_us % 1_000_000 == 0:
        assert "." not in expected


@given(st.datetimes(timezones=st.just(UTC)))
def test_format_time_us_round_trips_every_datetime(when: datetime) -> None:
    time_us = (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    assert format_time_us(time_us) == when.isoformat()
    assert parse_time_us(format_time_us(time_us), "time") == time_us
