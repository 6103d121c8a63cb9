"""The data directory: private to its user (0700), its databases too (0600).

The databases hold the home's whole history, who did what and when: no other local user
may read them. New files are private because the CLI sets the process umask to 077;
:func:`prepare_data_dir` creates the directory private and repairs an install made
before that (0755 directory, 0644 databases), logging each file it fixes. SQLite
creates its ``-wal``, ``-shm`` and ``-journal`` files with the mode of their database,
so a private database keeps them private too.

Imports only the base floor (errors, settings, model): every command that opens a file
of the data directory can call it, with or without a running HomeIQ.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from homeiq.errors import ConfigError

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600
# The files HomeIQ keeps in the data directory (their modules name them: EVENTS_DB,
# METADATA_DB, ROLLUPS_DB, SPOOL_DB, LOCK_FILE; a test keeps this list equal to those).
KNOWN_FILES = ("events.db", "metadata.db", "rollups.db", "spool.db", "homeiq.lock")
SQLITE_SIDE_FILES = ("", "-wal", "-shm", "-journal")
SETTING = "HOMEIQ_DATA_DIR"


def _fix(path: Path, mode: int, name: str) -> None:
    """chmod ``path`` to ``mode`` when it differs, logging once what was fixed."""
    current = stat.S_IMODE(path.stat().st_mode)
    if current == mode:
        return
    path.chmod(mode)
    log.warning("fixed mode of %s: %04o → %04o", name, current, mode)


def prepare_data_dir(path: Path) -> None:
    """Create ``path`` private (0700), or make an existing one private: the directory
    0700, each of HomeIQ's databases and their side files 0600.

    Raises :class:`ConfigError` naming ``HOMEIQ_DATA_DIR`` when the path is a file, or
    cannot be created, repaired or written.
    """
    if path.exists() and not path.is_dir():
        raise ConfigError(SETTING, f"{path} is a file, not a directory: choose another path")
    try:
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(SETTING, f"cannot create {path}: {_reason(exc)}") from exc
    try:
        _fix(path, DIR_MODE, str(path))
        for name in KNOWN_FILES:
            for suffix in SQLITE_SIDE_FILES:
                file = path / f"{name}{suffix}"
                if file.is_file():
                    _fix(file, FILE_MODE, file.name)
    except OSError as exc:
        raise ConfigError(
            SETTING, f"cannot make {path} private (chmod): {_reason(exc)}; is it yours?"
        ) from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(SETTING, f"{path} is not writable by this user")


def _reason(exc: OSError) -> str:
    """An OSError's message without the errno prefix and path Python adds."""
    return (exc.strerror or str(exc) or type(exc).__name__).lower()
