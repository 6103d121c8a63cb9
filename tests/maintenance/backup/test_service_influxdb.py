"""Backups with the InfluxDB store (the real InfluxDB 1.6.7): the export in the archive,
verify's test restore into a scratch database that is dropped afterwards, restore into
the configured or a named database with what was there kept aside, and the optional
native ``influxd backup -portable``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from homeiq.errors import RestoreRefused
from homeiq.maintenance.backup.crypto import new_identity
from homeiq.maintenance.backup.service import BackupService
from homeiq.settings import Settings
from homeiq.sinks.influxdb import InfluxDBSink
from tests.support.influxdb import InfluxDBServer, event

pytestmark = pytest.mark.influxdb

MEASUREMENT = "home_assistant_events"


def points(influxdb: InfluxDBServer, database: str) -> int:
    rows = influxdb.rows(f'SELECT count("source") FROM "{MEASUREMENT}"', database)
    return int(rows[0]["count"]) if rows else 0


@pytest.fixture
async def influx_home(
    tmp_path: Path, influxdb: InfluxDBServer, influxdb_database: str
) -> AsyncIterator[Settings]:
    secret, public = new_identity()
    identity = tmp_path / "identity.txt"
    identity.write_text(secret + "\n")
    settings = Settings(
        data_dir=tmp_path / "data",
        store="influxdb",
        influxdb_url=influxdb.url,
        influxdb_database=influxdb_database,
        backup_recipients=[public],
        backup_identity_file=identity,
        backup_targets=[(tmp_path / "nas").as_uri()],
        backup_influxdb_rpc=f"127.0.0.1:{influxdb.rpc_port}",
    )
    sink = InfluxDBSink.from_settings(settings)
    await sink.open()
    await sink.write([event(f"sensor.s{i % 4}", second=i, state=str(i)) for i in range(120)])
    await sink.close()
    yield settings


async def test_archive_holds_the_export_and_verify_restores_into_a_scratch_database(
    influx_home: Settings, influxdb: InfluxDBServer
) -> None:
    service = BackupService(influx_home)
    result = await service.create()
    assert result.ok
    (export,) = result.manifest.member("influxdb-lineprotocol")
    assert export.path == f"influxdb/{influx_home.influxdb.database}.lp.gz"
    assert export.info["measurements"] == {MEASUREMENT: 120}
    assert result.manifest.events["count"] == 120
    assert not result.manifest.member("influxdb-native")

    report = await service.verify(result.name)
    assert report.ok, report.problems
    assert any("120 points written to InfluxDB database" in line for line in report.checked)
    databases = {row[0] for row in influxdb.query("SHOW DATABASES")["series"][0]["values"]}
    assert not any("_verify_" in name for name in databases)  # the scratch copy is gone


async def test_restore_keeps_what_the_database_holds_aside(
    influx_home: Settings, influxdb: InfluxDBServer
) -> None:
    service = BackupService(influx_home)
    result = await service.create()
    database = influx_home.influxdb.database
    influxdb.write(f"{MEASUREMENT},entity_id=sensor.late source=0i 1999999999000000", database)
    assert points(influxdb, database) == 121

    report = await service.restore(result.name)
    assert report.kept_aside is not None
    kept = report.kept_aside / f"influxdb-{database}.lp.gz"
    assert kept.exists()  # the 121 points that were there, exported first
    assert points(influxdb, database) == 121  # restore writes the archive's points back

    other = f"{database}_restored"
    try:
        named = await service.restore(result.name, influxdb_database=other)
        assert any(f"InfluxDB database {other}" in line for line in named.restored)
        assert points(influxdb, other) == 120
    finally:
        influxdb.drop_database(other)


async def test_the_native_backup_is_included_when_asked(influx_home: Settings) -> None:
    backup = influx_home.backup.model_copy(update={"influxdb_native": True})
    settings = influx_home.model_copy(update={"backup": backup})
    service = BackupService(settings)
    result = await service.create()
    assert result.ok
    native = result.manifest.member("influxdb-native")
    assert native and all(m.path.startswith("influxdb/native/") for m in native)
    assert any(m.path.endswith(".manifest") for m in native)
    report = await service.verify(result.name)
    assert report.ok, report.problems


async def test_an_influxdb_archive_needs_the_influxdb_store(influx_home: Settings) -> None:
    result = await BackupService(influx_home).create()
    # The same installation configured for the embedded store: the archive's points have
    # nowhere to go, which verify reports and restore refuses before touching anything.
    sqlite = influx_home.model_copy(update={"store": "sqlite"})
    service = BackupService(sqlite)
    report = await service.verify(result.name)
    assert not report.ok
    assert any("set HOMEIQ_STORE=influxdb" in problem for problem in report.problems)
    with pytest.raises(RestoreRefused, match=r"HOMEIQ_STORE is sqlite.*nothing was restored"):
        await service.restore(result.name)
    assert not list(sqlite.data_dir.glob("pre-restore-*"))
