"""HomeIQ's own errors (:mod:`homeiq.errors`) as API answers: one status and code per
cause, so a client can tell a store outage from a Home Assistant or backup-target one.

The table is walked along the exception's MRO, so the most specific entry wins and a
new subclass inherits its parent's answer until it gets its own line. An error with no
line (a bug, or a cause the API should never meet) is a 500 ``internal_error``, logged
with the request id; its message is never shown.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import Request
from starlette.responses import Response

from homeiq.api.errors import error_response, request_id_of
from homeiq.api.metrics import route_label
from homeiq.errors import (
    ArchiveInvalid,
    ArchiveMismatch,
    BackupError,
    ConfigError,
    DataDirBusy,
    DecryptionFailed,
    HomeIQError,
    InfluxBackupError,
    QueryFailed,
    RestoreRefused,
    SinkRejected,
    SinkUnavailable,
    SourceUnavailable,
    TargetUnavailable,
    TransientError,
)

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5


@dataclass(frozen=True, slots=True)
class Failure:
    """How one branch of the error tree is answered."""

    status: int
    code: str
    message: str | None = None  # None: the error's own message (it names no secret)
    retry: bool = False


FAILURES: dict[type[HomeIQError], Failure] = {
    SinkUnavailable: Failure(
        503, "store_unavailable", "the event store is unavailable; try again shortly", retry=True
    ),
    SourceUnavailable: Failure(
        503, "home_assistant_unavailable", "Home Assistant cannot be reached; try again", retry=True
    ),
    # The target's own message names it (an s3:// URL or a path) and holds no secret.
    TargetUnavailable: Failure(503, "backup_target_unavailable", retry=True),
    TransientError: Failure(503, "unavailable", "temporarily unavailable; try again", retry=True),
    QueryFailed: Failure(502, "query_failed"),
    SinkRejected: Failure(502, "store_rejected"),
    RestoreRefused: Failure(409, "restore_refused"),
    ArchiveInvalid: Failure(422, "archive_invalid"),
    ArchiveMismatch: Failure(422, "archive_mismatch"),
    DecryptionFailed: Failure(422, "decryption_failed"),
    InfluxBackupError: Failure(502, "influx_backup_failed"),
    BackupError: Failure(409, "backup_failed"),
    ConfigError: Failure(409, "not_configured"),
    DataDirBusy: Failure(409, "conflict"),
}


def failure_of(exc: BaseException) -> Failure | None:
    """The answer for ``exc``: its nearest class in :data:`FAILURES`, else None."""
    for cls in type(exc).__mro__:
        found = FAILURES.get(cls)
        if found is not None:
            return found
    return None


async def homeiq_error(request: Request, exc: Exception) -> Response:
    """Render a :class:`~homeiq.errors.HomeIQError` raised by a route."""
    request_id = request_id_of(request)
    failure = failure_of(exc)
    if failure is None:
        log.error(
            "unmapped %s in %s (request_id=%s): %s",
            type(exc).__name__,
            route_label(request.scope.get("route")),
            request_id,
            exc,
        )
        return error_response(500, "internal server error", request_id)
    if failure.status >= 500:
        log.warning("%s (request_id=%s): %s", failure.code, request_id, exc)
    message = failure.message or str(exc)[:500] or failure.code
    return error_response(
        failure.status,
        message,
        request_id,
        code=failure.code,
        headers={"Retry-After": str(RETRY_AFTER_S)} if failure.retry else None,
    )
