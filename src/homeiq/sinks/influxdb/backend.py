"""The InfluxDB store's entry in the backend registry."""

from __future__ import annotations

from homeiq.settings import Settings
from homeiq.sinks import registry
from homeiq.sinks.base import Eraser, EventReader, RawRetention, Sink
from homeiq.sinks.influxdb.erase import InfluxDBEraser
from homeiq.sinks.influxdb.reader import InfluxDBReader
from homeiq.sinks.influxdb.sink import InfluxDBSink

LINE_PROTOCOL_KIND = "influxdb-lineprotocol"
NATIVE_KIND = "influxdb-native"


@registry.add
class InfluxDBBackend(registry.Backend):
    """An InfluxDB server over HTTP; backed up as a portable line-protocol export."""

    name = "influxdb"
    archive_kinds = (LINE_PROTOCOL_KIND,)  # influxd's native backup is restored by hand

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.config = settings.influxdb

    def open_sink(self) -> Sink:
        """A sink writing line protocol (v1 or v2 write API)."""
        return InfluxDBSink(self.config, batch_max_events=self.settings.batch_max_events)

    def eraser(self, sink: Sink) -> Eraser:
        """DELETE statements (v1) or /api/v2/delete, over the sink's HTTP session."""
        if not isinstance(sink, InfluxDBSink):
            raise TypeError(f"not an InfluxDB sink: {type(sink).__name__}")
        return InfluxDBEraser(self.config, sink.http)

    def raw_retention(self, sink: Sink) -> RawRetention:
        """The database's retention policy (v1) or the bucket's retention (v2)."""
        if not isinstance(sink, InfluxDBSink):
            raise TypeError(f"not an InfluxDB sink: {type(sink).__name__}")
        return InfluxDBEraser(self.config, sink.http)

    def open_reader(self) -> EventReader:
        """A reader answering with InfluxQL."""
        return InfluxDBReader(self.config)

    def backup_part(self) -> registry.BackupPart:
        """The portable export (and influxd's native backup when configured)."""
        # The backup is a floor above the stores: imported only when a backup runs.
        from homeiq.maintenance.backup.influx_part import InfluxBackupPart

        return InfluxBackupPart(self.settings, self.config)
