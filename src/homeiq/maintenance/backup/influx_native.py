"""InfluxDB's own backup, where ``influxd`` runs on this machine: ``influxd backup
-portable`` / ``influxd restore -portable`` against its RPC service (``bind-address`` in
influxdb.conf, not the HTTP port). An option beside the portable export
(:mod:`homeiq.maintenance.backup.influx`), which restores into any InfluxDB version.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path

from homeiq.errors import InfluxBackupError, QueryFailed, SinkUnavailable
from homeiq.maintenance.backup.influx import connected, database_exists
from homeiq.settings import InfluxDBSettings

DEFAULT_RPC_ADDRESS = "127.0.0.1:8088"  # influxd's own default bind-address
RPC_CONNECT_TIMEOUT_S = 5.0
INFLUXD = "influxd"
ERROR_TAIL_CHARS = 2000
RESTORE_READY_TIMEOUT_S = 60.0
_REOPENING = ("engine is closed", "shard is disabled")  # influxd still opening restored shards


def native_available() -> bool:
    """Whether ``influxd`` is installed here (for :func:`native_backup`/:func:`native_restore`)."""
    return shutil.which(INFLUXD) is not None


async def _check_rpc(rpc_address: str) -> None:
    """SinkUnavailable unless something listens at the RPC address (influxd would retry
    for minutes)."""
    host, _, port = rpc_address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"rpc_address must be host:port, not {rpc_address!r}")
    try:
        async with asyncio.timeout(RPC_CONNECT_TIMEOUT_S):
            _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
    except (OSError, TimeoutError) as exc:
        why = str(exc) or f"no connection within {RPC_CONNECT_TIMEOUT_S:g} s"
        raise SinkUnavailable(
            f"influxd's backup service at {rpc_address} does not answer ({why}); it listens"
            " on bind-address in influxdb.conf (default 127.0.0.1:8088)"
        ) from exc
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def _influxd(*args: str) -> None:
    binary = shutil.which(INFLUXD)
    if binary is None:
        raise InfluxBackupError("influxd is not installed here; use the portable export")
    proc = await asyncio.create_subprocess_exec(
        binary,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await proc.communicate()
    except BaseException:  # cancelled: leave no influxd behind
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        text = (stderr or stdout).decode("utf-8", "replace").strip()[-ERROR_TAIL_CHARS:]
        raise InfluxBackupError(f"influxd {args[0]} failed (exit {proc.returncode}): {text}")


def _empty_directory(path: Path) -> None:
    # influxd adds its files next to any already there; a restore would then mix backups.
    path.mkdir(parents=True, exist_ok=True)
    if any(path.iterdir()):
        raise InfluxBackupError(
            f"{path} is not empty; a native backup needs a directory of its own"
        )


async def native_backup(
    config: InfluxDBSettings, dest_dir: Path, *, rpc_address: str = DEFAULT_RPC_ADDRESS
) -> None:
    """``influxd backup -portable`` of the configured database (every retention policy)
    into ``dest_dir``, which must be empty or new."""
    if not await database_exists(config, config.database):
        # influxd itself only says "backup failed: EOF".
        raise InfluxBackupError(f"InfluxDB at {config.url} has no database {config.database!r}")
    await _check_rpc(rpc_address)
    await asyncio.to_thread(_empty_directory, dest_dir)
    await _influxd(
        "backup", "-portable", "-host", rpc_address, "-db", config.database, str(dest_dir)
    )


async def native_restore(
    config: InfluxDBSettings,
    src_dir: Path,
    *,
    database: str,
    new_database: str,
    rpc_address: str = DEFAULT_RPC_ADDRESS,
) -> None:
    """``influxd restore -portable``: ``database`` of the backup in ``src_dir`` as the new
    database ``new_database``, which must not exist."""
    if await database_exists(config, new_database):
        raise InfluxBackupError(
            f"InfluxDB at {config.url} already has a database {new_database!r};"
            " a native restore needs a new name"
        )
    await _check_rpc(rpc_address)
    await _influxd(
        "restore",
        "-portable",
        "-host",
        rpc_address,
        "-db",
        database,
        "-newdb",
        new_database,
        str(src_dir),
    )
    await _wait_readable(config, new_database)


async def _wait_readable(config: InfluxDBSettings, database: str) -> None:
    """Wait until every restored shard answers: influxd restore returns while InfluxDB is
    still reopening them ("engine is closed", "shard is disabled")."""
    try:
        async with connected(config) as client, asyncio.timeout(RESTORE_READY_TIMEOUT_S):
            while True:
                try:
                    await client.series("SELECT * FROM /.*/ LIMIT 1", database)
                    return
                except QueryFailed as exc:
                    if not any(text in str(exc) for text in _REOPENING):
                        raise
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise InfluxBackupError(
            f"the restored database {database!r} did not open within {RESTORE_READY_TIMEOUT_S:g} s"
        ) from None
