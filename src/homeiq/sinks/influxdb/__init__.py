"""InfluxDB as the event store: line-protocol writes over HTTP and InfluxQL reads.

:class:`InfluxDBSink` writes (v1 ``/write`` or v2 ``/api/v2/write``), :class:`InfluxDBReader`
answers the queries of :class:`~homeiq.sinks.base.EventReader`; both are built from the
``influxdb_*`` settings through :class:`InfluxDBConfig`. The schema is in
:mod:`homeiq.sinks.influxdb.lineprotocol`.
"""

from __future__ import annotations

from homeiq.errors import QueryFailed
from homeiq.sinks.influxdb.lineprotocol import (
    LineEncoder,
    decode_tag_value,
    encode_tag_value,
    escape_measurement,
    escape_string_field,
    escape_tag_value,
)
from homeiq.sinks.influxdb.points import record_from_point
from homeiq.sinks.influxdb.reader import InfluxDBReader
from homeiq.sinks.influxdb.sink import InfluxDBConfig, InfluxDBSink, quote_ident, quote_literal

__all__ = [
    "InfluxDBConfig",
    "InfluxDBReader",
    "InfluxDBSink",
    "LineEncoder",
    "QueryFailed",
    "decode_tag_value",
    "encode_tag_value",
    "escape_measurement",
    "escape_string_field",
    "escape_tag_value",
    "quote_ident",
    "quote_literal",
    "record_from_point",
]
