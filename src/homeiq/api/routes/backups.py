"""Backups (admin scope): the archives on every target, the last results, and backups
or verifications started in the background (they take minutes on a large store)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from homeiq.api.auth import require
from homeiq.api.context import Host
from homeiq.api.errors import ApiError, error_responses
from homeiq.errors import HomeIQError
from homeiq.maintenance.backup.service import BackupService
from homeiq.model import BackupRun
from homeiq.pipeline.normalize import format_time_us

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/api/v1/admin/backups",
    tags=["backups"],
    dependencies=[Depends(require("admin"))],
    responses=error_responses(401, 403, 413, 414, 422, 429, 500),
)

ARCHIVE_NAME = r"^homeiq-[0-9]{8}T[0-9]{6}Z\.tar\.age$"


class ArchiveOut(BaseModel):
    """One archive on one target."""

    name: str
    size: int
    sha256: str | None
    created_at: str


class TargetOut(BaseModel):
    """A target and the archives it holds, oldest first."""

    target: str
    archives: list[ArchiveOut]
    error: str | None = Field(description="Why the target could not be listed.")


class RunOut(BaseModel):
    """One recorded outcome: an archive written to a target, or a verification."""

    kind: Literal["create", "verify"]
    ok: bool
    archive: str | None
    target: str | None
    bytes: int | None
    started_at: str
    finished_at: str
    detail: str


class BackupStatus(BaseModel):
    """The last outcomes, and whether a backup or verify is running now."""

    running: str | None = Field(description="`create` or `verify` while one runs.")
    last_create: list[RunOut] = Field(description="The last archive's copies, one per target.")
    last_success: RunOut | None
    last_verify: RunOut | None


class Started(BaseModel):
    """A job started in the background; follow it at `/api/v1/admin/backups/last`."""

    started: Literal["create", "verify"]


class VerifyIn(BaseModel):
    """An archive to verify (by name, on the first target holding it)."""

    archive: Annotated[
        str, Field(pattern=ARCHIVE_NAME, examples=["homeiq-20261126T033000Z.tar.age"])
    ]
    test_restore: bool = Field(default=True, description="Also restore into a scratch place.")


@router.get("", summary="List backup archives")
async def list_archives(host: Host) -> list[TargetOut]:
    """Every target with its archives (a target that cannot be read says why)."""
    found = []
    for target in host.backups.targets:
        try:
            stored = await asyncio.to_thread(target.list)
        except Exception as exc:  # an unreachable S3 endpoint must not hide the others
            found.append(TargetOut(target=target.label, archives=[], error=str(exc)[:500]))
            continue
        archives = [
            ArchiveOut(
                name=a.name, size=a.size, sha256=a.sha256, created_at=a.created_at.isoformat()
            )
            for a in stored
        ]
        found.append(TargetOut(target=target.label, archives=archives, error=None))
    return found


@router.get("/last", summary="Last backup results")
async def last(host: Host) -> BackupStatus:
    """The last archive's copies, the last success and the last verification."""
    metadata = host.metadata

    def read() -> tuple[list[BackupRun], list[BackupRun], list[BackupRun]]:
        return (
            metadata.backup_runs(kind="create", limit=20),
            metadata.backup_runs(kind="create", ok=True, limit=1),
            metadata.backup_runs(kind="verify", limit=1),
        )

    creates, successes, verifies = await asyncio.to_thread(read)
    newest = [r for r in creates if creates and r.archive == creates[0].archive]
    return BackupStatus(
        running=host.backups.busy,
        last_create=[_run_out(r) for r in newest],
        last_success=_run_out(successes[0]) if successes else None,
        last_verify=_run_out(verifies[0]) if verifies else None,
    )


@router.post("", summary="Start a backup", status_code=202, responses=error_responses(409))
async def create(host: Host) -> Started:
    """Start a backup to every target now; 409 while one runs or when backups are not
    configured (no recipients or passphrase)."""
    service = host.backups
    _refuse_if_busy(service)
    try:
        service.encryption()
    except HomeIQError as exc:
        raise ApiError(409, str(exc)) from None
    service.start_job("create", service.create())
    return Started(started="create")


@router.post(
    "/verify",
    summary="Start a verification",
    status_code=202,
    responses=error_responses(400, 409),
)
async def verify(host: Host, body: VerifyIn) -> Started:
    """Verify an archive in the background (decrypt, checksums, counts, and by default a
    test restore); 409 while a job runs or when nothing can decrypt archives here."""
    service = host.backups
    _refuse_if_busy(service)
    try:
        service.decryption()
    except HomeIQError as exc:
        raise ApiError(409, str(exc)) from None
    service.start_job("verify", service.verify(body.archive, test_restore=body.test_restore))
    return Started(started="verify")


def _run_out(run: BackupRun) -> RunOut:
    return RunOut(
        kind="verify" if run.kind == "verify" else "create",
        ok=run.ok,
        archive=run.archive,
        target=run.target,
        bytes=run.bytes,
        started_at=format_time_us(run.started_at),
        finished_at=format_time_us(run.finished_at),
        detail=run.detail,
    )


def _refuse_if_busy(service: BackupService) -> None:
    if service.busy is not None:
        raise ApiError(409, f"a backup {service.busy} is already running")
