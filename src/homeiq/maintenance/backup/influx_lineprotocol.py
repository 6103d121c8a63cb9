"""Line protocol as backup exports write it: one point a line, nanosecond times, every
field in its stored type, and the parser that reads it back (and checks a whole export
without writing anything, for ``homeiq backup verify``).

Formatting and parsing are strict mirror images (property-tested): what
:func:`format_line` writes, :func:`parse_line` reads back to the same point, and
anything InfluxDB's own parsers would read differently is refused when written, by the
store's one escaping module (:mod:`homeiq.sinks.influxdb.escaping`).
"""

from __future__ import annotations

import gzip
import math
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homeiq.sinks.influxdb.escaping import (
    escape_field_key,
    escape_key,
    escape_measurement,
    escape_string_field,
)

READ_BLOCK_BYTES = 1 << 20
FIELD_TYPES = ("float", "integer", "unsigned", "string", "boolean")
MIN_NS, MAX_NS = -(2**63) + 2, 2**63 - 2  # InfluxDB's time range
_INT64 = (-(2**63), 2**63 - 1)


FieldValue = float | int | str | bool


@dataclass(frozen=True, slots=True)
class LinePoint:
    """One point of an export line: its fields as name → (type, value)."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, tuple[str, FieldValue]]
    time_ns: int


def _float(value: Any) -> str:
    # 21.0 arrives as the int 21; repr gives the shortest text that parses back exactly.
    if type(value) is not float and type(value) is not int:
        raise ValueError(f"{value!r} is not a float")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} has no line-protocol form")
    return repr(number)


def _integer(value: Any) -> str:
    if type(value) is not int or not _INT64[0] <= value <= _INT64[1]:
        raise ValueError(f"{value!r} is not a 64-bit integer")
    return f"{value}i"


def _unsigned(value: Any) -> str:
    if type(value) is not int or not 0 <= value < 2**64:
        raise ValueError(f"{value!r} is not a 64-bit unsigned integer")
    return f"{value}u"


def _string(value: Any) -> str:
    if type(value) is not str:
        raise ValueError(f"{value!r} is not a string")
    return f'"{escape_string_field(value)}"'


def _boolean(value: Any) -> str:
    if type(value) is not bool:
        raise ValueError(f"{value!r} is not a boolean")
    return "true" if value else "false"


FORMATTERS: dict[str, Callable[[Any], str]] = {
    "float": _float,
    "integer": _integer,
    "unsigned": _unsigned,
    "string": _string,
    "boolean": _boolean,
}


def format_value(field_type: str, value: Any) -> str:
    """A field value as line protocol; ValueError if it is not of ``field_type``."""
    try:
        return FORMATTERS[field_type](value)
    except KeyError:
        raise ValueError(f"unknown field type {field_type!r}") from None


def format_line(point: LinePoint) -> str:
    """One export line, with its newline: tags sorted, fields in the order given."""
    if not point.fields:
        raise ValueError("a point needs at least one field")
    if not MIN_NS <= point.time_ns <= MAX_NS:
        raise ValueError(f"time {point.time_ns} is outside InfluxDB's range")
    head = escape_measurement(point.measurement) + "".join(
        f",{escape_key(k, 'the tag key')}={escape_key(v, 'the tag value')}"
        for k, v in sorted(point.tags.items())
    )
    fields = ",".join(
        f"{escape_field_key(k)}={format_value(t, v)}" for k, (t, v) in point.fields.items()
    )
    return f"{head} {fields} {point.time_ns}\n"


def _name(excluded: str) -> str:
    # Plain characters and backslash pairs, unrolled and possessive: nothing to backtrack
    # into, which makes checking a file several times faster.
    plain = rf"[^\\\n{excluded}]"
    return rf"(?:{plain}|\\[^\n]){plain}*+(?:\\[^\n]{plain}*+)*+"


_MEASUREMENT = "(?!#)" + _name(", ")
_KEY = _name(",= ")
_STRING_BODY = r'[^"\\]*+(?:\\["\\][^"\\]*+)*+'  # only \\ and \" are escapes
_STRING = f'"{_STRING_BODY}"'
_FLOAT = r"-?\d+(?:\.\d+(?:e[+-]\d+)?|e[+-]\d+)"  # what repr(float) writes
_VALUE = rf"{_STRING}|true|false|-?\d+i|\d+u|{_FLOAT}"
# The fast check of a whole line: integers short enough to be in range without
# converting them; anything longer is checked by parse_line.
_VALUE_SHORT = rf"{_STRING}|true|false|-?\d{{1,18}}i|\d{{1,19}}u|{_FLOAT}"
_LINE_SHORT = re.compile(
    rf"(?P<m>{_MEASUREMENT})(?:,{_KEY}={_KEY})*+ {_KEY}=(?:{_VALUE_SHORT})"
    rf"(?:,{_KEY}=(?:{_VALUE_SHORT}))*+ (?P<t>-?\d{{1,19}})"
)
# A line that stops inside a string field: the string goes on after a newline.
_OPEN_STRING = re.compile(
    rf'{_MEASUREMENT}(?:,{_KEY}={_KEY})*+ (?:{_KEY}=(?:{_VALUE}),)*{_KEY}="{_STRING_BODY}'
)
_HEAD = re.compile(rf"(?P<m>{_MEASUREMENT})(?P<tags>(?:,{_KEY}={_KEY})*+) ")
_TAG = re.compile(rf",({_KEY})=({_KEY})")
_FIELD = re.compile(
    rf"(?P<key>{_KEY})=(?:(?P<string>{_STRING})|(?P<boolean>true|false)|(?P<integer>-?\d+)i"
    rf"|(?P<unsigned>\d+)u|(?P<float>{_FLOAT}))(?=[, ]|\Z)"
)
_TIME = re.compile(r" (-?\d+)")
_STRING_ESCAPE = re.compile(r'\\(["\\])')


def _unescape(token: str) -> str:
    if "\\" not in token:
        return token
    return token.replace("\\,", ",").replace("\\=", "=").replace("\\ ", " ")


def _field_value(match: re.Match[str]) -> tuple[str, FieldValue]:
    if (text := match["string"]) is not None:
        return "string", _STRING_ESCAPE.sub(r"\1", text[1:-1])
    if (text := match["boolean"]) is not None:
        return "boolean", text == "true"
    if (text := match["integer"]) is not None:
        if not _INT64[0] <= int(text) <= _INT64[1]:
            raise ValueError(f"the integer {text} is out of range")
        return "integer", int(text)
    if (text := match["unsigned"]) is not None:
        if int(text) >= 2**64:
            raise ValueError(f"the unsigned integer {text} is out of range")
        return "unsigned", int(text)
    number = float(match["float"])
    if not math.isfinite(number):
        raise ValueError(f"the float {match['float']} is out of range")
    return "float", number


def parse_line(line: str) -> LinePoint:
    """One export line (without its newline) as a point; ValueError saying what is wrong."""
    head = _HEAD.match(line)
    if head is None:
        raise ValueError("no measurement and tags followed by a space")
    tags: dict[str, str] = {}
    for key, value in _TAG.findall(head["tags"]):
        if _unescape(key) in tags:
            raise ValueError(f"the tag {_unescape(key)!r} appears twice")
        tags[_unescape(key)] = _unescape(value)
    fields: dict[str, tuple[str, FieldValue]] = {}
    pos = head.end()
    while True:
        field = _FIELD.match(line, pos)
        if field is None:
            raise ValueError(f"column {pos + 1}: expected a field, key=value")
        key = _unescape(field["key"])
        if key in fields:
            raise ValueError(f"column {pos + 1}: the field {key!r} appears twice")
        fields[key] = _field_value(field)
        pos = field.end()
        if not line.startswith(",", pos):
            break
        pos += 1
    time = _TIME.fullmatch(line, pos)
    if time is None:
        raise ValueError(f"column {pos + 1}: expected a space and the time in nanoseconds")
    if not MIN_NS <= int(time[1]) <= MAX_NS:
        raise ValueError(f"the time {time[1]} is outside InfluxDB's range")
    return LinePoint(_unescape(head["m"]), tags, fields, int(time[1]))


def _physical_lines(stream: gzip.GzipFile, source: Path) -> Iterator[tuple[bytes, bool]]:
    """The stream's lines without their newline, each with whether a newline ended it."""
    rest = b""
    while True:
        try:
            block = stream.read(READ_BLOCK_BYTES)
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise ValueError(f"{source}: the gzip stream is truncated or corrupt: {exc}") from exc
        if not block:
            break
        lines = (rest + block).split(b"\n")
        rest = lines.pop()
        for line in lines:
            yield line, True
    if rest:
        yield rest, False


def read_points(stream: gzip.GzipFile, source: Path) -> Iterator[tuple[int, bytes, str]]:
    """Every point of an export: its first line number, its bytes and its measurement."""
    names: dict[str, str] = {}
    pending: list[bytes] = []
    start = 0
    for number, (raw, ended) in enumerate(_physical_lines(stream, source), 1):
        if not pending:
            start = number
        pending.append(raw)
        data = b"\n".join(pending) if len(pending) > 1 else raw
        try:
            text = data.decode()
        except UnicodeDecodeError as exc:
            raise ValueError(f"{source}: line {start}: not UTF-8 ({exc.reason})") from None
        match = _LINE_SHORT.fullmatch(text)
        if match is not None and MIN_NS <= int(match["t"]) <= MAX_NS:
            name = names.get(match["m"])
            if name is None:
                if len(names) >= 10_000:
                    names.clear()
                name = names[match["m"]] = _unescape(match["m"])
        else:  # rare: an error, an integer of 19 digits or more, a string with a newline
            try:
                name = parse_line(text).measurement
            except ValueError as exc:
                if ended and _OPEN_STRING.fullmatch(text):
                    continue
                raise ValueError(f"{source}: line {start}: {exc}: {text[:100]!r}") from None
        if not ended:
            raise ValueError(f"{source}: line {start}: no newline at the end: truncated?")
        pending.clear()
        yield start, data + b"\n", name
    if pending:
        raise ValueError(f"{source}: line {start}: a string field is not closed at the end")


def read_export(source: Path) -> dict[str, int]:
    """Check every line of an export without writing it; points per measurement.

    ValueError naming the line and what is wrong with it, or the corrupt gzip stream.
    """
    counts: dict[str, int] = {}
    with gzip.open(source, "rb") as stream:
        for _, _, measurement in read_points(stream, source):
            counts[measurement] = counts.get(measurement, 0) + 1
    return counts
