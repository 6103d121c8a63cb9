"""The InfluxDB store's part of a backup (its :class:`~homeiq.sinks.registry.BackupPart`):
the portable export (and ``influxd backup`` when HOMEIQ_BACKUP_INFLUXDB_NATIVE is on),
the test restore into a scratch database, and the restore itself."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from homeiq.errors import BackupError
from homeiq.maintenance.backup import influx, influx_import, influx_native
from homeiq.maintenance.backup.archive import walk_files
from homeiq.settings import InfluxDBSettings, Settings
from homeiq.sinks.influxdb.backend import LINE_PROTOCOL_KIND, NATIVE_KIND
from homeiq.sinks.registry import ExportedFile, Progress

log = logging.getLogger(__name__)


class InfluxBackupPart:
    """Backs up and restores the configured InfluxDB database (or v2 bucket)."""

    def __init__(self, settings: Settings, config: InfluxDBSettings) -> None:
        self.settings = settings
        self.config = config

    async def export(
        self, content: Path, progress: Progress
    ) -> tuple[list[ExportedFile], dict[str, Any]]:
        """``influxdb/<database>.lp.gz`` (and ``influxdb/native/``) under ``content``."""
        config = self.config
        folder = content / "influxdb"
        folder.mkdir()
        dest = folder / f"{config.database}.lp.gz"

        def exported(points: int) -> None:
            progress("export InfluxDB", points, None)

        export = await influx.export_database(config, dest, progress=exported)
        files = [ExportedFile(dest, LINE_PROTOCOL_KIND, export.to_json())]
        first, last = export.first_time_ns, export.last_time_ns
        events = {
            "count": export.measurements.get(config.measurement, 0),
            "first_time_us": None if first is None else first // 1000,
            "last_time_us": None if last is None else last // 1000,
        }
        if self.settings.backup.influxdb_native:
            native = folder / "native"
            native.mkdir()
            await influx_native.native_backup(
                config, native, rpc_address=self.settings.backup.influxdb_rpc
            )
            files += [ExportedFile(p, NATIVE_KIND, {}) for p in sorted(walk_files(native))]
        return files, events

    def destination(self, database: str | None) -> str:
        """``InfluxDB database <name>``."""
        return f"InfluxDB database {database or self.config.database}"

    async def test_restore(self, path: Path, info: dict[str, Any]) -> str:
        """Import into a scratch database ``<database>_verify_<time>``, dropped after."""
        scratch = f"{self.config.database}_verify_{int(time.time())}"
        try:
            written = await influx_import.import_lineprotocol(self.config, path, database=scratch)
        except Exception as exc:  # whatever stops the import is the verify's finding
            raise BackupError(f"test restore into InfluxDB ({scratch}): {exc}") from exc
        finally:
            await influx.drop_database(self.config, scratch)
        expected = info.get("measurements")
        if written != expected:
            raise BackupError(
                f"test restore into {scratch}: points {written} differ from {expected}"
            )
        return (
            f"test restore: {sum(written.values()):,} points written to InfluxDB"
            f" database {scratch} (dropped afterwards)"
        )

    async def restore(
        self, path: Path, database: str | None, aside: Path, progress: Progress
    ) -> None:
        """Write the export into ``database``; points already there are exported aside."""
        name = database or self.config.database
        if await influx.holds_points(self.config, name):
            kept = aside / f"influxdb-{name}.lp.gz"
            progress(f"keep InfluxDB {name} aside", 0, None)
            await influx.export_database(self.config.model_copy(update={"database": name}), kept)
            log.info("the points of InfluxDB database %s were exported to %s", name, kept)

        def written(points: int) -> None:
            progress(f"restore InfluxDB {name}", points, None)

        await influx_import.import_lineprotocol(self.config, path, database=name, progress=written)
