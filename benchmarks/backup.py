"""Backup benchmark: archive and verify 10,000,000 events on the embedded store.

    python benchmarks/backup.py                # the 10M-event dataset of benchmarks/api.py
    python benchmarks/backup.py --data-dir D   # any HomeIQ data directory

Uses the SQLite dataset that ``benchmarks/api.py`` builds and caches (10,000,000 events,
500 entities, 90 days, its rollups); when it is missing, that script is run first to
build it (about 12 minutes). Measured in this process, one after the other:

* **HomeIQ create**: ``BackupService.create`` with an age recipient, to a file target in
  a temporary folder: online snapshots, manifest (row counts, checksums), gzip -1 tar,
  age encryption, copy to the target and its verification;
* **HomeIQ verify**: ``BackupService.verify`` with the identity: decrypt, unpack, every
  checksum, ``PRAGMA integrity_check`` and row counts of every database, and the test
  restore (HomeIQ's stores opening the restored copy, events counted);
* **baseline**, what a person would type, on the same files in the same run:
  ``tar -c *.db | gzip -1 | age -r KEY > archive`` and, to check it,
  ``age -d -i KEY archive | tar -xz`` (no snapshots, no manifest, no checks).

Figures are reported as ratios to the baseline: these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import print_header

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATASET = Path.home() / ".cache/homeiq/bench-api-sqlite-10000000e-500n-90d-s1-g1"
DATABASES = ("metadata.db", "events.db", "rollups.db", "spool.db")


def ensure_dataset(path: Path) -> None:
    """Build benchmarks/api.py's SQLite dataset when it is not there yet."""
    if (path / "manifest.json").exists() and (path / "events.db").exists():
        return
    print(f"{path} missing: building it with benchmarks/api.py (about 12 minutes)", file=sys.stderr)
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/api.py"), "--store", "sqlite", "--levels", "1",
         "--seconds", "1"],
        check=True,
    )  # fmt: skip


async def homeiq(data_dir: Path, work: Path, recipient: str, identity: Path) -> dict[str, float]:
    from homeiq.maintenance.backup.service import BackupService
    from homeiq.settings import Settings

    settings = Settings(
        data_dir=data_dir,
        backup_recipients=[recipient],
        backup_identity_file=identity,
        backup_targets=[(work / "target").as_uri()],
    )
    service = BackupService(settings)  # no metadata: the dataset stays as it is
    started = time.perf_counter()
    result = await service.create()
    create_s = time.perf_counter() - started
    if not result.ok:
        raise RuntimeError(f"backup failed: {result.copies}")
    started = time.perf_counter()
    report = await service.verify(result.name, test_restore=True)
    verify_s = time.perf_counter() - started
    if not report.ok:
        raise RuntimeError(f"verify failed: {report.problems}")
    return {
        "create_s": create_s,
        "verify_s": verify_s,
        "bytes": float(result.bytes),
        "events": float(result.manifest.events["count"]),
    }


def baseline(data_dir: Path, work: Path, recipient: str, identity: Path) -> dict[str, float]:
    age = shutil.which("age")
    if age is None:
        raise SystemExit("the age command is needed for the baseline (apt-get install age)")
    files = [name for name in DATABASES if (data_dir / name).exists()]
    archive = work / "baseline.tar.gz.age"
    started = time.perf_counter()
    subprocess.run(
        f"tar -C {data_dir} -c {' '.join(files)} | gzip -1 | {age} -r {recipient} > {archive}",
        shell=True, check=True, executable="/bin/bash",
    )  # fmt: skip
    create_s = time.perf_counter() - started
    out = work / "baseline-out"
    out.mkdir()
    started = time.perf_counter()
    subprocess.run(
        f"{age} -d -i {identity} {archive} | tar -C {out} -xz",
        shell=True, check=True, executable="/bin/bash",
    )  # fmt: skip
    verify_s = time.perf_counter() - started
    return {"create_s": create_s, "verify_s": verify_s, "bytes": float(archive.stat().st_size)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--work-dir", type=Path, default=None, help="scratch (default: temp)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from homeiq.maintenance.backup.crypto import new_identity

    if args.data_dir == DEFAULT_DATASET:
        ensure_dataset(args.data_dir)
    work = Path(tempfile.mkdtemp(prefix="homeiq-bench-backup-", dir=args.work_dir))
    try:
        secret, recipient = new_identity()
        identity = work / "identity.txt"
        identity.write_text(secret + "\n")
        db_bytes = sum(
            (args.data_dir / n).stat().st_size for n in DATABASES if (args.data_dir / n).exists()
        )
        ours = asyncio.run(homeiq(args.data_dir, work, recipient, identity))
        shutil.rmtree(work / "target")
        base = baseline(args.data_dir, work, recipient, identity)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"backup benchmark: {int(ours['events']):,} events, databases {db_bytes / 1e6:,.0f} MB"
        f" ({args.data_dir}); {os.cpu_count()} CPUs, Python {platform.python_version()},"
        f" SQLite {sqlite3.sqlite_version}"
    )
    header = (
        f"{'step':<10} {'HomeIQ s':>9} {'baseline s':>11} {'ratio':>6}"
        f" {'HomeIQ MB':>10} {'baseline MB':>12}"
    )
    print_header(header)
    for step in ("create", "verify"):
        mine, theirs = ours[f"{step}_s"], base[f"{step}_s"]
        sizes = (
            f"{ours['bytes'] / 1e6:>10,.0f} {base['bytes'] / 1e6:>12,.0f}"
            if step == "create"
            else ""
        )
        print(f"{step:<10} {mine:>9.1f} {theirs:>11.1f} {mine / theirs:>6.2f} {sizes}")


if __name__ == "__main__":
    main()
