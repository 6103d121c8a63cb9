"""What every backup target shares: archive names, :class:`StoredArchive`, the
:class:`Target` interface, and the checked receiving of an archive's bytes.

An archive is one file, ``homeiq-YYYYMMDDTHHMMSSZ.tar.age``, named after its UTC creation
time; every target stores it under that name with its sha256, and checks the copy both
after writing it and when reading it back::

    targets = parse_targets("file:///mnt/nas/homeiq,s3://bucket/homeiq")
    for target in targets:                      # blocking: run each in a thread
        target.put(archive_path, sha256=hexdigest)
    target.list()                               # [StoredArchive, ...], oldest first
    target.fetch(name, Path("/tmp/restore"))    # verified copy, or ArchiveMismatch
    target.delete(name)

Errors: ``TargetUnavailable`` (a ``TransientError``: the NAS may come back, the copy may
succeed next time) and ``ArchiveMismatch`` (a ``BackupError``: the bytes do not match
their checksum, and copying the same bytes again will not fix that). Library and OS
errors are converted by each target and never leak.
"""

from __future__ import annotations

import builtins
import hashlib
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from homeiq.errors import ArchiveMismatch

SETTING = "HOMEIQ_BACKUP_TARGETS"
CHUNK_BYTES = 1 << 20
_NAME_RE = re.compile(r"homeiq-\d{8}T\d{6}Z\.tar\.age")
_NAME_TIME = "homeiq-%Y%m%dT%H%M%SZ.tar.age"
SHA256_RE = re.compile(r"[0-9a-f]{64}")


def archive_name(created: datetime) -> str:
    """The archive file name for a (timezone-aware) creation time, to the second, in UTC."""
    if created.utcoffset() is None:
        raise ValueError(f"archive time must be timezone-aware, got {created!r}")
    return created.astimezone(UTC).strftime(_NAME_TIME)


def parse_archive_name(name: str) -> datetime | None:
    """The UTC creation time encoded in an archive name; None for any other name."""
    if not _NAME_RE.fullmatch(name):
        return None
    try:
        created = datetime.strptime(name, _NAME_TIME).replace(tzinfo=UTC)
    except ValueError:  # 13th month, 25th hour...
        return None
    # strptime tolerates some odd digit splits; only the canonical spelling is ours.
    return created if archive_name(created) == name else None


@dataclass(frozen=True, slots=True)
class StoredArchive:
    """One archive as a target holds it (``sha256`` is None when none was recorded)."""

    name: str
    size: int
    sha256: str | None
    created_at: datetime


class Target(ABC):
    """A place archives are copied to. Methods block: callers run them in threads."""

    #: How the target is shown in logs and errors (``file:///mnt/nas``); never credentials.
    label: str

    @abstractmethod
    def put(self, path: Path, *, sha256: str) -> StoredArchive:
        """Store the archive at ``path`` under its own name and verify the stored copy.

        Raises ``ArchiveMismatch`` (after removing the bad copy) when the stored size or
        sha256 differs, or when ``path`` itself does not hash to ``sha256``.
        """

    @abstractmethod
    def list(self) -> builtins.list[StoredArchive]:
        """The archives held here, oldest first; other files are ignored."""

    @abstractmethod
    def fetch(self, name: str, dest: Path) -> Path:
        """Copy archive ``name`` to ``dest`` and return the path written.

        ``dest`` is an existing directory (the file goes in it under ``name``) or the path
        of the file to write. The bytes are checked against the size and sha256 the target
        recorded; on a mismatch nothing is left at ``dest`` and ``ArchiveMismatch`` is
        raised. An archive with no recorded sha256 cannot be checked and is refused.
        """

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove archive ``name`` and its checksum; nothing happens if it is not there."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label}>"


def archive_time(name: str) -> datetime:
    # Names reach the file system and S3 keys: nothing but our own names, so no "../x".
    created = parse_archive_name(name)
    if created is None:
        raise ValueError(f"{name!r} is not a HomeIQ archive name (homeiq-<UTC time>.tar.age)")
    return created


def checked_sha256(sha256: str) -> str:
    digest = sha256.strip().lower()
    if not SHA256_RE.fullmatch(digest):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return digest


def hash_file(path: Path) -> tuple[int, str]:
    """(size, sha256 hex) of a file, as read now."""
    with path.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
        return f.tell(), digest


def describe(exc: OSError) -> str:
    return exc.strerror or str(exc)


def receive(
    chunks: Iterable[bytes], dest: Path, *, name: str, size: int, sha256: str, source: str
) -> Path:
    """Write archive ``name``'s bytes from ``source`` to ``dest`` (a directory or a file),
    checking size and sha256.

    The bytes land in a hidden ``.partial`` file that becomes ``dest`` only once they
    match, so a failed fetch never leaves something that looks like a good archive.
    """
    final = dest / name if dest.is_dir() else dest
    partial = final.with_name(f".{final.name}.partial")
    digest = hashlib.sha256()
    received = 0
    try:
        with partial.open("wb") as out:
            for chunk in chunks:
                digest.update(chunk)
                received += len(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if received != size or digest.hexdigest() != sha256:
            raise ArchiveMismatch(
                f"{source}: {name}: got {received} bytes with sha256 {digest.hexdigest()}, "
                f"expected {size} bytes with sha256 {sha256}"
            )
        partial.replace(final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return final
