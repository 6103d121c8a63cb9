"""Backup targets: a directory and a real S3 API (moto_server), each storing, listing,
fetching and deleting archives and refusing copies that do not match their sha256."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest
from boto3.s3.transfer import TransferConfig

from homeiq.errors import ArchiveMismatch, ConfigError, TargetUnavailable, TransientError
from homeiq.maintenance.backup.targets import (
    FileTarget,
    S3Target,
    StoredArchive,
    Target,
    archive_name,
    parse_archive_name,
    parse_targets,
)
from tests.support.s3 import MotoServer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T = datetime(2026, 11, 25, 21, 22, 17, tzinfo=UTC)
NAME = "homeiq-20261125T212217Z.tar.age"


def make_archive(directory: Path, created: datetime = T, data: bytes = b"") -> tuple[Path, str]:
    """An archive file (random-ish bytes) and its sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / archive_name(created)
    path.write_bytes(data or os.urandom(3000) + created.isoformat().encode())
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


# -- names ----------------------------------------------------------------------------


def test_archive_names_round_trip_in_utc() -> None:
    assert archive_name(T) == NAME
    assert parse_archive_name(NAME) == T
    berlin = T.astimezone(ZoneInfo("Europe/Berlin"))
    assert archive_name(berlin.replace(microsecond=123)) == NAME


@pytest.mark.parametrize(
    "name",
    [
        "homeiq-20261125T212217Z.tar",
        "homeiq-20261125T212217Z.tar.age.partial",
        "homeiq-20261125T212217Z.tar.age.sha256",
        "homeiq-20261325T212217Z.tar.age",  # month 13
        "homeiq-20261125T252217Z.tar.age",  # hour 25
        "homeiq-2026112T212217Z.tar.age",
        "xhomeiq-20261125T212217Z.tar.age",
        "../homeiq-20261125T212217Z.tar.age",
        "",
    ],
)
def test_other_names_are_not_archives(name: str) -> None:
    assert parse_archive_name(name) is None


def test_naive_times_have_no_archive_name() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        archive_name(datetime(2026, 1, 1))


# -- file target ----------------------------------------------------------------------


def test_file_target_round_trip(tmp_path: Path) -> None:
    source, sha = make_archive(tmp_path / "src")
    target = FileTarget(tmp_path / "nas" / "homeiq")  # created on first put

    stored = target.put(source, sha256=sha.upper())  # any case in, lowercase stored

    assert stored == StoredArchive(NAME, source.stat().st_size, sha, T)
    directory = tmp_path / "nas" / "homeiq"
    assert sorted(p.name for p in directory.iterdir()) == [NAME, f"{NAME}.sha256"]
    assert (directory / f"{NAME}.sha256").read_text() == f"{sha}  {NAME}\n"
    assert directory.stat().st_mode & 0o777 == 0o700
    assert target.list() == [stored]

    fetched = target.fetch(NAME, tmp_path / "restore.tar.age")  # a file path
    assert fetched == tmp_path / "restore.tar.age"
    assert fetched.read_bytes() == source.read_bytes()
    (tmp_path / "into").mkdir()
    assert target.fetch(NAME, tmp_path / "into") == tmp_path / "into" / NAME  # a directory

    target.delete(NAME)
    target.delete(NAME)  # already gone: fine
    assert list(directory.iterdir()) == []
    assert target.list() == []


def test_file_target_sidecar_satisfies_sha256sum(tmp_path: Path) -> None:
    if shutil.which("sha256sum") is None:
        pytest.skip("no sha256sum")
    source, sha = make_archive(tmp_path / "src")
    FileTarget(tmp_path / "nas").put(source, sha256=sha)
    result = subprocess.run(
        ["sha256sum", "-c", f"{NAME}.sha256"], cwd=tmp_path / "nas", capture_output=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_file_target_lists_only_archives_oldest_first(tmp_path: Path) -> None:
    target = FileTarget(tmp_path / "nas")
    times = [T - timedelta(days=d) for d in (0, 3, 1)]
    for t in times:
        path, sha = make_archive(tmp_path / "src", t)
        target.put(path, sha256=sha)
    (tmp_path / "nas" / "notes.txt").write_text("not an archive")
    (tmp_path / "nas" / f"{archive_name(T + timedelta(days=1))}.partial").write_bytes(b"x")
    (tmp_path / "nas" / archive_name(T - timedelta(days=9))).write_bytes(b"no sidecar")

    listed = target.list()

    assert [a.created_at for a in listed] == sorted([*times, T - timedelta(days=9)])
    assert listed[0].sha256 is None and listed[0].size == len(b"no sidecar")
    assert all(a.sha256 for a in listed[1:])
    assert FileTarget(tmp_path / "absent").list() == []


def test_file_target_put_refuses_a_source_that_does_not_match(tmp_path: Path) -> None:
    source, _ = make_archive(tmp_path / "src")
    target = FileTarget(tmp_path / "nas")
    with pytest.raises(ArchiveMismatch, match="hashes to"):
        target.put(source, sha256="ab" * 32)
    assert list((tmp_path / "nas").iterdir()) == []  # no .partial, no sidecar


def test_file_target_put_refuses_names_and_digests_that_are_not_ours(tmp_path: Path) -> None:
    target = FileTarget(tmp_path / "nas")
    other = tmp_path / "backup.tar"
    other.write_bytes(b"x")
    with pytest.raises(ValueError, match="not a HomeIQ archive name"):
        target.put(other, sha256="ab" * 32)
    source, _ = make_archive(tmp_path / "src")
    with pytest.raises(ValueError, match="sha256"):
        target.put(source, sha256="not-hex")
    with pytest.raises(ValueError, match="not a HomeIQ archive name"):
        target.fetch("../../etc/passwd", tmp_path)
    with pytest.raises(ValueError, match="not a HomeIQ archive name"):
        target.delete("../x")


def test_file_target_fetch_detects_a_corrupted_copy(tmp_path: Path) -> None:
    source, sha = make_archive(tmp_path / "src")
    target = FileTarget(tmp_path / "nas")
    target.put(source, sha256=sha)
    stored = tmp_path / "nas" / NAME
    data = bytearray(stored.read_bytes())
    data[1234] ^= 0x01  # one bit rotted on the NAS
    stored.write_bytes(bytes(data))
    (tmp_path / "restore").mkdir()

    with pytest.raises(ArchiveMismatch, match=f"expected {len(data)} bytes with sha256 {sha}"):
        target.fetch(NAME, tmp_path / "restore")
    assert list((tmp_path / "restore").iterdir()) == []  # nothing that looks restorable


def test_file_target_fetch_refuses_an_archive_without_checksum(tmp_path: Path) -> None:
    target = FileTarget(tmp_path / "nas")
    (tmp_path / "nas").mkdir()
    (tmp_path / "nas" / NAME).write_bytes(b"copied by hand")
    with pytest.raises(ArchiveMismatch, match="cannot be verified"):
        target.fetch(NAME, tmp_path / "out.tar.age")
    (tmp_path / "nas" / f"{NAME}.sha256").write_text("garbage\n")
    with pytest.raises(ArchiveMismatch, match="cannot be verified"):
        target.fetch(NAME, tmp_path / "out.tar.age")
    assert not (tmp_path / "out.tar.age").exists()


def test_file_target_fetch_of_a_missing_archive(tmp_path: Path) -> None:
    with pytest.raises(TargetUnavailable, match=f"no archive {NAME}"):
        FileTarget(tmp_path).fetch(NAME, tmp_path / "out")


def test_file_target_unwritable_directory_is_named(tmp_path: Path) -> None:
    source, sha = make_archive(tmp_path / "src")
    (tmp_path / "a-file").write_text("")
    blocked = tmp_path / "a-file" / "homeiq"  # root ignores modes; a file in the way does not
    with pytest.raises(
        TargetUnavailable, match=re.escape(f"cannot create backup directory {blocked}")
    ):
        FileTarget(blocked).put(source, sha256=sha)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only directories")
def test_file_target_read_only_directory_is_named(tmp_path: Path) -> None:
    source, sha = make_archive(tmp_path / "src")
    read_only = tmp_path / "ro"
    read_only.mkdir(mode=0o500)
    try:
        with pytest.raises(
            TargetUnavailable, match=re.escape(f"cannot write {NAME} in {read_only}")
        ):
            FileTarget(read_only).put(source, sha256=sha)
    finally:
        read_only.chmod(0o700)


def test_an_unreachable_target_is_transient_a_bad_copy_is_not() -> None:
    # The delivery and the API treat the two branches differently (retry vs report).
    assert issubclass(TargetUnavailable, TransientError)
    assert not issubclass(ArchiveMismatch, TransientError)


# -- S3 target (real S3 API: moto_server) ---------------------------------------------


@pytest.mark.s3
@pytest.mark.parametrize("prefix", ["", "homeiq/nightly"])
def test_s3_target_round_trip(s3_bucket: tuple[S3Client, str], tmp_path: Path, prefix: str) -> None:
    client, bucket = s3_bucket
    source, sha = make_archive(tmp_path / "src")
    target = S3Target(bucket, prefix, client=client)
    key = f"{prefix}/{NAME}" if prefix else NAME

    stored = target.put(source, sha256=sha)

    assert stored == StoredArchive(NAME, source.stat().st_size, sha, T)
    head = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head["Metadata"] == {"sha256": sha}
    assert "ChecksumSHA256" in head
    assert target.list() == [stored]

    (tmp_path / "restore").mkdir()
    fetched = target.fetch(NAME, tmp_path / "restore")
    assert fetched.read_bytes() == source.read_bytes()

    target.delete(NAME)
    target.delete(NAME)
    assert target.list() == []
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


@pytest.mark.s3
def test_s3_target_lists_only_archives_directly_under_its_prefix(
    s3_bucket: tuple[S3Client, str], tmp_path: Path
) -> None:
    client, bucket = s3_bucket
    target = S3Target(bucket, "/homeiq/", client=client)  # slashes trimmed
    assert target.label == f"s3://{bucket}/homeiq"
    older, sha = make_archive(tmp_path / "src", T - timedelta(days=2))
    target.put(older, sha256=sha)
    newer, sha = make_archive(tmp_path / "src", T)
    target.put(newer, sha256=sha)
    for key in ("homeiq/readme.txt", f"homeiq/deeper/{NAME}", f"homeiq-other/{NAME}", NAME):
        client.put_object(Bucket=bucket, Key=key, Body=b"x")

    assert [a.name for a in target.list()] == [older.name, newer.name]
    assert [a.name for a in S3Target(bucket, client=client).list()] == [NAME]


@pytest.mark.s3
def test_s3_target_multipart_upload_is_verified(
    s3_bucket: tuple[S3Client, str], tmp_path: Path
) -> None:
    client, bucket = s3_bucket
    mib = 1024 * 1024
    # S3's smallest part is 5 MiB: 11 MiB makes three parts and a composite checksum.
    source, sha = make_archive(tmp_path / "src", data=os.urandom(11 * mib))
    config = TransferConfig(multipart_threshold=5 * mib, multipart_chunksize=5 * mib)
    target = S3Target(bucket, "mp", client=client, transfer_config=config)

    target.put(source, sha256=sha)

    assert client.head_object(Bucket=bucket, Key=f"mp/{NAME}", PartNumber=1)["PartsCount"] == 3
    assert target.fetch(NAME, tmp_path / "back").read_bytes() == source.read_bytes()


def _tamper_after_upload(client: S3Client, bucket: str, key: str, **put: Any) -> None:
    """Overwrite ``key`` between the upload and its verification: a store that keeps
    something other than what it was sent."""

    def overwrite(**_: object) -> None:
        client.meta.events.unregister("before-call.s3.HeadObject", overwrite)
        client.put_object(Bucket=bucket, Key=key, **put)

    client.meta.events.register("before-call.s3.HeadObject", overwrite)


@pytest.mark.s3
@pytest.mark.parametrize("sha256_checksum", [True, False])
def test_s3_target_put_deletes_a_copy_that_does_not_match(
    s3_bucket: tuple[S3Client, str],
    tmp_path: Path,
    sha256_checksum: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, bucket = s3_bucket
    source, sha = make_archive(tmp_path / "src")
    data = bytearray(source.read_bytes())
    data[10] ^= 0xFF  # same size, same metadata: only a checksum can tell
    extra: dict[str, Any] = {"ChecksumAlgorithm": "SHA256"} if sha256_checksum else {}
    target = S3Target(bucket, client=client)
    _tamper_after_upload(
        S3Target(bucket, client=client).client,
        bucket,
        NAME,
        Body=bytes(data),
        Metadata={"sha256": sha},
        **extra,
    )
    caplog.set_level("INFO", logger="homeiq.maintenance.backup.targets")
    # Without S3's SHA256 checksum the object is read back and hashed instead.
    with pytest.raises(ArchiveMismatch, match=r"does not match.*deleted it"):
        target.put(source, sha256=sha)
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert ("reports no SHA256 checksum" in caplog.text) is not sha256_checksum


@pytest.mark.s3
def test_s3_target_put_refuses_a_source_that_does_not_match(
    s3_bucket: tuple[S3Client, str], tmp_path: Path
) -> None:
    client, bucket = s3_bucket
    source, _ = make_archive(tmp_path / "src")
    with pytest.raises(ArchiveMismatch, match="hashes to"):
        S3Target(bucket, client=client).put(source, sha256="cd" * 32)
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


@pytest.mark.s3
def test_s3_target_fetch_detects_a_tampered_object(
    s3_bucket: tuple[S3Client, str], tmp_path: Path
) -> None:
    client, bucket = s3_bucket
    source, sha = make_archive(tmp_path / "src")
    target = S3Target(bucket, "p", client=client)
    target.put(source, sha256=sha)
    out = tmp_path / "out.tar.age"

    client.put_object(Bucket=bucket, Key=f"p/{NAME}", Body=b"evil", Metadata={"sha256": sha})
    with pytest.raises(ArchiveMismatch, match=f"got 4 bytes .* expected .* sha256 {sha}"):
        target.fetch(NAME, out)
    assert not out.exists()
    assert list(tmp_path.glob("*.partial")) == []

    client.put_object(Bucket=bucket, Key=f"p/{NAME}", Body=source.read_bytes())  # no metadata
    with pytest.raises(ArchiveMismatch, match="no sha256 metadata"):
        target.fetch(NAME, out)
    assert not out.exists()


@pytest.mark.s3
def test_s3_target_missing_bucket_and_archive(
    s3_server: MotoServer, s3_bucket: tuple[S3Client, str], tmp_path: Path
) -> None:
    client, bucket = s3_bucket
    source, sha = make_archive(tmp_path / "src")
    gone = S3Target("homeiq-no-such-bucket", "x", client=client)
    expected = f"bucket 'homeiq-no-such-bucket' does not exist at {s3_server.endpoint_url}"
    with pytest.raises(TargetUnavailable, match=re.escape(expected)) as raised:
        gone.put(source, sha256=sha)
    assert str(raised.value).startswith("s3://homeiq-no-such-bucket/x: ")
    with pytest.raises(TargetUnavailable, match="does not exist"):
        gone.list()
    with pytest.raises(TargetUnavailable, match=f"no archive {NAME}"):
        S3Target(bucket, client=client).fetch(NAME, tmp_path)
    with pytest.raises(ValueError, match="not a HomeIQ archive name"):
        S3Target(bucket, client=client).fetch("../x", tmp_path)


@pytest.mark.s3
def test_s3_target_uses_boto3s_usual_configuration(
    s3_server: MotoServer,
    s3_bucket: tuple[S3Client, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, bucket = s3_bucket
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    # Keep the developer's own ~/.aws out of it.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    source, sha = make_archive(tmp_path / "src")

    (target,) = parse_targets(f"s3://{bucket}/env")
    target.put(source, sha256=sha)

    assert [a.name for a in target.list()] == [NAME]


@pytest.mark.s3
def test_an_archive_goes_to_several_targets(
    s3_bucket: tuple[S3Client, str], tmp_path: Path
) -> None:
    client, bucket = s3_bucket
    source, sha = make_archive(tmp_path / "src")
    targets: list[Target] = [
        FileTarget(tmp_path / "nas"),
        FileTarget(tmp_path / "usb"),
        S3Target(bucket, "homeiq", client=client),
    ]
    stored = [t.put(source, sha256=sha) for t in targets]
    assert all(s == stored[0] for s in stored)
    for i, target in enumerate(targets):
        copy = target.fetch(NAME, tmp_path / f"restore-{i}.tar.age")
        assert copy.read_bytes() == source.read_bytes()


# -- HOMEIQ_BACKUP_TARGETS ------------------------------------------------------------


def test_parse_targets_accepts_directories_and_buckets() -> None:
    targets = parse_targets(
        " file:///mnt/nas/homeiq/ , s3://my-bucket,s3://my.bucket/some/prefix/,"
        "file://localhost/srv/backups,file:///mnt/with%20space,"
    )
    assert [t.label for t in targets] == [
        "file:///mnt/nas/homeiq",
        "s3://my-bucket",
        "s3://my.bucket/some/prefix",
        "file:///srv/backups",
        "file:///mnt/with%20space",
    ]
    nas, bucket, prefixed, _, spaced = targets
    assert isinstance(nas, FileTarget) and nas.directory == Path("/mnt/nas/homeiq")
    assert isinstance(bucket, S3Target) and (bucket.bucket, bucket.prefix) == ("my-bucket", "")
    assert isinstance(prefixed, S3Target) and prefixed.prefix == "some/prefix"
    assert isinstance(spaced, FileTarget) and spaced.directory == Path("/mnt/with space")
    assert [t.label for t in parse_targets(["file:///a", " s3://bkt "])] == [  # a list too
        "file:///a",
        "s3://bkt",
    ]
    assert parse_targets("") == []
    assert repr(nas) == "<FileTarget file:///mnt/nas/homeiq>"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("/mnt/nas", "write a directory as a URL: file:///mnt/nas"),
        ("backups", "is not a backup target"),
        ("file://backups", "names a host"),
        ("file://mnt/nas/homeiq", "three slashes: file:///mnt/nas/homeiq"),
        ("file:relative/dir", "needs an absolute path"),
        ("file:///mnt/../etc", "'..' is not allowed"),
        ("file:///mnt?x=1", "no ?query"),
        ("sftp://nas/homeiq", "is not a backup target"),
        ("https://s3.amazonaws.com/bucket", "is not a backup target"),
        ("s3://", "has no bucket"),
        ("s3:///prefix", "has no bucket"),
        ("s3://My_Bucket", "not a valid bucket name"),
        ("s3://ab", "not a valid bucket name"),
        ("s3://minio:9000/bucket", "AWS_ENDPOINT_URL"),
        ("s3://bucket/a//b", "empty path segment"),
        ("s3://bucket?region=x", "no ?query"),
        ("file:///a,file:///a/", "file:///a is listed more than once"),
        ("s3://bkt/p,s3://bkt/p/", "s3://bkt/p is listed more than once"),
    ],
)
def test_parse_targets_rejects(spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_targets(spec)
    assert raised.value.setting == "HOMEIQ_BACKUP_TARGETS"
    assert message in str(raised.value)


def test_credentials_in_a_url_are_refused_and_not_repeated() -> None:
    with pytest.raises(ConfigError, match="credentials do not belong in the URL") as raised:
        parse_targets("s3://AKIAEXAMPLE:s3cr3t@bucket/prefix")
    assert "s3cr3t" not in str(raised.value)
    assert "AKIAEXAMPLE" not in str(raised.value)


# -- boto3 is the optional s3 extra ------------------------------------------------------


def test_an_s3_target_without_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "boto3" or m.startswith("boto3.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "boto3", None)  # `import boto3` now fails
    with pytest.raises(ConfigError) as raised:
        parse_targets("file:///mnt/nas,s3://bucket/homeiq")
    assert raised.value.setting == "HOMEIQ_BACKUP_TARGETS"
    assert "s3:// targets need the s3 extra: pip install 'homeiq[s3]'" in str(raised.value)
    assert [t.label for t in parse_targets("file:///mnt/nas")] == ["file:///mnt/nas"]


@pytest.mark.parametrize("module", ["homeiq.cli", "homeiq.runtime", "homeiq.api.app"])
def test_importing_homeiq_does_not_import_boto3(module: str) -> None:
    # A fresh interpreter: this one has boto3 loaded by the S3 tests.
    code = f"import {module}, sys; assert 'boto3' not in sys.modules, 'boto3 imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
