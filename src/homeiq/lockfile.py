"""One HomeIQ per data directory: an exclusive lock on ``homeiq.lock`` while it runs.

Two processes writing the same SQLite files would each keep its own caches of ids and
watermarks; a restore replacing the files under a running process would lose whatever
it writes next. The lock is ``flock``: the kernel drops it when the process dies, so a
crash never leaves a stale lock behind. The file holds the holder's pid, for messages
and for ``homeiq backup restore --stop``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from homeiq.errors import ConfigError, DataDirBusy

LOCK_FILE = "homeiq.lock"


class DataDirLock:
    """The exclusive lock on a data directory, held from :meth:`acquire` to :meth:`release`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock; DataDirBusy when another process (or object) holds it."""
        if self._fd is not None:
            return
        fd = _open_lock_file(self.data_dir)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataDirBusy(self.data_dir, holder(self.data_dir)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Let the lock go (the pid stays in the file; it means nothing without the lock)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _open_lock_file(data_dir: Path) -> int:
    """The lock file's descriptor, creating the directory; ConfigError saying what to do
    when the path is not a directory this user can write."""
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigError(
            "HOMEIQ_DATA_DIR",
            f"{data_dir} is a file, not a directory: point HOMEIQ_DATA_DIR at a directory",
        )
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        return os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(
            "HOMEIQ_DATA_DIR",
            f"cannot write in {data_dir} ({exc.strerror}): make it writable by this user"
            " or choose another directory",
        ) from exc


def holder(data_dir: Path) -> int | None:
    """Pid of the process holding ``data_dir``'s lock; None when nobody holds it."""
    path = data_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = path.read_text().strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
