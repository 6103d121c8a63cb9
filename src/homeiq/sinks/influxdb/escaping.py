"""Every escaping rule HomeIQ uses with InfluxDB, in one place: line protocol (what the
sink and the backup write) and InfluxQL (what the reader and the backup query).

Line protocol has three kinds of token, each with one function here:

* measurement names (:func:`escape_measurement`): ``,`` and space escaped;
* tag keys, tag values and field keys (:func:`escape_key`): ``,``, ``=`` and space escaped;
* string field values (:func:`escape_string_field`): ``\\`` and ``"`` escaped.

A token line protocol cannot carry is refused with ValueError, never silently changed:
a newline or carriage return (it ends the line), a backslash before a delimiter or at
the end (InfluxDB 1.x scans names by "is the previous byte a backslash" but unescapes
by search-and-replace, so such a name reads back differently), an empty name, a
measurement starting with ``#`` (a comment line), and, for names that queries must
reach, a leading tab or a NUL (1.x skips the one, InfluxQL cannot quote the other).

HomeIQ's own tag values may hold any string (a device id with a newline...), so the
sink stores them in a percent-coded form first (:func:`encode_tag_value`: ``%`` ``\\``
newline and carriage return as ``%25`` ``%5C`` ``%0A`` ``%0D``), which the strict rules
above then always accept; :func:`decode_tag_value` inverts it. Every valid entity id is
stored unchanged, so queries written by hand still match.

InfluxQL: :func:`quote_ident` for names, :func:`quote_literal` for string values.

What a name may hold is decided by :func:`~homeiq.settings.influxdb.check_name` and
:func:`~homeiq.settings.influxdb.check_measurement`, at the base floor, so the
measurement setting is refused at startup by the very rule the writes apply.
"""

from __future__ import annotations

from homeiq.settings.influxdb import check_measurement, check_name

_MEASUREMENT = str.maketrans({",": "\\,", " ": "\\ "})
_KEY = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})
_TAG_CODES = {"%": "%25", "\\": "%5C", "\n": "%0A", "\r": "%0D"}
_TAG_STORED = str.maketrans(_TAG_CODES)
# Percent codes, then the key escapes: what escape_key(encode_tag_value(v)) gives, in one
# translate (the sink's hot path; the encoded form never holds what escape_key refuses).
_TAG_LINE = str.maketrans({**_TAG_CODES, ",": "\\,", "=": "\\=", " ": "\\ "})
_TAG_DECODE = {code[1:]: char for char, code in _TAG_CODES.items()}


def escape_measurement(name: str) -> str:
    """A measurement name for a line; ValueError if line protocol cannot carry it."""
    return check_measurement(name).translate(_MEASUREMENT)


def escape_key(text: str, what: str = "a tag key or value") -> str:
    """A tag key or tag value for a line; ValueError if line protocol cannot carry it."""
    return check_name(text, what, queried=False).translate(_KEY)


def escape_field_key(key: str) -> str:
    """A field key for a line; ValueError if line protocol (or a query) cannot carry it."""
    return check_name(key, "the field key", queried=True).translate(_KEY)


def escape_string_field(value: str) -> str:
    """A string field value's inside: backslash and double quote escaped (newlines stay)."""
    if "\\" in value or '"' in value:
        return value.replace("\\", "\\\\").replace('"', '\\"')
    return value


def encode_tag_value(value: str) -> str:
    """A HomeIQ tag value as InfluxDB stores it (the percent codes); what queries compare to."""
    return value.translate(_TAG_STORED)


def escape_tag_value(value: str) -> str:
    """A HomeIQ tag value for a line: ``escape_key(encode_tag_value(value))``, never refused
    (a non-empty value; empty tags are left out of lines)."""
    return value.translate(_TAG_LINE)


def decode_tag_value(stored: str) -> str:
    """Inverse of :func:`encode_tag_value`; a ``%`` that is not one of its codes stays."""
    if "%" not in stored:
        return stored
    first, *rest = stored.split("%")
    out = [first]
    for part in rest:
        char = _TAG_DECODE.get(part[:2])
        out.append("%" + part if char is None else char + part[2:])
    return "".join(out)


def quote_ident(name: str) -> str:
    """An InfluxQL identifier: double-quoted, with backslash, quote and newline escaped."""
    escaped = name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def quote_literal(value: str) -> str:
    """An InfluxQL string literal: single-quoted, with backslash, quote and newline escaped."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"
