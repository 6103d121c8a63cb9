"""Where backup archives go: a local or mounted directory, or an S3 bucket.

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
their checksum, and copying the same bytes again will not fix that). boto3 and OS
errors are converted here and never leak.

S3 endpoint, region and credentials come from boto3's own chain (AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, AWS_PROFILE, ~/.aws/config, instance roles...), never from HomeIQ.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import logging
import os
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, NoReturn
from urllib.parse import SplitResult, unquote, urlsplit

import boto3
from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError

from homeiq.errors import ArchiveMismatch, ConfigError, TargetUnavailable

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import HeadObjectOutputTypeDef

logger = logging.getLogger(__name__)

SETTING = "HOMEIQ_BACKUP_TARGETS"
CHUNK_BYTES = 1 << 20
_NAME_RE = re.compile(r"homeiq-\d{8}T\d{6}Z\.tar\.age")
_NAME_TIME = "homeiq-%Y%m%dT%H%M%SZ.tar.age"
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
# `sha256sum` writes "<hex>  <name>" (text mode) or "<hex> *<name>" (binary mode).
_SIDECAR_RE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")
# AWS's rules for new buckets; S3-compatible stores follow them too.
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


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

    @staticmethod
    def from_url(url: str) -> Target:
        """The target for one URL of HOMEIQ_BACKUP_TARGETS; ConfigError when it is not one."""
        return _target_from_url(url.strip())

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


def parse_targets(spec: str | Sequence[str]) -> list[Target]:
    """The targets of HOMEIQ_BACKUP_TARGETS: comma-separated URLs (or a list of them).

    Accepts ``file:///absolute/path``, ``s3://bucket`` and ``s3://bucket/prefix``; blank
    entries are skipped. Anything else, or the same target twice, raises ConfigError.
    """
    urls = spec.split(",") if isinstance(spec, str) else builtins.list(spec)
    targets: list[Target] = []
    for url in (u.strip() for u in urls):
        if not url:
            continue
        target = Target.from_url(url)
        if any(t.label == target.label for t in targets):
            raise ConfigError(SETTING, f"{target.label} is listed more than once")
        targets.append(target)
    return targets


def _target_from_url(url: str) -> Target:
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unbalanced "[" in the host
        raise ConfigError(SETTING, f"{_shown(url)!r} is not a valid URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme == "file":
        return _file_target(url, parts)
    if scheme == "s3":
        return _s3_target(url, parts)
    if not scheme and url.startswith("/"):
        hint = f"write a directory as a URL: file://{url}"
    else:
        hint = "use file:///absolute/path or s3://bucket/prefix"
    raise ConfigError(SETTING, f"{_shown(url)!r} is not a backup target; {hint}")


def _file_target(url: str, parts: SplitResult) -> FileTarget:
    if parts.netloc not in ("", "localhost"):
        # file://mnt/nas parses "mnt" as a host: the classic missing third slash.
        raise ConfigError(
            SETTING,
            f"{_shown(url)!r} names a host; a directory needs three slashes: "
            f"file:///{parts.netloc}{parts.path}",
        )
    if parts.query or parts.fragment:
        raise ConfigError(SETTING, f"{_shown(url)!r}: a file URL takes no ?query or #fragment")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise ConfigError(SETTING, f"{url!r} needs an absolute path: file:///absolute/path")
    if ".." in path.split("/"):
        raise ConfigError(SETTING, f"{url!r}: '..' is not allowed in a backup directory")
    return FileTarget(Path(path))


def _s3_target(url: str, parts: SplitResult) -> S3Target:
    if "@" in parts.netloc:
        raise ConfigError(
            SETTING,
            f"{_shown(url)!r}: credentials do not belong in the URL; give them to boto3 "
            "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/credentials)",
        )
    bucket = parts.netloc
    if not bucket:
        raise ConfigError(SETTING, f"{url!r} has no bucket: s3://bucket or s3://bucket/prefix")
    if ":" in bucket:
        raise ConfigError(
            SETTING,
            f"{url!r}: the part after s3:// is a bucket, not a host; set the endpoint "
            "with AWS_ENDPOINT_URL",
        )
    if not _BUCKET_RE.fullmatch(bucket):
        raise ConfigError(
            SETTING,
            f"{url!r}: {bucket!r} is not a valid bucket name (3-63 characters: lowercase "
            "letters, digits, dots and hyphens, starting and ending with a letter or digit)",
        )
    if parts.query or parts.fragment:
        raise ConfigError(SETTING, f"{url!r}: an s3 URL takes no ?query or #fragment")
    prefix = unquote(parts.path).strip("/")
    if "//" in prefix:
        raise ConfigError(SETTING, f"{url!r}: the prefix has an empty path segment")
    return S3Target(bucket, prefix)


def _shown(url: str) -> str:
    """``url`` with any user:password@ part masked, fit for an error message."""
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    if sep and "@" in host:
        return f"{scheme}://***@{host.rpartition('@')[2]}{slash}{path}"
    return url


def _archive_time(name: str) -> datetime:
    # Names reach the file system and S3 keys: nothing but our own names, so no "../x".
    created = parse_archive_name(name)
    if created is None:
        raise ValueError(f"{name!r} is not a HomeIQ archive name (homeiq-<UTC time>.tar.age)")
    return created


def _checked_sha256(sha256: str) -> str:
    digest = sha256.strip().lower()
    if not _SHA256_RE.fullmatch(digest):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return digest


def _hash_file(path: Path) -> tuple[int, str]:
    """(size, sha256 hex) of a file, as read now."""
    with path.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
        return f.tell(), digest


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _receive(
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


class FileTarget(Target):
    """Archives in a directory (local disk or a mounted NAS), each with a ``.sha256``
    sidecar in ``sha256sum`` format so ``sha256sum -c NAME.sha256`` checks it by hand."""

    def __init__(self, directory: Path) -> None:
        if not directory.is_absolute():
            raise ValueError(f"backup directory must be absolute, got {directory}")
        self.directory = directory
        self.label = directory.as_uri()

    def _fail(self, doing: str, exc: OSError) -> NoReturn:
        raise TargetUnavailable(f"{self.label}: {doing}: {_describe(exc)}") from exc

    def put(self, path: Path, *, sha256: str) -> StoredArchive:
        """Copy to ``NAME.partial``, fsync, re-read and hash it, write the sidecar, then
        rename into place: readers never see a half-written or unverified archive."""
        created = _archive_time(path.name)
        expected = _checked_sha256(sha256)
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
                stored_size, stored = _hash_file(partial)
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
        _archive_time(name)
        try:
            with (self.directory / name).open("rb") as src:
                expected = self._sidecar(name)
                if expected is None:
                    raise ArchiveMismatch(
                        f"{self.label}: {name} has no valid {name}.sha256, so it cannot be verified"
                    )
                size = os.fstat(src.fileno()).st_size
                chunks = iter(lambda: src.read(CHUNK_BYTES), b"")
                return _receive(
                    chunks, dest, name=name, size=size, sha256=expected, source=self.label
                )
        except FileNotFoundError as exc:
            if exc.filename == str(self.directory / name):
                raise TargetUnavailable(f"{self.label}: no archive {name}") from exc
            raise TargetUnavailable(f"cannot write {exc.filename}: {_describe(exc)}") from exc
        except OSError as exc:
            raise TargetUnavailable(f"fetching {name} from {self.label}: {_describe(exc)}") from exc

    def delete(self, name: str) -> None:
        """Remove the archive, then its sidecar (a stray sidecar is harmless)."""
        _archive_time(name)
        try:
            (self.directory / name).unlink(missing_ok=True)
            (self.directory / f"{name}.sha256").unlink(missing_ok=True)
        except OSError as exc:
            self._fail(f"cannot delete {name}", exc)
        logger.info("deleted %s from %s", name, self.label)


class S3Target(Target):
    """Archives as objects ``prefix/NAME`` in an existing bucket, each with its sha256 in
    the object metadata (``x-amz-meta-sha256``) and uploaded with S3's own SHA256
    checksum, which S3 verifies on receipt.

    ``client`` defaults to ``boto3.session.Session().client("s3")`` (made on first use),
    so endpoint, region and credentials come the usual boto3 ways. ``transfer_config``
    tunes multipart uploads.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: S3Client | None = None,
        transfer_config: TransferConfig | None = None,
    ) -> None:
        if not bucket or "/" in bucket:
            raise ValueError(f"not a bucket name: {bucket!r}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.label = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client = client
        self._client_lock = threading.Lock()
        self._transfer_config = transfer_config

    @property
    def client(self) -> S3Client:
        """The boto3 S3 client (a new session's: boto3's default session is not
        thread-safe to create clients from)."""
        with self._client_lock:
            if self._client is None:
                self._client = boto3.session.Session().client("s3")
            return self._client

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Convert boto3's errors into TargetUnavailable naming the target."""
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "?")
            if code == "NoSuchBucket":
                message = self._no_bucket()
            elif code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                message = f"{doing}: access denied ({code}); check the AWS credentials"
            else:
                message = f"{doing}: {code}: {error.get('Message', exc)}"
            raise TargetUnavailable(f"{self.label}: {message}") from exc
        except (BotoCoreError, Boto3Error) as exc:
            raise TargetUnavailable(f"{self.label}: {doing}: {exc}") from exc

    def _no_bucket(self) -> str:
        return (
            f"bucket {self.bucket!r} does not exist at {self.client.meta.endpoint_url}; "
            "create it first (HomeIQ does not create buckets)"
        )

    def _check_bucket(self) -> None:
        # Before an upload: boto3's upload errors bury the reason in a long message.
        with self._errors("checking the bucket"):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                # HEAD responses have no body: a missing bucket is a bare "404".
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket"):
                    raise TargetUnavailable(f"{self.label}: {self._no_bucket()}") from exc
                raise

    def put(self, path: Path, *, sha256: str) -> StoredArchive:
        """Upload (multipart when large), then check ContentLength, the sha256 metadata
        and S3's SHA256 checksum against the local file; delete the object if they differ.
        A store that reports no SHA256 checksum has the object read back and hashed."""
        created = _archive_time(path.name)
        expected = _checked_sha256(sha256)
        size, actual = _hash_file(path)
        if actual != expected:
            raise ArchiveMismatch(f"{path} hashes to {actual}, not to the sha256 {expected} given")
        key = self._key(path.name)
        self._check_bucket()
        with self._errors(f"uploading {path.name}"):
            self.client.upload_file(
                str(path),
                self.bucket,
                key,
                ExtraArgs={"Metadata": {"sha256": expected}, "ChecksumAlgorithm": "SHA256"},
                Config=self._transfer_config,
            )
        with self._errors(f"verifying {path.name}"):
            head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
            problem = self._upload_problem(path, key, head, size, expected)
        if problem is not None:
            with self._errors(f"deleting the bad copy of {path.name}"):
                self.client.delete_object(Bucket=self.bucket, Key=key)
            raise ArchiveMismatch(
                f"{self.label}: uploaded {path.name} does not match ({problem}); deleted it"
            )
        logger.info("stored %s in %s (%d bytes)", path.name, self.label, size)
        return StoredArchive(path.name, size, expected, created)

    def _upload_problem(
        self, path: Path, key: str, head: HeadObjectOutputTypeDef, size: int, expected: str
    ) -> str | None:
        if head["ContentLength"] != size:
            return f"{head['ContentLength']} bytes instead of {size}"
        recorded = head.get("Metadata", {}).get("sha256")
        if recorded != expected:
            return f"sha256 metadata {recorded!r} instead of {expected!r}"
        checksum = head.get("ChecksumSHA256")
        if checksum is None:
            logger.info("%s reports no SHA256 checksum; reading %s back", self.label, key)
            return self._read_back_problem(key, size, expected)
        # AWS spells a multipart object's checksum "<base64>-<parts>"; moto omits the count.
        value = checksum.partition("-")[0]
        if value == base64.b64encode(bytes.fromhex(expected)).decode():
            return None
        # Multipart: S3's checksum is the sha256 of the parts' sha256s. S3 checked each
        # part on receipt; recompute the composite from the local file to compare.
        part = self.client.head_object(Bucket=self.bucket, Key=key, PartNumber=1)
        parts = part.get("PartsCount", 1)
        if parts > 1 and value == _composite_sha256(path, part["ContentLength"]):
            return None
        return f"S3's SHA256 checksum is {checksum}"

    def _read_back_problem(self, key: str, size: int, expected: str) -> str | None:
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        digest = hashlib.sha256()
        received = 0
        for chunk in body.iter_chunks(CHUNK_BYTES):
            digest.update(chunk)
            received += len(chunk)
        if (received, digest.hexdigest()) != (size, expected):
            return f"reads back as {received} bytes with sha256 {digest.hexdigest()}"
        return None

    def list(self) -> builtins.list[StoredArchive]:
        """Archives directly under the prefix; one HEAD each for its sha256 metadata."""
        start = f"{self.prefix}/" if self.prefix else ""
        archives = []
        with self._errors("listing archives"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start, Delimiter="/"
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(start) :]
                    created = parse_archive_name(name)
                    if created is not None:
                        sha256 = self._recorded_sha256(obj["Key"])
                        archives.append(StoredArchive(name, obj["Size"], sha256, created))
        return sorted(archives, key=lambda a: a.created_at)

    def _recorded_sha256(self, key: str) -> str | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            # Deleted between the listing and now (another host pruning): no checksum.
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return None
            raise
        return head.get("Metadata", {}).get("sha256")

    def fetch(self, name: str, dest: Path) -> Path:
        """See ``Target.fetch``; checked against the object's sha256 metadata and size."""
        _archive_time(name)
        with self._errors(f"fetching {name}"):
            try:
                obj = self.client.get_object(Bucket=self.bucket, Key=self._key(name))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    raise TargetUnavailable(f"{self.label}: no archive {name}") from exc
                raise
            body = obj["Body"]
            try:
                expected = obj.get("Metadata", {}).get("sha256")
                if expected is None or not _SHA256_RE.fullmatch(expected):
                    raise ArchiveMismatch(
                        f"{self.label}: {name} has no sha256 metadata, so it cannot be verified"
                    )
                chunks = body.iter_chunks(CHUNK_BYTES)
                size = obj["ContentLength"]
                try:
                    return _receive(
                        chunks, dest, name=name, size=size, sha256=expected, source=self.label
                    )
                except OSError as exc:
                    raise TargetUnavailable(f"{self.label}: fetching {name}: {exc}") from exc
            finally:
                body.close()

    def delete(self, name: str) -> None:
        """Delete the object (S3 deletes are idempotent)."""
        _archive_time(name)
        with self._errors(f"deleting {name}"):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(name))
        logger.info("deleted %s from %s", name, self.label)


def _composite_sha256(path: Path, part_size: int) -> str:
    """S3's checksum of a multipart upload: base64 sha256 of the parts' sha256 digests."""
    outer = hashlib.sha256()
    with path.open("rb") as f:
        while True:
            inner = hashlib.sha256()
            left = part_size
            while left and (chunk := f.read(min(left, CHUNK_BYTES))):
                inner.update(chunk)
                left -= len(chunk)
            if left == part_size:
                break
            outer.update(inner.digest())
    return base64.b64encode(outer.digest()).decode()
