"""Part B.3: each cause of a failure has its own status and code. Before, every
TransientError (Home Assistant down, a backup target unreachable) answered 503 "event
store unavailable". A route raising each error of the tree shows what a client sees."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, Depends

from homeiq.api.app import create_app
from homeiq.api.auth import require
from homeiq.api.routes import ROUTERS
from homeiq.errors import (
    ArchiveInvalid,
    ArchiveMismatch,
    BackupError,
    ConfigError,
    DecryptionFailed,
    HomeIQError,
    IncompatibleSchema,
    InfluxBackupError,
    QueryFailed,
    RestoreRefused,
    SinkRejected,
    SinkUnavailable,
    SourceUnavailable,
    TargetUnavailable,
)
from tests.api.conftest import BASE_URL, Api, ApiFactory, assert_error

CASES: list[tuple[HomeIQError, int, str, str | None]] = [
    (SinkUnavailable("influxdb: connection refused"), 503, "store_unavailable", "5"),
    (SourceUnavailable("ws closed"), 503, "home_assistant_unavailable", "5"),
    (TargetUnavailable("s3://bucket: timed out"), 503, "backup_target_unavailable", "5"),
    (QueryFailed("error parsing query"), 502, "query_failed", None),
    (SinkRejected("field type conflict"), 502, "store_rejected", None),
    (RestoreRefused("HomeIQ is running"), 409, "restore_refused", None),
    (ArchiveInvalid("no manifest"), 422, "archive_invalid", None),
    (ArchiveMismatch("sha256 differs"), 422, "archive_mismatch", None),
    (DecryptionFailed("wrong passphrase"), 422, "decryption_failed", None),
    (InfluxBackupError("influxd refused"), 502, "influx_backup_failed", None),
    (BackupError("nothing to back up"), 409, "backup_failed", None),
    (ConfigError("HOMEIQ_BACKUP_RECIPIENTS", "not set"), 409, "not_configured", None),
]


@pytest.fixture
async def raising(api: Api) -> AsyncIterator[Api]:
    """The API with one more read route, raising the error named in its path."""
    router = APIRouter(dependencies=[Depends(require("read"))])
    errors = {type(exc).__name__: exc for exc, *_ in CASES}
    errors["IncompatibleSchema"] = IncompatibleSchema("events.db is newer (secret detail)")

    @router.get("/api/v1/test-raise/{name}")
    async def raise_it(name: str) -> None:
        raise errors[name]

    app = create_app(api.runtime, routers=(*ROUTERS, router))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield Api(api.runtime, app, client, api.keys)


@pytest.mark.parametrize(("error", "status", "code", "retry"), CASES)
async def test_each_cause_has_its_status_and_code(
    raising: Api, error: HomeIQError, status: int, code: str, retry: str | None
) -> None:
    response = await raising.client.get(
        f"/api/v1/test-raise/{type(error).__name__}", headers=raising.keys.auth("read")
    )
    found = assert_error(response, status, code)
    assert response.headers.get("retry-after") == retry
    if status != 503:
        assert str(error) in found["message"]  # the cause's own words


async def test_an_unmapped_error_is_a_logged_500_with_the_request_id(
    raising: Api, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        response = await raising.client.get(
            "/api/v1/test-raise/IncompatibleSchema", headers=raising.keys.auth("read")
        )
    found = assert_error(response, 500, "internal_error")
    assert "secret detail" not in response.text
    assert any(found["request_id"] in r.getMessage() for r in caplog.records)


async def test_the_event_store_down_is_store_unavailable(make_api: ApiFactory) -> None:
    # A real cause: InfluxDB configured on a port nobody listens on.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = await make_api(
        store="influxdb", influxdb_url=f"http://127.0.0.1:{port}", influxdb_database="homeiq"
    )
    response = await api.client.get(
        "/api/v1/events", headers=api.keys.auth("read"), params={"limit": 1}
    )
    assert_error(response, 503, "store_unavailable")
