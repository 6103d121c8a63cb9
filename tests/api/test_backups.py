"""The backup endpoints (admin scope): list archives per target, start a backup or a
verification in the background, read the last results; and backups in /api/v1/health."""

from __future__ import annotations

from pathlib import Path

from homeiq.maintenance.backup.crypto import new_identity
from tests.api.conftest import Api, ApiFactory, assert_error
from tests.support.wait import async_wait_until


async def configured(make_api: ApiFactory, tmp_path: Path) -> Api:
    secret, public = new_identity()
    identity = tmp_path / "identity.txt"
    identity.write_text(secret + "\n")
    return await make_api(
        backup_recipients=[public],
        backup_identity_file=identity,
        backup_targets=[(tmp_path / "nas").as_uri()],
    )


async def test_start_a_backup_list_it_verify_it_and_read_the_results(
    make_api: ApiFactory, tmp_path: Path
) -> None:
    api = await configured(make_api, tmp_path)
    admin = api.keys.auth("admin")
    target = (tmp_path / "nas").as_uri()

    started = await api.client.post("/api/v1/admin/backups", headers=admin)
    assert started.status_code == 202 and started.json() == {"started": "create"}
    await async_wait_until(
        lambda: api.runtime.backups.busy is None,
        timeout=30,
        message="the backup job did not finish",
    )

    listing = (await api.client.get("/api/v1/admin/backups", headers=admin)).json()
    assert [t["target"] for t in listing] == [target]
    (archive,) = listing[0]["archives"]
    assert archive["name"].startswith("homeiq-") and archive["size"] > 0
    assert len(archive["sha256"]) == 64 and listing[0]["error"] is None

    last = (await api.client.get("/api/v1/admin/backups/last", headers=admin)).json()
    assert last["running"] is None
    assert [(r["target"], r["ok"], r["archive"]) for r in last["last_create"]] == [
        (target, True, archive["name"])
    ]
    assert last["last_success"]["bytes"] == archive["size"]
    assert last["last_verify"] is None

    body = {"archive": archive["name"], "test_restore": True}
    started = await api.client.post("/api/v1/admin/backups/verify", json=body, headers=admin)
    assert started.status_code == 202 and started.json() == {"started": "verify"}
    await async_wait_until(
        lambda: api.runtime.backups.busy is None,
        timeout=30,
        message="the backup job did not finish",
    )
    last = (await api.client.get("/api/v1/admin/backups/last", headers=admin)).json()
    assert last["last_verify"]["ok"] is True, last["last_verify"]["detail"]
    assert "test restore" in last["last_verify"]["detail"]

    health = (await api.client.get("/api/v1/health", headers=api.keys.auth("read"))).json()
    assert health["backup"]["status"] == "ok" and health["backup"]["enabled"] is True
    assert health["backup"]["last_success"] == last["last_success"]["finished_at"]
    assert health["backup"]["next_run"] is not None
    assert health["alerts"] == []


async def test_backups_not_configured_are_a_409_and_disabled_in_health(api: Api) -> None:
    admin = api.keys.auth("admin")
    refused = await api.client.post("/api/v1/admin/backups", headers=admin)
    error = assert_error(refused, 409, "conflict")
    assert "HOMEIQ_BACKUP_RECIPIENTS" in error["message"]
    body = {"archive": "homeiq-20260101T000000Z.tar.age"}
    refused = await api.client.post("/api/v1/admin/backups/verify", json=body, headers=admin)
    assert "HOMEIQ_BACKUP_IDENTITY_FILE" in assert_error(refused, 409, "conflict")["message"]
    health = (await api.client.get("/api/v1/health", headers=api.keys.auth("read"))).json()
    assert health["backup"]["status"] == "disabled"
    assert "HOMEIQ_BACKUP_RECIPIENTS" in health["backup"]["schedule"]


async def test_a_bad_archive_name_is_a_422(api: Api) -> None:
    body = {"archive": "../../etc/passwd"}
    response = await api.client.post(
        "/api/v1/admin/backups/verify", json=body, headers=api.keys.auth("admin")
    )
    assert "body.archive" in assert_error(response, 422, "validation_error")["message"]


async def test_a_failed_backup_shows_in_health_as_an_alert(
    make_api: ApiFactory, tmp_path: Path
) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a directory should be")
    _, public = new_identity()
    api = await make_api(backup_recipients=[public], backup_targets=[blocked.as_uri()])
    await api.client.post("/api/v1/admin/backups", headers=api.keys.auth("admin"))
    await async_wait_until(
        lambda: api.runtime.backups.busy is None,
        timeout=30,
        message="the backup job did not finish",
    )
    health = (await api.client.get("/api/v1/health", headers=api.keys.auth("read"))).json()
    assert health["backup"]["status"] == "degraded"
    assert health["status"] == "degraded"
    (alert,) = health["alerts"]
    assert alert["name"] == "backup_failed" and blocked.as_uri() in alert["message"]
    last = (
        await api.client.get("/api/v1/admin/backups/last", headers=api.keys.auth("admin"))
    ).json()
    assert last["last_success"] is None
    assert last["last_create"][0]["ok"] is False
