"""Archives in a directory: local disk or a mounted NAS (``file:///path``)."""

from __future__ import annotations

import builtins
import hashlib
import logging
import os
import re
from pathlib import Path
from typing import IO, NoReturn

from homeiq.errors import ArchiveMismatch, TargetUnavailable
from homeiq.maintenance.backup.targets.base import (
    CHUNK_BYTES,
    StoredArchive,
    Target,
    archive_time,
    checked_sha256,
    describe,
    hash_file,
    parse_archive_name,
    receive,
)

logger = logging.getLogger(__name__)

# `sha256sum` writes "<hex>  <name>" (text mode) or "<hex> *<name>" (binary mode).
_SIDECAR_RE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")


class FileTarget(Target):
    """Archives in a directory (local disk or a mounted NAS), each with a ``.sha256``
    sidecar in ``sha256sum`` format so ``sha256sum -c NAME.sha256`` checks it by hand."""

    def __init__(self, directory: Path) -> None:
        if not directory.is_absolute():
            raise ValueError(f"backup directory must be absolute, got {directory}")
        self.directory = directory
        self.label = directory.as_uri()

    def _fail(self, doing: str, exc: OSError) -> NoReturn:
        raise TargetUnavailable(f"{self.label}: {doing}: {describe(exc)}") from exc

    def put(self, path: Path, *, sha256: str) -> StoredArchive:
        """Copy to ``NAME.partial``, fsync, re-read and hash it, write the sidecar, then
        rename into place: readers never see a half-written or unverified archive."""
        created = archive_time(path.name)
        expected = checked_sha256(sha256)
        name = path.name
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            self._fail(f"cannot create backup directory {self.directory}", exc)
        final = self.directory / name
        partial = self.directory / f"{name}.partial"
        sidecar = self.directory / f"{name}.sha256"
        sidecar_partial = self.directory / f"{name}.sha256.partial"
        # Opened first so a missing source is the caller's FileNotFoundError, not ours.
        with path.open("rb") as src:
            try:
                size = self._copy(src, partial, expected, path)
                stored_size, stored = hash_file(partial)
                if (stored_size, stored) != (size, expected):
                    raise ArchiveMismatch(
                        f"{self.label}: the copy of {name} reads back as {stored_size} bytes "
                        f"with sha256 {stored}, not {size} bytes with sha256 {expected}; "
                        "removed it"
                    )
                # The sidecar goes first: an archive visible under its name has its checksum.
                self._write_durably(sidecar_partial, f"{expected}  {name}\n".encode())
                sidecar_partial.replace(sidecar)
                partial.replace(final)
                self._sync_directory()
            except ArchiveMismatch:
                partial.unlink(missing_ok=True)
                raise
            except OSError as exc:
                partial.unlink(missing_ok=True)
                sidecar_partial.unlink(missing_ok=True)
                self._fail(f"cannot write {name} in {self.directory}", exc)
        logger.info("stored %s in %s (%d bytes)", name, self.label, size)
        return StoredArchive(name, size, expected, created)

    def _copy(self, src: IO[bytes], partial: Path, expected: str, path: Path) -> int:
        digest = hashlib.sha256()
        size = 0
        with partial.open("wb") as out:
            while chunk := src.read(CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != expected:
            # The source is not the archive the caller hashed: storing it would only
            # create a copy that can never be verified.
            raise ArchiveMismatch(
                f"{path} hashes to {digest.hexdigest()}, not to the sha256 {expected} given"
            )
        return size

    @staticmethod
    def _write_durably(path: Path, data: bytes) -> None:
        with path.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())

    def _sync_directory(self) -> None:
        # The renames are only durable once the directory entry is on disk.
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _sidecar(self, name: str) -> str | None:
        try:
            text = (self.directory / f"{name}.sha256").read_text(errors="replace")
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._fail(f"cannot read {name}.sha256", exc)
        match = _SIDECAR_RE.fullmatch(text.strip())
        if match is None or match.group(2) != name:
            logger.warning("%s: ignoring malformed %s.sha256", self.label, name)
            return None
        return match.group(1).lower()

    def list(self) -> builtins.list[StoredArchive]:
        """Archives in the directory with their sizes and sidecar checksums; an absent
        directory (no backup made yet) holds none."""
        archives = []
        try:
            for entry in self.directory.iterdir():
                created = parse_archive_name(entry.name)
                if created is None or not entry.is_file():
                    continue
                archives.append(
                    StoredArchive(
                        entry.name, entry.stat().st_size, self._sidecar(entry.name), created
                    )
                )
        except FileNotFoundError:
            return []
        except OSError as exc:
            self._fail(f"cannot list {self.directory}", exc)
        return sorted(archives, key=lambda a: a.created_at)

    def fetch(self, name: str, dest: Path) -> Path:
        """See ``Target.fetch``; checked against ``NAME.sha256`` and the stored size."""
        archive_time(name)
        try:
            with (self.directory / name).open("rb") as src:
                expected = self._sidecar(name)
                if expected is None:
                    raise ArchiveMismatch(
                        f"{self.label}: {name} has no valid {name}.sha256, so it cannot be verified"
                    )
                size = os.fstat(src.fileno()).st_size
                chunks = iter(lambda: src.read(CHUNK_BYTES), b"")
                return receive(
                    chunks, dest, name=name, size=size, sha256=expected, source=self.label
                )
        except FileNotFoundError as exc:
            if exc.filename == str(self.directory / name):
                raise TargetUnavailable(f"{self.label}: no archive {name}") from exc
            raise TargetUnavailable(f"cannot write {exc.filename}: {describe(exc)}") from exc
        except OSError as exc:
            raise TargetUnavailable(f"fetching {name} from {self.label}: {describe(exc)}") from exc

    def delete(self, name: str) -> None:
        """Remove the archive, then its sidecar (a stray sidecar is harmless)."""
        archive_time(name)
        try:
            (self.directory / name).unlink(missing_ok=True)
            (self.directory / f"{name}.sha256").unlink(missing_ok=True)
        except OSError as exc:
            self._fail(f"cannot delete {name}", exc)
        logger.info("deleted %s from %s", name, self.label)
