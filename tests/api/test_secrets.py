"""Secrets never leave: with the Home Assistant token and the InfluxDB password set to
known strings, no log line, response body, header or metric holds them (nor any API key,
which only its creation answer shows)."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.api.conftest import HA_TOKEN, INFLUX_PASSWORD, Api


async def test_no_secret_in_logs_bodies_headers_or_metrics(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    keys = api.keys
    responses: list[httpx.Response] = []
    with caplog.at_level(logging.DEBUG):
        for scope in (None, "read", "admin"):
            headers = keys.auth(scope) if scope else {}
            for path in (
                "/healthz",
                "/readyz",
                "/api/v1/health",
                "/metrics",
                "/api/v1/registry/entities",
                "/api/v1/admin/config",
                "/api/v1/admin/keys",
                "/api/v1/admin/dead-letters",
                "/api/v1/openapi.json",
                "/api/v1/nope",
            ):
                responses.append(await api.client.get(path, headers=headers))
        responses.append(
            await api.client.get("/api/v1/health", headers={"X-API-Key": keys.revoked})
        )
        responses.append(
            await api.client.post(
                "/api/v1/admin/keys",
                json={"name": HA_TOKEN, "scopes": ["nope"]},
                headers=keys.auth("admin"),
            )
        )
        created = await api.client.post(
            "/api/v1/admin/keys",
            json={"name": "new", "scopes": ["read"]},
            headers=keys.auth("admin"),
        )
        new_key = created.json()["key"]
        responses.append(await api.client.get("/api/v1/health", headers={"X-API-Key": new_key}))
        responses.append(await api.client.get("/metrics", headers=keys.auth("read")))

    everything_logged = caplog.text + "".join(
        str(r.args) + (r.exc_text or "") for r in caplog.records
    )
    assert "created API key" in everything_logged  # logging was captured
    secrets = [HA_TOKEN, INFLUX_PASSWORD, keys.read, keys.write, keys.admin, keys.revoked, new_key]
    for secret in secrets:
        assert secret not in everything_logged
        for response in responses:
            assert secret not in response.text, response.request.url
            assert secret not in str(response.headers)
    # The one place a key appears: the answer that creates it.
    assert created.status_code == 201 and new_key in created.text
    metrics = responses[-1].text
    assert "homeiq_api_request_duration_seconds" in metrics
    for secret in secrets:
        assert secret not in metrics
