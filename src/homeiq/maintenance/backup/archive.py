"""What a backup archive holds and how it is made, opened and checked.

An archive is one file, ``homeiq-YYYYMMDDTHHMMSSZ.tar.age``: a gzip-compressed tar
encrypted with age (:mod:`.crypto`). By hand: ``age -d -i KEY FILE | tar xz``. Inside:

* ``manifest.json``: format version, HomeIQ version, creation time, the store, the
  settings with every secret removed, and for every other member its size, sha256 and
  what it holds (schema version and rows per table of a database, points per
  measurement of an InfluxDB export), and the time range of the events;
* ``sqlite/<name>.db``: a consistent snapshot of each SQLite database HomeIQ owns
  (metadata, rollups, spool and, on the embedded store, events), taken with SQLite's
  online backup API while ingestion goes on;
* ``influxdb/<database>.lp.gz``: with the InfluxDB store, a portable export of the
  database (line protocol) that any InfluxDB restores through its write API.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import sqlite3
import tarfile
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from homeiq.errors import ArchiveInvalid
from homeiq.maintenance.rollups import ROLLUPS_DB
from homeiq.metadata.store import METADATA_DB
from homeiq.pipeline.spool import SPOOL_DB
from homeiq.settings import Settings, flat_settings, secret_fields
from homeiq.sinks.sqlite.store import EVENTS_DB
from homeiq.sqlitedb import MMAP_BYTES

FORMAT = 1
MANIFEST = "manifest.json"
# Every SQLite database HomeIQ owns, in the order they are snapshotted and restored.
SQLITE_DATABASES = (METADATA_DB, EVENTS_DB, ROLLUPS_DB, SPOOL_DB)
# The manifest kind of a database snapshot of the data directory (whatever the store is).
SQLITE_KIND = "sqlite"
PAGES_PER_STEP = 4096  # 16 MiB at SQLite's default page size: short locks, steady progress

Progress = Callable[[str, int, int | None], None]
"""``progress(step, done, total)``: how far a long step has come (total None: unknown)."""


def no_progress(step: str, done: int, total: int | None) -> None:
    """A :data:`Progress` that shows nothing."""


@dataclass(slots=True)
class Member:
    """One file of the archive, as the manifest describes it."""

    path: str
    kind: str  # "sqlite" or "influxdb-lineprotocol"
    bytes: int
    sha256: str
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The manifest's entry."""
        return {
            "path": self.path,
            "kind": self.kind,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "info": self.info,
        }


@dataclass(slots=True)
class Manifest:
    """``manifest.json``."""

    created_at: datetime
    store: str
    members: list[Member]
    settings: dict[str, Any]
    homeiq_version: str = field(default_factory=lambda: homeiq_version())
    events: dict[str, Any] = field(default_factory=dict)
    format: int = FORMAT

    def to_json(self) -> dict[str, Any]:
        """The manifest as written."""
        return {
            "format": self.format,
            "homeiq_version": self.homeiq_version,
            "created_at": self.created_at.isoformat(),
            "store": self.store,
            "events": self.events,
            "files": [m.to_json() for m in self.members],
            "settings": self.settings,
        }

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        """Read a manifest; ArchiveInvalid for one this HomeIQ cannot read."""
        if not isinstance(data, dict):
            raise ArchiveInvalid("the manifest is not a JSON object")
        if data.get("format") != FORMAT:
            raise ArchiveInvalid(
                f"archive format {data.get('format')!r}: this HomeIQ reads format {FORMAT}"
            )
        try:
            return cls(
                created_at=datetime.fromisoformat(data["created_at"]),
                store=str(data["store"]),
                members=[
                    Member(
                        str(m["path"]), str(m["kind"]), int(m["bytes"]), str(m["sha256"]), m["info"]
                    )
                    for m in data["files"]
                ],
                settings=dict(data["settings"]),
                homeiq_version=str(data["homeiq_version"]),
                events=dict(data.get("events") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArchiveInvalid(f"the manifest is incomplete: {exc!r}") from None

    def member(self, kind: str) -> list[Member]:
        """The members of one kind."""
        return [m for m in self.members if m.kind == kind]


def homeiq_version() -> str:
    """The installed HomeIQ's version."""
    try:
        return version("homeiq")
    except PackageNotFoundError:  # a source tree never installed
        return "0"


def backup_settings(settings: Settings) -> dict[str, Any]:
    """The settings as the archive keeps them (flat names, as ``config show``): every
    secret removed, not masked."""
    data = flat_settings(settings)
    for name in secret_fields():
        data.pop(name, None)
    return data


def sha256_of(path: Path, progress: Progress = no_progress, step: str = "") -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    total, done = path.stat().st_size, 0
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            done += len(block)
            if step:
                progress(step, done, total)
    return digest.hexdigest()


# -- SQLite ----------------------------------------------------------------------------


def snapshot_sqlite(source: Path, dest: Path, progress: Progress = no_progress) -> None:
    """A consistent copy of a live database: SQLite's online backup API, in steps, so the
    writer waits for one step at a time, never for the whole copy."""
    step = f"snapshot {source.name}"
    with (
        closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)) as src,
        closing(sqlite3.connect(dest)) as out,
    ):
        src.execute("PRAGMA busy_timeout=30000")

        def report(status: int, remaining: int, total: int) -> None:
            progress(step, total - remaining, total)

        src.backup(out, pages=PAGES_PER_STEP, progress=report)
        # A snapshot stands alone: no WAL beside it, whatever mode the source is in.
        out.execute("PRAGMA journal_mode=DELETE")


def describe_sqlite(path: Path) -> dict[str, Any]:
    """Schema version and rows per table (and, for events, the time range) of a
    database: what the manifest records and verify compares against."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        tables = [
            str(name)
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        rows = {t: int(conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0]) for t in tables}
        version = 0
        if "schema_changes" in tables:
            version = int(
                conn.execute("SELECT MAX(version) FROM schema_changes").fetchone()[0] or 0
            )
        info: dict[str, Any] = {"schema_version": version, "rows": rows}
        if "events" in tables and "entities" in tables:
            first, last = conn.execute(
                "SELECT MIN(first), MAX(last) FROM (SELECT"
                " (SELECT MIN(time) FROM events WHERE entity = n.id) AS first,"
                " (SELECT MAX(time) FROM events WHERE entity = n.id) AS last FROM entities n)"
            ).fetchone()
            info["first_time_us"], info["last_time_us"] = first, last
    return info


def integrity_problems(path: Path) -> list[str]:
    """What ``PRAGMA integrity_check`` finds wrong (empty when the database is sound)."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            found = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as exc:
        return [f"{path.name}: {exc}"]
    return [] if found == ["ok"] else [f"{path.name}: {p}" for p in found[:10]]


# -- the archive file ------------------------------------------------------------------


def pack(content: Path, dest: Path, progress: Progress = no_progress) -> None:
    """``content``'s manifest and members into a gzip-compressed tar at ``dest``."""
    manifest = read_manifest_file(content / MANIFEST)
    names = [MANIFEST, *(m.path for m in manifest.members)]
    total = sum((content / n).stat().st_size for n in names)
    done = 0
    # Level 1: SQLite pages compress about as well at 1 as at 6, several times faster.
    with (
        dest.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in names:
            info = tar.gettarinfo(str(content / name), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o600
            with (content / name).open("rb") as f:
                tar.addfile(info, f)
            done += info.size
            progress("pack", done, total)


def unpack(archive_tar_gz: Path, dest: Path, progress: Progress = no_progress) -> Manifest:
    """Extract a packed archive into ``dest`` and check every member against the
    manifest (sizes, sha256, nothing missing, nothing extra); ArchiveInvalid if not."""
    dest.mkdir(parents=True, exist_ok=True)
    seen: list[str] = []
    try:
        with tarfile.open(archive_tar_gz, mode="r|gz") as tar:
            for info in tar:
                name = _safe_member_name(info)
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(info)
                assert source is not None  # regular files only (checked above)
                with target.open("wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
                seen.append(name)
                progress("unpack", len(seen), None)
    except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as exc:
        raise ArchiveInvalid(f"the archive's content is damaged or truncated: {exc}") from None
    if MANIFEST not in seen:
        raise ArchiveInvalid("the archive has no manifest.json")
    manifest = read_manifest_file(dest / MANIFEST)
    listed = {m.path for m in manifest.members}
    extra = set(seen) - listed - {MANIFEST}
    if extra:
        raise ArchiveInvalid(f"files the manifest does not list: {', '.join(sorted(extra))}")
    for member in manifest.members:
        path = dest / member.path
        if not path.is_file():
            raise ArchiveInvalid(f"{member.path} is listed in the manifest but missing")
        if path.stat().st_size != member.bytes:
            raise ArchiveInvalid(
                f"{member.path}: {path.stat().st_size} bytes, the manifest says {member.bytes}"
            )
        if sha256_of(path, progress, f"checksum {member.path}") != member.sha256:
            raise ArchiveInvalid(f"{member.path}: sha256 differs from the manifest")
    return manifest


def _safe_member_name(info: tarfile.TarInfo) -> str:
    """A member name that stays inside the extraction directory, of a regular file."""
    path = PurePosixPath(info.name)
    if not info.isfile() or path.is_absolute() or ".." in path.parts or not path.parts:
        raise ArchiveInvalid(f"unexpected archive member {info.name!r}")
    return str(path)


def read_manifest_file(path: Path) -> Manifest:
    """The manifest at ``path``."""
    try:
        return Manifest.from_json(orjson.loads(path.read_bytes()))
    except orjson.JSONDecodeError as exc:
        raise ArchiveInvalid(f"manifest.json is not valid JSON: {exc}") from None


def write_manifest_file(manifest: Manifest, path: Path) -> None:
    """Write ``manifest`` as JSON."""
    path.write_bytes(orjson.dumps(manifest.to_json(), option=orjson.OPT_INDENT_2))


def utc_now() -> datetime:
    """Now, UTC, to the second (archive names have second resolution)."""
    return datetime.now(UTC).replace(microsecond=0)


def walk_files(root: Path) -> Iterator[Path]:
    """Every regular file under ``root``."""
    for folder, _, files in os.walk(root):
        for name in files:
            yield Path(folder) / name
