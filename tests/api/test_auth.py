"""API keys: their form, hashing at rest, nested scopes, the first admin key, and a test
that walks every route of the app: 401 without a (valid) key, 403 with too low a scope."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import stat
from pathlib import Path

import httpx
import pytest

from homeiq.api.app import PUBLIC_PATHS, routes_of
from homeiq.api.auth import (
    ADMIN_KEY_FILE,
    TOUCH_INTERVAL_US,
    create_key,
    ensure_admin_key,
    hash_key,
    new_key,
)
from homeiq.api.scopes import SCOPES, granted, highest
from homeiq.errors import ConfigError
from homeiq.metadata.store import MetadataStore
from homeiq.model import now_us
from tests.api.conftest import Api, assert_error

# -- keys --------------------------------------------------------------------------------------


def test_a_key_is_the_prefix_and_32_random_bytes() -> None:
    keys = {new_key() for _ in range(100)}
    assert len(keys) == 100
    for key in keys:
        assert re.fullmatch(r"hiq_[A-Za-z0-9_-]{43}", key)
        assert len(base64.urlsafe_b64decode(key[4:] + "=")) == 32


def test_keys_are_stored_as_sha256_only(tmp_path: Path) -> None:
    metadata = MetadataStore.in_dir(tmp_path)
    try:
        key, stored = create_key(metadata, "grafana", ["read"])
        assert metadata.api_key_by_hash(hashlib.sha256(key.encode()).hexdigest()) == stored
        assert hash_key(key) == hashlib.sha256(key.encode()).hexdigest()
    finally:
        metadata.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("metadata"))
    assert key.encode() not in raw
    assert key[4:].encode() not in raw


def test_create_key_validates_name_and_scopes(tmp_path: Path) -> None:
    metadata = MetadataStore.in_dir(tmp_path)
    try:
        with pytest.raises(ValueError, match="scopes must be among"):
            create_key(metadata, "x", ["root"])
        with pytest.raises(ValueError, match="scopes must be among"):
            create_key(metadata, "x", [])
        with pytest.raises(ValueError, match="name of 1 to 100"):
            create_key(metadata, "  ", ["read"])
        _, stored = create_key(metadata, " padded ", ["admin", "read"])
        assert (stored.name, stored.scopes) == ("padded", ("read", "admin"))
        assert metadata.api_key_count() == 1
    finally:
        metadata.close()


def test_scopes_nest() -> None:
    assert granted(["read"]) == {"read"}
    assert granted(["write"]) == {"read", "write"}
    assert granted(["admin"]) == {"read", "write", "admin"}
    assert granted(["root"]) == set()
    assert highest(["read", "admin"]) == "admin"
    assert highest(["write"]) == "write"
    assert SCOPES == ("read", "write", "admin")


# -- the first admin key -------------------------------------------------------------------------


def test_first_start_writes_an_admin_key_once_with_mode_0600(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metadata = MetadataStore.in_dir(tmp_path)
    try:
        with caplog.at_level(logging.INFO, logger="homeiq.api.auth"):
            path = ensure_admin_key(metadata, tmp_path)
        assert path == tmp_path / ADMIN_KEY_FILE
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        key = path.read_text().strip()
        stored = metadata.api_key_by_hash(hash_key(key))
        assert stored is not None and stored.scopes == ("admin",)
        assert str(path) in caplog.text
        assert key not in caplog.text

        # Later starts: keys exist, nothing is created or rewritten.
        before = path.stat().st_mtime_ns
        caplog.clear()
        assert ensure_admin_key(metadata, tmp_path) is None
        assert path.stat().st_mtime_ns == before
        assert metadata.api_key_count() == 1
        assert caplog.text == ""

        # Even with the file deleted (as advised) and every key revoked.
        path.unlink()
        metadata.revoke_api_key(stored.id, now_us())
        assert ensure_admin_key(metadata, tmp_path) is None
        assert not path.exists()
    finally:
        metadata.close()


def test_a_stale_admin_key_file_is_replaced_with_mode_0600(tmp_path: Path) -> None:
    stale = tmp_path / ADMIN_KEY_FILE
    stale.write_text("hiq_old\n")
    stale.chmod(0o644)
    metadata = MetadataStore.in_dir(tmp_path)
    try:
        assert ensure_admin_key(metadata, tmp_path) == stale
    finally:
        metadata.close()
    assert stat.S_IMODE(stale.stat().st_mode) == 0o600
    assert stale.read_text() != "hiq_old\n"


def test_an_unwritable_admin_key_file_names_the_data_dir_and_creates_no_key(
    tmp_path: Path,
) -> None:
    (tmp_path / ADMIN_KEY_FILE).mkdir()  # unwritable as a file, whoever runs the test
    metadata = MetadataStore.in_dir(tmp_path)
    try:
        with pytest.raises(ConfigError) as info:
            ensure_admin_key(metadata, tmp_path)
        assert info.value.setting == "HOMEIQ_DATA_DIR"
        assert "cannot write the admin key" in str(info.value)
        assert metadata.api_key_count() == 0  # the next start tries again
    finally:
        metadata.close()


# -- every route needs a key -----------------------------------------------------------------------


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "999", path)  # no such key, area or device


async def _call(
    client: httpx.AsyncClient, method: str, path: str, **kwargs: object
) -> httpx.Response:
    body = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
    return await client.request(method, _concrete(path), **body, **kwargs)  # type: ignore[arg-type]


async def test_every_route_needs_a_key_and_its_scope(api: Api) -> None:
    routes = routes_of(api.app)
    # Everything the OpenAPI schema lists is among them, plus the schema itself.
    documented = {
        (path, m.upper()) for path, item in api.app.openapi()["paths"].items() for m in item
    }
    assert documented <= {(r.path, m) for r in routes for m in r.methods}
    assert "/api/v1/openapi.json" in {r.path for r in routes}

    checked = 0
    for route in routes:
        for method in route.methods:
            if route.path in PUBLIC_PATHS:
                assert route.scope is None
                response = await _call(api.client, method, route.path)
                assert response.status_code in (200, 503), route.path
                continue
            assert route.scope in SCOPES, route.path
            for headers in (
                {},
                {"Authorization": "Bearer"},
                {"Authorization": f"Basic {api.keys.admin}"},
                {"Authorization": "Bearer hiq_not-a-key"},
                {"Authorization": f"Bearer {api.keys.admin}x"},
                {"X-API-Key": api.keys.revoked},
                {"Authorization": f"Bearer {api.keys.revoked}"},
            ):
                response = await _call(api.client, method, route.path, headers=headers)
                assert_error(response, 401, "unauthorized")
                assert response.headers["www-authenticate"] == "Bearer"
            for scope in SCOPES:
                response = await _call(api.client, method, route.path, headers=api.keys.auth(scope))
                if route.scope in granted([scope]):
                    assert response.status_code not in (401, 403), (route.path, scope)
                    assert response.status_code < 500, (route.path, scope, response.text)
                else:
                    assert_error(response, 403, "forbidden")
            checked += 1
    assert checked >= 15


async def test_the_key_works_in_either_header(api: Api) -> None:
    for headers in (
        {"Authorization": f"Bearer {api.keys.read}"},
        {"Authorization": f"bearer {api.keys.read}"},
        {"X-API-Key": api.keys.read},
    ):
        response = await api.client.get("/api/v1/registry/floors", headers=headers)
        assert response.status_code == 200, headers


async def test_revoking_takes_effect_at_once(api: Api) -> None:
    auth = api.keys.auth("read")
    assert (await api.client.get("/api/v1/health", headers=auth)).status_code == 200
    api.runtime.metadata.revoke_api_key(api.keys.ids["read"], now_us())
    assert_error(await api.client.get("/api/v1/health", headers=auth), 401, "unauthorized")


async def test_the_openapi_schema_needs_a_read_key(api: Api) -> None:
    assert_error(await api.client.get("/api/v1/openapi.json"), 401, "unauthorized")
    response = await api.client.get("/api/v1/openapi.json", headers=api.keys.auth("read"))
    assert response.status_code == 200
    schema = response.json()
    assert schema["components"]["securitySchemes"] == {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "`Authorization: Bearer hiq_...` with an API key.",
        },
        "apiKey": {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "`X-API-Key: hiq_...`, the same key in its own header.",
        },
    }
    operation = schema["paths"]["/api/v1/admin/config"]["get"]
    assert operation["security"] == [{"bearer": []}, {"apiKey": []}]
    assert operation["x-required-scope"] == "admin"
    assert "security" not in schema["paths"]["/healthz"]["get"]
    # No Swagger UI: it would load scripts from a CDN.
    assert (await api.client.get("/docs")).status_code == 404


# -- last use ----------------------------------------------------------------------------------


async def test_last_use_is_written_at_most_once_a_minute(api: Api) -> None:
    key_id = api.keys.ids["read"]
    metadata = api.runtime.metadata
    auth = api.keys.auth("read")
    assert (stored := metadata.api_key(key_id)) is not None and stored.last_used_at is None

    await api.client.get("/api/v1/registry/floors", headers=auth)
    first = metadata.api_key(key_id)
    assert first is not None and first.last_used_at is not None
    await api.client.get("/api/v1/registry/floors", headers=auth)
    again = metadata.api_key(key_id)
    assert again is not None and again.last_used_at == first.last_used_at

    # As if the last write were over a minute old: the next request records its use.
    old = first.last_used_at - TOUCH_INTERVAL_US - 1
    metadata.touch_api_key(key_id, old)
    await api.client.get("/api/v1/registry/floors", headers=auth)
    later = metadata.api_key(key_id)
    assert later is not None and later.last_used_at is not None and later.last_used_at > old


def test_admin_key_file_is_not_created_by_tests_elsewhere() -> None:
    # The fixture keys come from create_key: no stray admin.key in the working directory.
    assert not os.path.exists(ADMIN_KEY_FILE)
