"""HomeIQ's one exception tree.

Library errors (aiohttp, sqlite3, pydantic, boto3, pyrage) are caught at the module that
calls the library and re-raised as one of these, ``raise ... from exc``, so callers only
ever see this tree::

    HomeIQError
    ├── ConfigError                 bad setting; startup fails naming it
    ├── TransientError              worth retrying with backoff
    │   ├── SourceUnavailable       Home Assistant unreachable, connection dropped
    │   ├── SinkUnavailable         store unreachable, busy or out of space
    │   └── TargetUnavailable       a backup target cannot be reached right now
    └── PermanentError              retrying cannot help
        ├── AuthenticationFailed    token rejected (never retried: HA bans IPs)
        ├── ProtocolError           Home Assistant said something we cannot use
        ├── InvalidEvent            one message failed validation (dead-lettered)
        ├── SinkRejected            the store refused a batch or query for good
        │   └── QueryFailed         the store could not run a query (its message)
        ├── IncompatibleSchema      a database is newer than this code
        ├── DataDirBusy             another HomeIQ holds the data directory
        ├── RangePurged             a rollup tier's buckets of a range were purged
        └── BackupError             a backup, verify or restore cannot be done
            ├── RestoreRefused      restore will not replace live data
            ├── ArchiveInvalid      an archive is not what its manifest says
            ├── ArchiveMismatch     a copy's bytes differ from its recorded checksum
            ├── DecryptionFailed    wrong key or passphrase, or a damaged archive
            └── InfluxBackupError   InfluxDB or influxd refused part of a backup

The API renders each branch with its own status and code (``api/errors.py``); the CLI's
one top-level handler turns each into one line and an exit code (2 for ConfigError,
1 for the rest).
"""

from __future__ import annotations

from pathlib import Path


class HomeIQError(Exception):
    """Base of every error HomeIQ raises on purpose."""


class ConfigError(HomeIQError):
    """A setting is missing or invalid; the message names it."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting


class TransientError(HomeIQError):
    """A failure that may go away: retry with backoff and jitter."""


class SourceUnavailable(TransientError):
    """Home Assistant cannot be reached or dropped the connection."""


class SinkUnavailable(TransientError):
    """The store cannot take writes (or answer reads) right now."""


class TargetUnavailable(TransientError):
    """A backup target could not store, list, fetch or delete an archive; names it."""


class PermanentError(HomeIQError):
    """A failure retrying cannot fix."""


class AuthenticationFailed(PermanentError):
    """Home Assistant rejected the access token."""


class ProtocolError(PermanentError):
    """Home Assistant answered in a way we cannot interpret."""


class InvalidEvent(PermanentError):
    """A message failed validation; ``reason`` is a short stable code for metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class SinkRejected(PermanentError):
    """The store refused a batch and would refuse it again."""


class QueryFailed(SinkRejected):
    """The store could not run a query (an InfluxQL error, say); the message is its own."""


class IncompatibleSchema(PermanentError):
    """A database was written by a newer HomeIQ; reading it could misinterpret rows."""


class DataDirBusy(PermanentError):
    """Another HomeIQ process holds the data directory."""

    def __init__(self, data_dir: Path, pid: int | None) -> None:
        who = f"HomeIQ (pid {pid})" if pid else "another HomeIQ process"
        hint = (
            f"stop it first (kill {pid})" if pid else "stop it first"
        ) + ", or choose another HOMEIQ_DATA_DIR"
        super().__init__(f"{who} is running against {data_dir}: {hint}")
        self.data_dir = data_dir
        self.pid = pid


class RangePurged(PermanentError):
    """Statistics of a tier over a range whose buckets the retention purged; the
    message names the keep period and the coarser tier that still answers."""

    def __init__(self, period: str, entity_id: str, kept_from: int, message: str) -> None:
        super().__init__(message)
        self.period = period
        self.entity_id = entity_id
        self.kept_from = kept_from


class BackupError(PermanentError):
    """A backup operation could not be done; the message says why."""


class RestoreRefused(BackupError):
    """Restore will not replace live data (HomeIQ is running, or the archive is bad)."""


class ArchiveInvalid(BackupError):
    """The archive is not what its manifest says (or has no valid manifest)."""


class ArchiveMismatch(BackupError):
    """An archive's bytes do not match its recorded size or sha256 (a bad copy)."""


class DecryptionFailed(BackupError):
    """The archive cannot be decrypted: wrong key or passphrase, or damaged."""


class InfluxBackupError(BackupError):
    """InfluxDB or influxd refused part of a backup or restore; the message says why."""
