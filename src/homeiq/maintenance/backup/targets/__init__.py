"""Where backup archives go: a local or mounted directory (:mod:`.file`), or an S3 bucket
(:mod:`.s3`); what they share is in :mod:`.base`. :func:`parse_targets` is the one
factory: it turns HOMEIQ_BACKUP_TARGETS into targets, refusing what cannot work with a
ConfigError naming the setting.

The S3 target's module (and boto3 with it) is imported only when an ``s3://`` URL is
configured: boto3 is the optional ``s3`` extra.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, unquote, urlsplit

from homeiq.errors import ConfigError
from homeiq.maintenance.backup.targets.base import (
    SETTING,
    StoredArchive,
    Target,
    archive_name,
    parse_archive_name,
)
from homeiq.maintenance.backup.targets.file import FileTarget

if TYPE_CHECKING:
    from homeiq.maintenance.backup.targets.s3 import S3Target

# AWS's rules for new buckets; S3-compatible stores follow them too.
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def parse_targets(spec: str | Sequence[str]) -> list[Target]:
    """The targets of HOMEIQ_BACKUP_TARGETS: comma-separated URLs (or a list of them).

    Accepts ``file:///absolute/path``, ``s3://bucket`` and ``s3://bucket/prefix``; blank
    entries are skipped. Anything else, or the same target twice, raises ConfigError.
    """
    urls = spec.split(",") if isinstance(spec, str) else list(spec)
    targets: list[Target] = []
    for url in (u.strip() for u in urls):
        if not url:
            continue
        target = target_from_url(url)
        if any(t.label == target.label for t in targets):
            raise ConfigError(SETTING, f"{target.label} is listed more than once")
        targets.append(target)
    return targets


def target_from_url(url: str) -> Target:
    """The target for one URL of HOMEIQ_BACKUP_TARGETS; ConfigError when it is not one."""
    url = url.strip()
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
    from homeiq.maintenance.backup.targets.s3 import S3Target  # boto3: only when configured

    return S3Target(bucket, prefix)


def _shown(url: str) -> str:
    """``url`` with any user:password@ part masked, fit for an error message."""
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    if sep and "@" in host:
        return f"{scheme}://***@{host.rpartition('@')[2]}{slash}{path}"
    return url


def __getattr__(name: str) -> object:
    # ``from ...targets import S3Target`` still works, importing boto3 only then.
    if name == "S3Target":
        from homeiq.maintenance.backup.targets.s3 import S3Target

        return S3Target
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SETTING",
    "FileTarget",
    "S3Target",
    "StoredArchive",
    "Target",
    "archive_name",
    "parse_archive_name",
    "parse_targets",
    "target_from_url",
]
