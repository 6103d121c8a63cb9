"""Every way a command can fail, as one line on stderr and an exit code.

The ``homeiq`` command never shows a Python traceback: :func:`describe` turns whatever
escaped a command into a sentence saying what went wrong and what to do, and the exit
code the CLI documents (``EXIT_*`` below). Unexpected exceptions are "internal errors";
their traceback is logged at DEBUG (``HOMEIQ_LOG_LEVEL=DEBUG`` shows it).
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from homeiq.errors import ConfigError, HomeIQError

EXIT_OK = 0
EXIT_FAILURE = 1  # a runtime failure: a store down, a backup failed, an internal error
EXIT_USAGE = 2  # bad configuration or usage (argparse uses 2 as well)
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report a SIGINT death

EXIT_CODES_HELP = """\
exit codes:
  0    success
  1    runtime failure (a store or Home Assistant unreachable, a failed backup, ...)
  2    configuration or usage error (a bad setting or argument; the message names it)
  130  interrupted (Ctrl-C)"""

# Optional dependencies and the extra that installs each.
_EXTRAS = {"boto3": "s3", "botocore": "s3"}
_DATA_DIR_HINT = "make it writable by this user, or choose another HOMEIQ_DATA_DIR"


def describe(exc: BaseException, data_dir: Path | None) -> tuple[str, int]:
    """The one line (without the ``homeiq: `` prefix) and exit code for ``exc``."""
    if isinstance(exc, ConfigError):
        return f"configuration error: {exc}", EXIT_USAGE
    if isinstance(exc, HomeIQError):
        return str(exc), EXIT_FAILURE
    if isinstance(exc, sqlite3.Error):
        return _sqlite(exc, data_dir)
    if isinstance(exc, OSError):
        return _os_error(exc, data_dir)
    if isinstance(exc, ModuleNotFoundError):  # an optional extra that is not installed
        extra = _EXTRAS.get((exc.name or "").partition(".")[0])
        fix = f"pip install 'homeiq[{extra}]'" if extra else "reinstall HomeIQ"
        return f"the Python module {exc.name} is not installed: {fix}", EXIT_USAGE
    return f"internal error: {type(exc).__name__}: {exc}", EXIT_FAILURE


def _sqlite(exc: sqlite3.Error, data_dir: Path | None) -> tuple[str, int]:
    text = str(exc)
    where = str(data_dir) if data_dir is not None else "the data directory"
    if "unable to open database file" in text:
        return (
            f"configuration error: HOMEIQ_DATA_DIR: cannot open the databases in {where}"
            f" ({text}); {_DATA_DIR_HINT}",
            EXIT_USAGE,
        )
    if "readonly database" in text:
        return (
            f"configuration error: HOMEIQ_DATA_DIR: the databases in {where} are read-only"
            f" for this user ({text}); {_DATA_DIR_HINT}",
            EXIT_USAGE,
        )
    return f"sqlite: {text} (in {where})", EXIT_FAILURE


def _os_error(exc: OSError, data_dir: Path | None) -> tuple[str, int]:
    what = exc.strerror or str(exc)
    path = exc.filename
    if path is None:
        return f"{what}", EXIT_FAILURE
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot use {path} ({what}): check its owner and permissions", EXIT_FAILURE
    return f"{path}: {what}", EXIT_FAILURE


def check_data_dir(data_dir: Path, *, writes: bool) -> None:
    """ConfigError saying what to do when ``data_dir`` is not a directory, or when a
    command that writes (``writes``) cannot write it.

    Checked up front so the user reads one sentence naming the path, not SQLite's
    "unable to open database file" or mkdir's "File exists". (A missing directory is
    created by the commands that write, and reported by those that read.)
    """
    if not data_dir.exists():
        return
    if not data_dir.is_dir():
        raise ConfigError(
            "HOMEIQ_DATA_DIR",
            f"{data_dir} is a file, not a directory: point HOMEIQ_DATA_DIR at a directory",
        )
    if not writes:
        return
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise ConfigError("HOMEIQ_DATA_DIR", f"{data_dir} is not writable; {_DATA_DIR_HINT}")
    for db in sorted(data_dir.glob("*.db")):
        if not os.access(db, os.W_OK):
            raise ConfigError("HOMEIQ_DATA_DIR", f"{db} is read-only; {_DATA_DIR_HINT}")
