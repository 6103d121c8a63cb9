"""Line protocol for event records: exact lines, escaping, request splitting, InfluxQL
quoting (the one escaping module shared with the reader and the backup).

The round trip of arbitrary strings through a real InfluxDB is in test_reader.py and
tests/sinks/test_contract.py; here the encoder is checked against InfluxDB 1.x's parsing
rules as a small model (:func:`parse_series_key`).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homeiq.model import EventRecord, Origin, Source
from homeiq.sinks.influxdb import lineprotocol
from homeiq.sinks.influxdb.escaping import (
    decode_tag_value,
    encode_tag_value,
    escape_key,
    escape_measurement,
    escape_string_field,
    escape_tag_value,
    quote_ident,
    quote_literal,
)
from homeiq.sinks.influxdb.lineprotocol import LineEncoder, bodies

T0 = 1_795_641_737_000_000
M = "home_assistant_events"
ULID = "01HQ3GZ4C7Q3V2N8W1XKJ5T9RA"


def rec(entity_id: str = "sensor.temp", state: str | None = "21.5", **kw: Any) -> EventRecord:
    attributes = kw.pop("attributes", {})
    kw.setdefault("time", T0)
    return EventRecord(
        entity_id=entity_id,
        state=state,
        attributes=attributes,
        attributes_json=orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS),
        **kw,
    )


def line(record: EventRecord, measurement: str = M) -> str:
    return LineEncoder(measurement).encode(record).decode()


def test_a_full_record_is_one_exact_line() -> None:
    record = rec(
        "sensor.living_temp",
        "21.5",
        value=21.5,
        previous_state="21.0",
        duration_in_state_s=60.25,
        last_changed=T0 - 5,
        attributes={
            "device_class": "temperature",
            "friendly_name": "Living temp",
            "unit_of_measurement": "°C",
        },
        dropped_attributes_bytes=0,
        context_id=ULID,
        context_parent_id="parent",
        context_user_id="user1",
        device_id="dev1",
        area_id="living_room",
        floor_id="ground",
        origin=Origin.REMOTE,
        source=Source.BACKFILL,
    )
    assert line(record) == (
        f"{M},area_id=living_room,device_class=temperature,device_id=dev1,domain=sensor,"
        "entity_id=sensor.living_temp "
        'state="21.5",value=21.5,previous_state="21.0",duration_in_state_s=60.25,'
        f"last_changed={T0 - 5}i,"
        'attributes="{\\"device_class\\":\\"temperature\\",\\"friendly_name\\":'
        '\\"Living temp\\",\\"unit_of_measurement\\":\\"°C\\"}",'
        'unit_of_measurement="°C",friendly_name="Living temp",'
        f'context_id="{ULID}",context_parent_id="parent",context_user_id="user1",'
        f'floor_id="ground",origin=1i,source=1i {T0}\n'
    )


def test_a_removal_has_no_state_and_always_a_source() -> None:
    assert line(rec("light.gone", None, source=Source.IMPORT)) == (
        f'{M},domain=light,entity_id=light.gone attributes="{{}}",origin=0i,source=2i {T0}\n'
    )


@pytest.mark.parametrize(
    ("value", "written"),
    [(21.0, "21.0"), (21, "21.0"), (-0.5, "-0.5"), (1e20, "1e+20"), (1.5e-07, "1.5e-07")],
)
def test_value_is_always_a_float(value: float, written: str) -> None:
    assert f",value={written}," in line(rec(value=value))


def test_non_finite_numbers_are_left_out() -> None:
    text = line(rec(value=float("inf"), duration_in_state_s=float("nan")))
    assert "value=" not in text
    assert "duration_in_state_s" not in text


def test_dropped_attributes_bytes_only_when_positive() -> None:
    assert ",dropped_attributes_bytes=20000i," in line(rec(dropped_attributes_bytes=20_000))
    assert "dropped_attributes_bytes" not in line(rec())


def test_empty_tag_values_are_left_out() -> None:
    text = line(rec(device_id="", area_id=None, attributes={"device_class": ""}))
    assert text.startswith(f"{M},domain=sensor,entity_id=sensor.temp state=")


def test_a_device_class_that_is_not_a_string_is_no_tag() -> None:
    series_key = line(rec(attributes={"device_class": 3})).split(" ")[0]
    assert series_key == f"{M},domain=sensor,entity_id=sensor.temp"


def test_tags_escape_comma_equals_space() -> None:
    text = line(rec(area_id="a b,c=d"))
    assert text.startswith(f"{M},area_id=a\\ b\\,c\\=d,domain=sensor,")


def test_tags_carry_backslash_newline_and_percent_as_percent_codes() -> None:
    text = line(rec(device_id="x\\y\nz\r%"))
    assert ",device_id=x%5Cy%0Az%0D%25," in text
    assert text.count("\n") == 1


def test_measurement_escapes_comma_and_space() -> None:
    assert line(rec(), "my events,v2").startswith("my\\ events\\,v2,domain=sensor,")


@pytest.mark.parametrize(
    "bad", ["", "a\nb", "a\rb", "ends\\", "back\\ slash", "a\\,b", "#comment", "\tx", "a\x00"]
)
def test_measurement_that_cannot_be_written_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        escape_measurement(bad)


def test_string_fields_escape_quote_and_backslash_and_keep_newlines() -> None:
    text = line(rec(state='say "hi"\\\nbye'))
    assert 'state="say \\"hi\\"\\\\\nbye"' in text


def test_a_record_without_entity_id_cannot_be_encoded() -> None:
    with pytest.raises(ValueError):
        line(rec(""))


def test_a_lone_surrogate_cannot_be_encoded() -> None:
    with pytest.raises(UnicodeEncodeError):
        line(rec(state="\ud800"))


def test_the_caches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lineprotocol, "PREFIX_CACHE_SIZE", 3)
    monkeypatch.setattr(lineprotocol, "ATTRIBUTES_CACHE_SIZE", 3)
    encoder = LineEncoder(M)
    records = [rec(f"sensor.s{i}", attributes={"friendly_name": f"S{i}"}) for i in range(10)]
    lines = [encoder.encode(r).decode() for r in records * 2]
    assert lines == [line(r) for r in records * 2]
    assert [text.split(" ")[0] for text in lines[:10]] == [
        f"{M},domain=sensor,entity_id=sensor.s{i}" for i in range(10)
    ]
    assert all(f'friendly_name="S{i % 10}"' in text for i, text in enumerate(lines))
    assert len(encoder._prefixes) <= 3 and len(encoder._attributes) <= 3


def test_large_attribute_sets_are_not_cached() -> None:
    encoder = LineEncoder(M)
    big = rec(attributes={"blob": "x" * 5000})
    assert encoder.encode(big) == encoder.encode(big)
    assert encoder._attributes == {}


def test_unknown_percent_sequences_decode_as_written() -> None:
    assert decode_tag_value("100%zz%") == "100%zz%"
    assert decode_tag_value("a%5Cb%25%0A") == "a\\b%\n"


# -- a model of InfluxDB 1.x's parsing of the series key --------------------------------------


def parse_series_key(text: str) -> tuple[str, dict[str, str]]:
    """Split ``measurement,k=v,... `` as InfluxDB 1.6 does: a backslash escapes the next
    character for the scanner, and only ``\\,`` ``\\ `` ``\\=`` ``\\"`` are unescaped."""
    parts, current, i = [], "", 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            current += nxt if nxt in ', ="' else char + nxt
            i += 2
            continue
        if char in ", ":
            parts.append(current)
            current = ""
            if char == " ":
                break
        else:
            assert char not in "\n\r", "a raw newline in the series key ends the line"
            current += char
        i += 1
    measurement, *tags = parts
    return measurement, dict(tag.split("=", 1) for tag in tags)


texts = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",))
    | st.sampled_from(list(" ,=\"'\\\n\r%#\t")),
    min_size=1,
    max_size=30,
)


@settings(max_examples=300)
@given(texts, texts, texts)
def test_any_tag_value_survives_influxdbs_parsing(device: str, area: str, klass: str) -> None:
    encoded = line(rec(device_id=device, area_id=area, attributes={"device_class": klass}))
    measurement, tags = parse_series_key(encoded)
    assert measurement == M
    decoded = {key: decode_tag_value(value) for key, value in tags.items()}
    assert decoded == {
        "area_id": area,
        "device_class": klass,
        "device_id": device,
        "domain": "sensor",
        "entity_id": "sensor.temp",
    }


@settings(max_examples=200)
@given(texts)
def test_tag_codes_round_trip(value: str) -> None:
    assert decode_tag_value(encode_tag_value(value)) == value
    assert "\n" not in escape_tag_value(value)


@settings(max_examples=200)
@given(texts.filter(bool))
def test_the_sinks_tag_escape_is_the_strict_rule_on_the_stored_form(value: str) -> None:
    # One rule for every writer: the sink's one-translate fast path must agree with the
    # strict escaper the backup uses, applied to the percent-coded value.
    assert escape_tag_value(value) == escape_key(encode_tag_value(value))


def test_a_measurement_with_an_inner_backslash_is_written_as_is() -> None:
    # InfluxDB reads it back unchanged; only one before a delimiter or at the end is not.
    assert line(rec(), "a\\b").startswith("a\\b,domain=sensor,")


@settings(max_examples=200)
@given(texts)
def test_string_fields_round_trip(value: str) -> None:
    escaped = escape_string_field(value)
    # InfluxDB's scanner and unescaping, left to right: a backslash takes the next char.
    out, i = "", 0
    while i < len(escaped):
        if escaped[i] == "\\" and i + 1 < len(escaped) and escaped[i + 1] in '\\"':
            out += escaped[i + 1]
            i += 2
        else:
            out += escaped[i]
            i += 1
    assert out == value


# -- request bodies ---------------------------------------------------------------------------


def test_bodies_split_by_bytes_and_events_in_order() -> None:
    lines = [b"x" * 10 + b"\n" for _ in range(10)]  # 11 bytes each
    by_bytes = list(bodies(lines, max_bytes=35, max_events=100))
    assert [len(b) for b in by_bytes] == [33, 33, 33, 11]
    by_events = list(bodies(lines, max_bytes=10_000, max_events=4))
    assert [b.count(b"\n") for b in by_events] == [4, 4, 2]
    assert b"".join(by_bytes) == b"".join(by_events) == b"".join(lines)


def test_a_line_longer_than_the_limit_goes_alone() -> None:
    lines = [b"a\n", b"b" * 50 + b"\n", b"c\n"]
    assert list(bodies(lines, max_bytes=10, max_events=100)) == lines


def test_no_lines_no_bodies() -> None:
    assert list(bodies([], 100, 100)) == []


# -- InfluxQL quoting -------------------------------------------------------------------------


def test_quote_literal_escapes_backslash_quote_and_newline() -> None:
    assert quote_literal("it's") == "'it\\'s'"
    assert quote_literal("a\\' OR 1=1 --") == "'a\\\\\\' OR 1=1 --'"
    assert quote_literal("two\nlines") == "'two\\nlines'"


def test_quote_ident_escapes_backslash_double_quote_and_newline() -> None:
    assert quote_ident("home_assistant_events") == '"home_assistant_events"'
    assert quote_ident('my "db"\\x\n') == '"my \\"db\\"\\\\x\\n"'
