"""Archives as objects in an S3 (or S3-compatible) bucket (``s3://bucket/prefix``).

boto3 is an optional extra (``pip install 'homeiq[s3]'``): it is imported when an S3
target is made, never by HomeIQ's other modules, so commands that do not touch S3 do not
pay for loading it (about 100 ms). Endpoint, region and credentials come from boto3's own
chain (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_PROFILE, ~/.aws/config, instance roles...),
never from HomeIQ.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from homeiq.errors import ArchiveMismatch, ConfigError, TargetUnavailable
from homeiq.maintenance.backup.targets.base import (
    CHUNK_BYTES,
    SETTING,
    SHA256_RE,
    StoredArchive,
    Target,
    archive_time,
    checked_sha256,
    hash_file,
    parse_archive_name,
    receive,
)

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig
    from botocore.exceptions import ClientError
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import HeadObjectOutputTypeDef

logger = logging.getLogger(__name__)

MISSING_EXTRA = "s3:// targets need the s3 extra: pip install 'homeiq[s3]'"


def load_boto3() -> tuple[ModuleType, ModuleType, ModuleType]:
    """boto3, ``boto3.exceptions`` and ``botocore.exceptions``; ConfigError naming
    HOMEIQ_BACKUP_TARGETS when the s3 extra is not installed."""
    try:
        import boto3
        import boto3.exceptions
        import botocore.exceptions
    except ImportError as exc:
        raise ConfigError(SETTING, MISSING_EXTRA) from exc
    return boto3, boto3.exceptions, botocore.exceptions


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
        self._boto3, boto3_errors, botocore_errors = load_boto3()
        self._client_error: type[ClientError] = botocore_errors.ClientError
        self._library_errors: tuple[type[Exception], ...] = (
            botocore_errors.BotoCoreError,
            boto3_errors.Boto3Error,
        )
        self._client = client
        self._client_lock = threading.Lock()
        self._transfer_config = transfer_config

    @property
    def client(self) -> S3Client:
        """The boto3 S3 client (a new session's: boto3's default session is not
        thread-safe to create clients from)."""
        with self._client_lock:
            if self._client is None:
                self._client = self._boto3.session.Session().client("s3")
            return self._client

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Convert boto3's errors into TargetUnavailable naming the target."""
        try:
            yield
        except self._client_error as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "?")
            if code == "NoSuchBucket":
                message = self._no_bucket()
            elif code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                message = f"{doing}: access denied ({code}); check the AWS credentials"
            else:
                message = f"{doing}: {code}: {error.get('Message', exc)}"
            raise TargetUnavailable(f"{self.label}: {message}") from exc
        except self._library_errors as exc:
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
            except self._client_error as exc:
                # HEAD responses have no body: a missing bucket is a bare "404".
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket"):
                    raise TargetUnavailable(f"{self.label}: {self._no_bucket()}") from exc
                raise

    def put(self, path: Path, *, sha256: str) -> StoredArchive:
        """Upload (multipart when large), then check ContentLength, the sha256 metadata
        and S3's SHA256 checksum against the local file; delete the object if they differ.
        A store that reports no SHA256 checksum has the object read back and hashed."""
        created = archive_time(path.name)
        expected = checked_sha256(sha256)
        size, actual = hash_file(path)
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
        except self._client_error as exc:
            # Deleted between the listing and now (another host pruning): no checksum.
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return None
            raise
        return head.get("Metadata", {}).get("sha256")

    def fetch(self, name: str, dest: Path) -> Path:
        """See ``Target.fetch``; checked against the object's sha256 metadata and size."""
        archive_time(name)
        with self._errors(f"fetching {name}"):
            try:
                obj = self.client.get_object(Bucket=self.bucket, Key=self._key(name))
            except self._client_error as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    raise TargetUnavailable(f"{self.label}: no archive {name}") from exc
                raise
            body = obj["Body"]
            try:
                expected = obj.get("Metadata", {}).get("sha256")
                if expected is None or not SHA256_RE.fullmatch(expected):
                    raise ArchiveMismatch(
                        f"{self.label}: {name} has no sha256 metadata, so it cannot be verified"
                    )
                chunks = body.iter_chunks(CHUNK_BYTES)
                size = obj["ContentLength"]
                try:
                    return receive(
                        chunks, dest, name=name, size=size, sha256=expected, source=self.label
                    )
                except OSError as exc:
                    raise TargetUnavailable(f"{self.label}: fetching {name}: {exc}") from exc
            finally:
                body.close()

    def delete(self, name: str) -> None:
        """Delete the object (S3 deletes are idempotent)."""
        archive_time(name)
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
