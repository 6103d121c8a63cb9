"""Unit tests for the ingestion boundary: every validation rule and reason code of
:class:`homeiq.pipeline.normalize.Normalizer`, and the shape of the records it makes.

Real messages recorded from Home Assistant 2024.3.3 are the base; each test changes only
what it is about.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from homeiq.errors import InvalidEvent, PermanentError
from homeiq.metadata.registry import Registry
from homeiq.model import (
    NO_PLACEMENT,
    Area,
    Device,
    Entity,
    Floor,
    Origin,
    Placement,
    RegistrySnapshot,
    Source,
)
from homeiq.pipeline.normalize import (
    MAX_STATE_CHARS,
    MIN_TIME_US,
    Normalizer,
    format_time_us,
    numeric_value,
    parse_time_us,
    valid_entity_id,
)
from tests.support.replay import recorded_state_changes

Message = dict[str, Any]


def _us(stamp: str) -> int:
    """Independent reference conversion (integer arithmetic, no float rounding)."""
    moment = datetime.fromisoformat(stamp).astimezone(UTC)
    whole = int((moment.replace(microsecond=0) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
    return whole * 1_000_000 + moment.microsecond


RECORDED: list[Message] = recorded_state_changes()
# The capture ran at 2026-11-25 21:22-21:24 UTC; judge "the future" from just after it.
CAPTURE_END = datetime(2026, 11, 25, 21, 30, tzinfo=UTC).timestamp()


def _first(predicate: Callable[[Message], bool]) -> Message:
    return copy.deepcopy(next(m for m in RECORDED if predicate(m)))


def _data(message: Message) -> dict[str, Any]:
    return message["event"]["data"]


def temperature_change() -> Message:
    """sensor.harness_temperature 21.98 -> 18.76: a plain numeric state change."""
    return _first(lambda m: _data(m)["entity_id"] == "sensor.harness_temperature")


def attribute_only_update() -> Message:
    """automation.harness_tick stays "on"; only attributes and last_updated change."""
    return _first(
        lambda m: (
            _data(m)["entity_id"] == "automation.harness_tick"
            and _data(m)["old_state"]["state"] == _data(m)["new_state"]["state"]
        )
    )


def creation() -> Message:
    return _first(
        lambda m: _data(m)["entity_id"] == "sensor.fixture_new" and _data(m)["old_state"] is None
    )


def removal() -> Message:
    return _first(
        lambda m: _data(m)["entity_id"] == "sensor.fixture_new" and _data(m)["new_state"] is None
    )


def normalizer(**kwargs: Any) -> Normalizer:
    kwargs.setdefault("clock", lambda: CAPTURE_END)
    return Normalizer(**kwargs)


def reject(message: Any, **kwargs: Any) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as info:
        normalizer(**kwargs).message(message)
    return info.value


# -- the happy path on real messages ---------------------------------------------------


def test_recorded_state_change_becomes_the_documented_record() -> None:
    message = temperature_change()
    new = _data(message)["new_state"]
    record = normalizer().message(message)

    assert record.entity_id == "sensor.harness_temperature"
    assert record.domain == "sensor"
    assert record.time == _us("2026-11-25T21:22:17.096571+00:00")
    assert record.last_changed == record.time
    assert record.state == "18.76"
    assert record.value == 18.76
    assert record.previous_state == "21.98"
    # new.last_changed - old.last_changed = 17.096571 - 16.099001
    assert record.duration_in_state_s == pytest.approx(0.99757, abs=1e-9)
    assert record.attributes == new["attributes"]
    assert record.attributes_json == orjson.dumps(new["attributes"], option=orjson.OPT_SORT_KEYS)
    assert record.dropped_attributes_bytes == 0
    assert record.device_class == "temperature"
    assert record.unit_of_measurement == "°C"
    assert record.friendly_name == "Harness temperature"
    assert record.context_id == "01M8A9CZW8ENE63FBQ2PA6RTGS"
    assert record.context_parent_id is None
    assert record.context_user_id is None
    assert (record.device_id, record.area_id, record.floor_id) == (None, None, None)
    assert record.origin is Origin.LOCAL
    assert record.source is Source.LIVE
    assert not record.removed


def test_every_recorded_message_normalizes() -> None:
    norm = normalizer()
    records = [norm.message(m) for m in RECORDED]
    assert len(records) == len(RECORDED) == 735
    for message, record in zip(RECORDED, records, strict=True):
        assert record.entity_id == _data(message)["entity_id"]
    # The session holds creations, removals and one oversized attribute set.
    assert sum(r.removed for r in records) == 3
    assert sum(r.previous_state is None for r in records) >= 3
    assert {r.entity_id for r in records if r.dropped_attributes_bytes} == {"sensor.fixture_large"}


def test_context_user_id_is_kept() -> None:
    message = _first(lambda m: bool(_data(m)["new_state"] and m["event"]["context"]["user_id"]))
    record = normalizer().message(message)
    assert record.context_user_id == _data(message)["new_state"]["context"]["user_id"]
    assert record.context_user_id == "afa9bd51afee4f0795c6dcbeeb4ad3a1"


def test_source_is_passed_through() -> None:
    norm = normalizer()
    assert norm.message(temperature_change(), Source.BACKFILL).source is Source.BACKFILL
    assert norm.message(temperature_change(), Source.IMPORT).source is Source.IMPORT


def test_json_attribute_encoding_is_sorted_and_raw_utf8() -> None:
    message = temperature_change()
    _data(message)["new_state"]["attributes"] = {"b": 1, "a": "°C", "c": [1.5, None]}
    record = normalizer().message(message)
    assert record.attributes_json == '{"a":"°C","b":1,"c":[1.5,null]}'.encode()


# -- creation, removal, attribute-only updates ------------------------------------------


def test_creation_has_no_previous_state_or_duration() -> None:
    message = creation()
    record = normalizer().message(message)
    assert record.entity_id == "sensor.fixture_new"
    assert record.state == "42"
    assert record.value == 42.0
    assert record.previous_state is None
    assert record.duration_in_state_s is None
    assert record.device_class == "power"


def test_removal_record_from_null_new_state() -> None:
    message = removal()
    old = _data(message)["old_state"]
    record = normalizer().message(message)

    assert record.removed
    assert record.state is None
    assert record.value is None
    assert record.time == _us(message["event"]["time_fired"])
    assert record.last_changed == record.time
    assert record.previous_state == old["state"] == "43.5"
    assert record.duration_in_state_s == pytest.approx(
        (_us(message["event"]["time_fired"]) - _us(old["last_changed"])) / 1e6
    )
    assert record.attributes == {}
    assert record.attributes_json == b"{}"
    # The removal's context is the event's, not the old state's.
    assert record.context_id == message["event"]["context"]["id"]
    assert record.context_id != old["context"]["id"]


def test_removal_uses_placement_and_origin() -> None:
    message = removal()
    message["event"]["origin"] = "REMOTE"
    placed = Placement("dev1", "kitchen", "ground")
    record = normalizer(placement_of=lambda _e: placed).message(message)
    assert (record.device_id, record.area_id, record.floor_id) == ("dev1", "kitchen", "ground")
    assert record.origin is Origin.REMOTE


def test_removal_needs_a_valid_time_fired() -> None:
    message = removal()
    message["event"]["time_fired"] = "not a time"
    assert reject(message).reason == "bad_timestamp"
    del message["event"]["time_fired"]
    assert reject(message).reason == "bad_timestamp"


def test_removal_in_future_is_rejected() -> None:
    message = removal()
    message["event"]["time_fired"] = "2030-01-01T00:00:00+00:00"
    assert reject(message).reason == "timestamp_in_future"


def test_removal_with_bad_event_context_is_rejected() -> None:
    message = removal()
    message["event"]["context"] = ["not", "an", "object"]
    assert reject(message).reason == "bad_context"


def test_attribute_only_update_has_no_duration() -> None:
    message = attribute_only_update()
    new = _data(message)["new_state"]
    record = normalizer().message(message)
    assert record.state == record.previous_state == "on"
    assert record.duration_in_state_s is None
    assert record.time == _us(new["last_updated"])
    assert record.last_changed == _us(new["last_changed"])
    assert record.last_changed < record.time


# -- duration_in_state_s ------------------------------------------------------------------


def test_duration_is_new_last_changed_minus_old_last_changed() -> None:
    message = temperature_change()
    old, new = _data(message)["old_state"], _data(message)["new_state"]
    old["last_changed"] = "2026-11-25T20:00:00+00:00"
    new["last_changed"] = new["last_updated"] = "2026-11-25T21:00:00.5+00:00"
    assert normalizer().message(message).duration_in_state_s == 3600.5


def test_duration_uses_new_last_changed_not_last_updated() -> None:
    message = temperature_change()
    old, new = _data(message)["old_state"], _data(message)["new_state"]
    old["last_changed"] = "2026-11-25T20:00:00+00:00"
    new["last_changed"] = "2026-11-25T20:00:10+00:00"
    new["last_updated"] = "2026-11-25T20:00:30+00:00"
    record = normalizer().message(message)
    assert record.duration_in_state_s == 10.0
    assert record.last_changed == _us("2026-11-25T20:00:10+00:00")
    assert record.time == _us("2026-11-25T20:00:30+00:00")


@pytest.mark.parametrize(
    ("old_changed", "new_changed"),
    [
        ("2026-11-25T21:00:00+00:00", "2026-11-25T20:00:00+00:00"),  # time ran backwards
        ("1455-01-01T00:00:00+00:00", "2026-11-25T20:00:00+00:00"),  # before 2000
        ("2026-11-25T20:00:00+00:00", "2600-01-01T00:00:00+00:00"),  # > 2**53 µs
    ],
)
def test_impossible_spans_keep_previous_state_without_duration(
    old_changed: str, new_changed: str
) -> None:
    message = temperature_change()
    old, new = _data(message)["old_state"], _data(message)["new_state"]
    old["last_changed"] = old_changed
    new["last_changed"] = new_changed
    record = normalizer().message(message)
    assert record.previous_state == "21.98"
    assert record.duration_in_state_s is None


@pytest.mark.parametrize("bad", [None, 17, "garbage", "2026-11-25T20:00:00"])
def test_unparseable_old_last_changed_keeps_previous_state_without_duration(bad: Any) -> None:
    message = temperature_change()
    _data(message)["old_state"]["last_changed"] = bad
    record = normalizer().message(message)
    assert record.previous_state == "21.98"
    assert record.duration_in_state_s is None


@pytest.mark.parametrize("bad", [None, 3, ["on"]])
def test_non_string_old_state_gives_no_previous_state(bad: Any) -> None:
    message = temperature_change()
    _data(message)["old_state"]["state"] = bad
    record = normalizer().message(message)
    assert record.previous_state is None
    assert record.duration_in_state_s is None


def test_missing_last_changed_defaults_to_last_updated() -> None:
    message = temperature_change()
    del _data(message)["new_state"]["last_changed"]
    record = normalizer().message(message)
    assert record.last_changed == record.time


def test_missing_attributes_and_context_are_empty() -> None:
    message = temperature_change()
    del _data(message)["new_state"]["attributes"]
    del _data(message)["new_state"]["context"]
    record = normalizer().message(message)
    assert record.attributes == {}
    assert record.attributes_json == b"{}"
    assert (record.context_id, record.context_parent_id, record.context_user_id) == (
        None,
        None,
        None,
    )


def test_inner_entity_id_may_be_omitted() -> None:
    message = temperature_change()
    del _data(message)["new_state"]["entity_id"]
    assert normalizer().message(message).entity_id == "sensor.harness_temperature"


# -- reason codes -----------------------------------------------------------------------


def _set(path: tuple[str, ...], value: Any) -> Callable[[Message], None]:
    def mutate(message: Message) -> None:
        target: Any = message
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _delete(path: tuple[str, ...]) -> Callable[[Message], None]:
    def mutate(message: Message) -> None:
        target: Any = message
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


EID = ("event", "data", "entity_id")
NEW = ("event", "data", "new_state")
OLD = ("event", "data", "old_state")

REJECTIONS: list[tuple[str, Callable[[Message], None], str]] = [
    ("upper-case entity id", _set(EID, "Sensor.Temp"), "bad_entity_id"),
    ("entity id without dot", _set(EID, "sensor"), "bad_entity_id"),
    ("leading underscore", _set(EID, "sensor._temp"), "bad_entity_id"),
    ("trailing underscore", _set(EID, "sensor.temp_"), "bad_entity_id"),
    ("double underscore", _set(EID, "sensor.te__mp"), "bad_entity_id"),
    ("two dots", _set(EID, "sensor.a.b"), "bad_entity_id"),
    ("space", _set(EID, "sensor.a b"), "bad_entity_id"),
    ("too long", _set(EID, "sensor." + "a" * 250), "bad_entity_id"),
    ("numeric entity id", _set(EID, 42), "bad_entity_id"),
    ("missing entity id", _delete(EID), "bad_entity_id"),
    ("numeric state", _set((*NEW, "state"), 18.76), "bad_state"),
    ("null state", _set((*NEW, "state"), None), "bad_state"),
    ("missing state", _delete((*NEW, "state")), "bad_state"),
    ("state too long", _set((*NEW, "state"), "x" * 256), "state_too_long"),
    ("missing last_updated", _delete((*NEW, "last_updated")), "bad_timestamp"),
    ("numeric last_updated", _set((*NEW, "last_updated"), 1_700_000_000), "bad_timestamp"),
    ("garbage last_updated", _set((*NEW, "last_updated"), "yesterday"), "bad_timestamp"),
    ("naive last_updated", _set((*NEW, "last_updated"), "2026-11-25T21:22:17"), "bad_timestamp"),
    ("date-only last_updated", _set((*NEW, "last_updated"), "2026-11-25"), "bad_timestamp"),
    ("naive last_changed", _set((*NEW, "last_changed"), "2026-11-25T21:22:17"), "bad_timestamp"),
    ("numeric last_changed", _set((*NEW, "last_changed"), 5), "bad_timestamp"),
    (
        "future last_updated",
        _set((*NEW, "last_updated"), "2027-01-01T00:00:00+00:00"),
        "timestamp_in_future",
    ),
    (
        "pre-2000 last_updated",
        _set((*NEW, "last_updated"), "1999-12-31T23:59:59.999999+00:00"),
        "timestamp_too_old",
    ),
    (
        "epoch last_updated",
        _set((*NEW, "last_updated"), "1970-01-01T00:00:00+00:00"),
        "timestamp_too_old",
    ),
    ("context string", _set((*NEW, "context"), "01M8A9CZW8ENE63FBQ2PA6RTGS"), "bad_context"),
    ("context id number", _set((*NEW, "context", "id"), 12345), "bad_context"),
    ("context id too long", _set((*NEW, "context", "id"), "x" * 65), "bad_context"),
    ("context parent list", _set((*NEW, "context", "parent_id"), ["a"]), "bad_context"),
    ("context user too long", _set((*NEW, "context", "user_id"), "u" * 65), "bad_context"),
    ("attributes list", _set((*NEW, "attributes"), [1, 2]), "bad_attributes"),
    ("attributes string", _set((*NEW, "attributes"), "{}"), "bad_attributes"),
    ("attributes null", _set((*NEW, "attributes"), None), "bad_attributes"),
    ("attribute key not a string", _set((*NEW, "attributes"), {1: "one"}), "bad_attributes"),
    ("attribute int beyond 64 bits", _set((*NEW, "attributes"), {"n": 2**70}), "bad_attributes"),
    (
        "new_state for another entity",
        _set((*NEW, "entity_id"), "sensor.harness_humidity"),
        "entity_id_mismatch",
    ),
    ("both states null", lambda m: (_set(NEW, None)(m), _set(OLD, None)(m)), "no_state"),
    ("other event type", _set(("event", "event_type"), "call_service"), "unexpected_event_type"),
    ("missing event type", _delete(("event", "event_type")), "unexpected_event_type"),
    ("missing data", _delete(("event", "data")), "missing_data"),
    ("data is a list", _set(("event", "data"), []), "missing_data"),
    ("missing event", _delete(("event",)), "missing_event"),
    ("event is a string", _set(("event",), "state_changed"), "missing_event"),
    ("new_state string", _set(NEW, "on"), "bad_new_state"),
    ("new_state list", _set(NEW, [{"state": "on"}]), "bad_new_state"),
    ("old_state string", _set(OLD, "on"), "bad_old_state"),
    ("old_state number", _set(OLD, 0), "bad_old_state"),
]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [pytest.param(mutate, reason, id=name) for name, mutate, reason in REJECTIONS],
)
def test_invalid_message_is_rejected_with_reason(
    mutate: Callable[[Message], None], reason: str
) -> None:
    message = temperature_change()
    mutate(message)
    error = reject(message)
    assert error.reason == reason
    assert isinstance(error, PermanentError)
    assert error.detail
    assert str(error).startswith(f"{reason}: ")


@pytest.mark.parametrize("message", [None, [], "event", 42, 1.5, True])
def test_non_object_message_is_rejected(message: Any) -> None:
    assert reject(message).reason == "not_an_object"


def test_rejection_detail_truncates_huge_entity_ids() -> None:
    message = temperature_change()
    _data(message)["entity_id"] = "X" * 100_000
    error = reject(message)
    assert error.reason == "bad_entity_id"
    assert len(error.detail) < 200


def test_state_of_exactly_255_chars_is_accepted() -> None:
    message = temperature_change()
    _data(message)["new_state"]["state"] = "s" * MAX_STATE_CHARS
    record = normalizer().message(message)
    assert record.state == "s" * 255
    assert record.value is None


def test_context_ids_of_64_chars_are_accepted() -> None:
    message = temperature_change()
    _data(message)["new_state"]["context"] = {
        "id": "i" * 64,
        "parent_id": "p" * 64,
        "user_id": None,
    }
    record = normalizer().message(message)
    assert record.context_id == "i" * 64
    assert record.context_parent_id == "p" * 64


def test_null_context_is_accepted() -> None:
    message = temperature_change()
    _data(message)["new_state"]["context"] = None
    assert normalizer().message(message).context_id is None


# -- time checks and the clock -------------------------------------------------------------


def _at(stamp: str) -> Message:
    message = temperature_change()
    new = _data(message)["new_state"]
    new["last_updated"] = new["last_changed"] = stamp
    return message


def test_future_tolerance_boundary_uses_the_clock() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    norm = Normalizer(future_tolerance_s=60, clock=lambda: now)
    at_limit = norm.message(_at("2026-01-01T00:01:00+00:00"))
    assert at_limit.time == _us("2026-01-01T00:01:00+00:00")
    with pytest.raises(InvalidEvent) as info:
        norm.message(_at("2026-01-01T00:01:00.000001+00:00"))
    assert info.value.reason == "timestamp_in_future"
    assert "2026-01-01T00:01:00.000001+00:00" in info.value.detail


def test_future_check_follows_a_moving_clock() -> None:
    now = [datetime(2026, 1, 1, tzinfo=UTC).timestamp()]
    norm = Normalizer(future_tolerance_s=0, clock=lambda: now[0])
    message = _at("2026-01-01T00:00:05+00:00")
    with pytest.raises(InvalidEvent, match="timestamp_in_future"):
        norm.message(message)
    now[0] += 5
    assert norm.message(message).time == _us("2026-01-01T00:00:05+00:00")


def test_offsets_are_converted_before_the_future_check() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    norm = Normalizer(future_tolerance_s=0, clock=lambda: now)
    # 01:00+01:00 is midnight UTC: not in the future.
    record = norm.message(_at("2026-01-01T01:00:00+01:00"))
    assert record.time == _us("2026-01-01T00:00:00+00:00")
    with pytest.raises(InvalidEvent, match="timestamp_in_future"):
        norm.message(_at("2026-01-01T00:00:00-01:00"))


def test_oldest_accepted_time_is_2000() -> None:
    record = normalizer().message(_at("2000-01-01T00:00:00+00:00"))
    assert record.time == MIN_TIME_US
    error = reject(_at("1999-12-31T23:59:59+00:00"))
    assert error.reason == "timestamp_too_old"
    assert "predates 2000" in error.detail


def test_default_clock_is_the_wall_clock() -> None:
    norm = Normalizer(future_tolerance_s=0)
    with pytest.raises(InvalidEvent, match="timestamp_in_future"):
        norm.message(_at("2999-01-01T00:00:00+00:00"))
    stamp = datetime.now(UTC).replace(microsecond=0).isoformat()
    assert norm.message(_at(stamp)).time == _us(stamp)


@pytest.mark.parametrize("stamp", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_timestamp_beyond_datetime_range_after_utc_conversion_is_invalid(stamp: str) -> None:
    error = reject(_at(stamp))
    assert error.reason in {"bad_timestamp", "timestamp_in_future", "timestamp_too_old"}


# -- numeric values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("42", 42.0),
        ("-3.5", -3.5),
        ("+5", 5.0),
        (".5", 0.5),
        ("1e3", 1000.0),
        ("1E-3", 0.001),
        ("0", 0.0),
        ("1_000", None),
        ("nan", None),
        ("NaN", None),
        ("-nan", None),
        ("inf", None),
        ("-inf", None),
        ("+infinity", None),
        ("1e999", None),
        (" 12", None),
        ("12 ", None),
        ("12\n", None),
        ("", None),
        ("-", None),
        ("0x10", None),
        ("unavailable", None),
        ("unknown", None),
        ("on", None),
        ("12 W", None),
    ],
)
def test_numeric_value(state: str, expected: float | None) -> None:
    assert numeric_value(state) == expected


@pytest.mark.parametrize(("state", "value"), [("1e3", 1000.0), ("1_000", None), ("inf", None)])
def test_record_value_follows_numeric_value(state: str, value: float | None) -> None:
    message = temperature_change()
    _data(message)["new_state"]["state"] = state
    record = normalizer().message(message)
    assert record.state == state
    assert record.value == value


# -- attribute size cap ---------------------------------------------------------------------


def test_oversized_attributes_are_dropped_and_measured() -> None:
    message = temperature_change()
    attributes = {"friendly_name": "Big", "blob": "x" * 500, "device_class": "power"}
    _data(message)["new_state"]["attributes"] = attributes
    size = len(orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS))
    record = normalizer(attributes_max_bytes=size - 1).message(message)
    assert record.dropped_attributes_bytes == size
    assert record.attributes == {}
    assert record.attributes_json == b"{}"
    assert record.device_class is None
    # The state itself is kept.
    assert record.state == "18.76"
    assert record.value == 18.76


def test_attributes_exactly_at_the_cap_are_kept() -> None:
    message = temperature_change()
    attributes = _data(message)["new_state"]["attributes"]
    size = len(orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS))
    record = normalizer(attributes_max_bytes=size).message(message)
    assert record.dropped_attributes_bytes == 0
    assert record.attributes == attributes


def test_recorded_large_attributes_exceed_the_default_cap() -> None:
    message = _first(
        lambda m: _data(m)["entity_id"] == "sensor.fixture_large" and _data(m)["new_state"]
    )
    attributes = _data(message)["new_state"]["attributes"]
    record = normalizer().message(message)
    assert record.dropped_attributes_bytes == len(
        orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS)
    )
    assert record.dropped_attributes_bytes > 16_384
    assert record.attributes == {}
    assert record.state == "260"


def test_zero_cap_drops_everything_but_empty_attributes() -> None:
    norm = normalizer(attributes_max_bytes=0)
    assert norm.message(temperature_change()).dropped_attributes_bytes > 0
    message = temperature_change()
    _data(message)["new_state"]["attributes"] = {}
    # b"{}" is two bytes, over a zero cap: still "dropped", and still empty.
    record = norm.message(message)
    assert record.attributes == {}
    assert record.attributes_json == b"{}"


# -- placement and origin -----------------------------------------------------------------


def test_placement_lookup_fills_device_area_floor() -> None:
    asked: list[str] = []

    def placement_of(entity_id: str) -> Placement:
        asked.append(entity_id)
        return Placement("dev-1", "kitchen", "ground")

    record = normalizer(placement_of=placement_of).message(temperature_change())
    assert asked == ["sensor.harness_temperature"]
    assert (record.device_id, record.area_id, record.floor_id) == ("dev-1", "kitchen", "ground")


def test_placement_from_the_registry() -> None:
    registry = Registry(
        RegistrySnapshot(
            floors=(Floor("ground", "Ground"),),
            areas=(Area("kitchen", "Kitchen", "ground"),),
            devices=(Device("dev-1", area_id="kitchen"),),
            entities=(Entity("sensor.harness_temperature", device_id="dev-1"),),
        )
    )
    norm = normalizer(placement_of=registry.placement_of)
    record = norm.message(temperature_change())
    assert (record.device_id, record.area_id, record.floor_id) == ("dev-1", "kitchen", "ground")
    other = norm.message(creation())
    assert (other.device_id, other.area_id, other.floor_id) == (None, None, None)
    assert registry.placement_of("sensor.fixture_new") is NO_PLACEMENT


def test_placement_lookup_not_called_for_rejected_messages() -> None:
    calls: list[str] = []
    norm = normalizer(placement_of=lambda e: calls.append(e) or NO_PLACEMENT)
    message = temperature_change()
    _data(message)["new_state"]["state"] = 1
    with pytest.raises(InvalidEvent):
        norm.message(message)
    assert calls == []


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("REMOTE", Origin.REMOTE),
        ("LOCAL", Origin.LOCAL),
        ("remote", Origin.LOCAL),
        (None, Origin.LOCAL),
    ],
)
def test_origin(origin: Any, expected: Origin) -> None:
    message = temperature_change()
    message["event"]["origin"] = origin
    assert normalizer().message(message).origin is expected


def test_missing_origin_is_local() -> None:
    message = temperature_change()
    del message["event"]["origin"]
    assert normalizer().message(message).origin is Origin.LOCAL


@pytest.mark.parametrize("origin", [["REMOTE"], {"x": 1}])
def test_unhashable_origin_does_not_crash(origin: Any) -> None:
    message = temperature_change()
    message["event"]["origin"] = origin
    try:
        record = normalizer().message(message)
    except InvalidEvent:
        return
    assert record.origin is Origin.LOCAL


# -- state_row (REST history rows) -------------------------------------------------------------


def test_state_row_normalizes_a_bare_state() -> None:
    message = temperature_change()
    new, old = _data(message)["new_state"], _data(message)["old_state"]
    record = normalizer().state_row("sensor.harness_temperature", new, old, Source.BACKFILL)
    live = normalizer().message(message)
    assert record.source is Source.BACKFILL
    assert record.origin is Origin.LOCAL
    assert (record.time, record.state, record.previous_state) == (
        live.time,
        live.state,
        live.previous_state,
    )
    assert record.duration_in_state_s == live.duration_in_state_s


def test_state_row_rejects_a_bad_entity_id() -> None:
    new = _data(temperature_change())["new_state"]
    with pytest.raises(InvalidEvent) as info:
        normalizer().state_row("Not Valid", new, None, Source.BACKFILL)
    assert info.value.reason == "bad_entity_id"


# -- entity ids and time codec ----------------------------------------------------------------


@pytest.mark.parametrize(
    "entity_id",
    ["sensor.temp", "sensor.t", "a.b", "input_number.harness_level", "sensor.2nd_floor", "x1.y_2"],
)
def test_valid_entity_ids(entity_id: str) -> None:
    assert valid_entity_id(entity_id)


@pytest.mark.parametrize(
    "entity_id",
    ["", ".", "sensor.", ".temp", "_sensor.x", "sensor_.x", "sen__sor.x", "sensor.é", "sensor.T"],
)
def test_invalid_entity_ids(entity_id: str) -> None:
    assert not valid_entity_id(entity_id)


def test_entity_id_length_limit() -> None:
    assert valid_entity_id("s." + "a" * 253)
    assert not valid_entity_id("s." + "a" * 254)


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("1970-01-01T00:00:00+00:00", 0),
        ("2000-01-01T00:00:00+00:00", MIN_TIME_US),
        ("2026-11-25T21:22:17.096571+00:00", 1_795_641_737_096_571),
        ("2026-11-25T22:22:17.096571+01:00", 1_795_641_737_096_571),
        ("2026-11-25T21:22:17.096571Z", 1_795_641_737_096_571),
        ("1969-12-31T23:59:59.999999+00:00", -1),
    ],
)
def test_parse_time_us(stamp: str, expected: int) -> None:
    assert parse_time_us(stamp, "t") == expected
    assert _us(stamp) == expected


@pytest.mark.parametrize(
    "time_us", [0, 1, -1, MIN_TIME_US, 1_795_641_737_096_571, 1_795_641_737_000_000]
)
def test_format_then_parse_round_trips(time_us: int) -> None:
    text = format_time_us(time_us)
    assert text.endswith("+00:00")
    assert parse_time_us(text, "t") == time_us


def test_format_matches_home_assistant_rendering() -> None:
    stamp = "2026-11-25T21:22:17.096571+00:00"
    assert format_time_us(parse_time_us(stamp, "t")) == stamp
    # Whole seconds render without a fraction, as Python (and so HA) does.
    assert format_time_us(1_795_641_737_000_000) == "2026-11-25T21:22:17+00:00"


@pytest.mark.parametrize("value", [None, 5, 1.5, b"2026-11-25T21:22:17+00:00", ["x"]])
def test_parse_time_us_rejects_non_strings(value: Any) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_time_us(value, "last_updated")
    assert info.value.reason == "bad_timestamp"
    assert "last_updated" in info.value.detail


def test_parse_time_us_rejects_naive_and_names_the_field() -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_time_us("2026-11-25T21:22:17", "time_fired")
    assert info.value.reason == "bad_timestamp"
    assert "time_fired" in info.value.detail
    assert "no UTC offset" in info.value.detail
