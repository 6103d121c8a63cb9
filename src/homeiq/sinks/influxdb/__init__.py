"""InfluxDB as the event store: line-protocol writes over HTTP and InfluxQL reads.

:class:`InfluxDBSink` writes (v1 ``/write`` or v2 ``/api/v2/write``), :class:`InfluxDBReader`
answers the queries of :class:`~homeiq.sinks.base.EventReader`; both talk through the one
:class:`InfluxDBClient` (also the backup's) and are built from the ``influxdb_*``
settings (:class:`homeiq.settings.InfluxDBSettings`, validated there). The schema is in
:mod:`homeiq.sinks.influxdb.lineprotocol`, every escaping rule in
:mod:`homeiq.sinks.influxdb.escaping`; the store registers itself with
:mod:`homeiq.sinks.registry` in :mod:`homeiq.sinks.influxdb.backend`.
"""

from __future__ import annotations

from homeiq.sinks.influxdb.client import InfluxDBClient, WriteTarget
from homeiq.sinks.influxdb.escaping import (
    decode_tag_value,
    encode_tag_value,
    escape_measurement,
    escape_string_field,
    escape_tag_value,
    quote_ident,
    quote_literal,
)
from homeiq.sinks.influxdb.lineprotocol import LineEncoder
from homeiq.sinks.influxdb.points import record_from_point
from homeiq.sinks.influxdb.reader import InfluxDBReader
from homeiq.sinks.influxdb.sink import InfluxDBSink

__all__ = [
    "InfluxDBClient",
    "InfluxDBReader",
    "InfluxDBSink",
    "LineEncoder",
    "WriteTarget",
    "decode_tag_value",
    "encode_tag_value",
    "escape_measurement",
    "escape_string_field",
    "escape_tag_value",
    "quote_ident",
    "quote_literal",
    "record_from_point",
]
