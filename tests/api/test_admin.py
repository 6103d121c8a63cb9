"""Administration: API keys (create, list, revoke), the effective configuration with
secrets redacted, dead-letter browsing and re-drive into the real store."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import orjson

from homeiq.metadata.store import StoredDeadLetter
from homeiq.model import DeadLetter, EventRecord, Source, payload_bytes
from homeiq.pipeline.normalize import format_time_us
from tests.api.conftest import HA_TOKEN, INFLUX_PASSWORD, Api, assert_error

T0 = 1_700_000_000_000_000
ULID = "01HXK5QG6V9Z8T0AB1CDEFGHJK"


def state_changed(entity_id: str, time_us: int, state: str) -> dict[str, Any]:
    """A WebSocket state_changed message as Home Assistant sends it."""
    when = format_time_us(time_us)
    return {
        "id": 3,
        "type": "event",
        "event": {
            "event_type": "state_changed",
            "data": {
                "entity_id": entity_id,
                "old_state": None,
                "new_state": {
                    "entity_id": entity_id,
                    "state": state,
                    "attributes": {"unit_of_measurement": "°C"},
                    "last_changed": when,
                    "last_updated": when,
                    "context": {"id": ULID, "parent_id": None, "user_id": None},
                },
            },
            "origin": "LOCAL",
            "time_fired": when,
            "context": {"id": ULID, "parent_id": None, "user_id": None},
        },
    }


def refused_record(record: EventRecord) -> bytes:
    """A record as the delivery wrapper dead-letters it when the store refuses it."""
    return orjson.dumps(record, default=lambda v: v.decode() if isinstance(v, bytes) else str(v))


def keep(api: Api, *letters: DeadLetter) -> list[int]:
    api.runtime.metadata.add_dead_letters(letters)
    page = api.runtime.metadata.dead_letter_page(limit=len(letters))
    return sorted(kept.id for kept in page)


# -- keys --------------------------------------------------------------------------------------


async def test_list_keys_shows_records_never_keys_or_hashes(api: Api) -> None:
    response = await api.client.get("/api/v1/admin/keys", headers=api.keys.auth("admin"))
    body = response.json()
    assert body["count"] == 4
    assert [(k["name"], k["scopes"]) for k in body["items"]] == [
        ("read key", ["read"]),
        ("write key", ["write"]),
        ("admin key", ["admin"]),
        ("old key", ["admin"]),
    ]
    assert body["items"][3]["revoked_at"] is not None
    assert body["items"][2]["last_used_at"] is not None  # this very request
    assert set(body["items"][0]) == {
        "id",
        "name",
        "scopes",
        "created_at",
        "last_used_at",
        "revoked_at",
    }
    for key in (api.keys.read, api.keys.admin):
        assert key not in response.text
    assert "hash" not in response.text


async def test_create_use_and_revoke_a_key(api: Api) -> None:
    admin = api.keys.auth("admin")
    created = await api.client.post(
        "/api/v1/admin/keys", json={"name": "grafana", "scopes": ["read"]}, headers=admin
    )
    assert created.status_code == 201
    body = created.json()
    assert body["name"] == "grafana" and body["scopes"] == ["read"]
    assert body["key"].startswith("hiq_") and body["revoked_at"] is None
    new = {"X-API-Key": body["key"]}
    assert (await api.client.get("/api/v1/health", headers=new)).status_code == 200
    assert_error(await api.client.get("/api/v1/admin/keys", headers=new), 403, "forbidden")
    listed = (await api.client.get("/api/v1/admin/keys", headers=admin)).json()
    assert body["key"] not in str(listed)

    revoked = await api.client.delete(f"/api/v1/admin/keys/{body['id']}", headers=admin)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert_error(await api.client.get("/api/v1/health", headers=new), 401, "unauthorized")
    again = await api.client.delete(f"/api/v1/admin/keys/{body['id']}", headers=admin)
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]


async def test_revoke_refuses_unknown_keys_and_the_callers_own(api: Api) -> None:
    admin = api.keys.auth("admin")
    missing = await api.client.delete("/api/v1/admin/keys/4711", headers=admin)
    assert assert_error(missing, 404, "not_found")["message"] == "no API key 4711"
    own = await api.client.delete(f"/api/v1/admin/keys/{api.keys.ids['admin']}", headers=admin)
    assert assert_error(own, 409, "conflict")["message"] == "a key cannot revoke itself"
    assert (await api.client.get("/api/v1/admin/keys", headers=admin)).status_code == 200


# -- configuration -----------------------------------------------------------------------------


async def test_config_is_the_effective_settings_with_secrets_redacted(api: Api) -> None:
    response = await api.client.get("/api/v1/admin/config", headers=api.keys.auth("admin"))
    body = response.json()
    assert body["ha_token"] == "<redacted>"
    assert body["influxdb_password"] == "<redacted>"
    assert body["influxdb_token"] is None
    assert body["api_host"] == "127.0.0.1"
    assert body["api_port"] == 8642
    assert body["api_cors_origins"] == []
    assert body["sqlite_writer"] == "thread"
    assert HA_TOKEN not in response.text and INFLUX_PASSWORD not in response.text


# -- dead letters ------------------------------------------------------------------------------


async def test_dead_letters_page_newest_first_with_a_cursor_and_reason(api: Api) -> None:
    letters = [
        DeadLetter("bad_state", f"state {i}", b'{"n": %d}' % i, T0 + i, f"sensor.s{i}")
        for i in range(5)
    ]
    letters.append(DeadLetter("invalid_json", "not JSON", b"\xff\xfe{", T0 + 9))
    ids = keep(api, *letters)
    admin = api.keys.auth("admin")

    first = (
        await api.client.get("/api/v1/admin/dead-letters", params={"limit": 4}, headers=admin)
    ).json()
    assert [d["id"] for d in first["items"]] == ids[::-1][:4]
    assert first["next_cursor"] == ids[2]
    assert first["counts"] == {"bad_state": 5, "invalid_json": 1}
    binary = first["items"][0]
    assert binary["payload_encoding"] == "base64"
    assert base64.b64decode(binary["payload"]) == b"\xff\xfe{"
    text = first["items"][1]
    assert text == {
        "id": ids[4],
        "received_at": format_time_us(T0 + 4),
        "reason": "bad_state",
        "detail": "state 4",
        "entity_id": "sensor.s4",
        "payload_encoding": "text",
        "payload": '{"n": 4}',
    }
    rest = (
        await api.client.get(
            "/api/v1/admin/dead-letters",
            params={"limit": 4, "cursor": first["next_cursor"]},
            headers=admin,
        )
    ).json()
    assert [d["id"] for d in rest["items"]] == ids[:2][::-1]
    assert rest["next_cursor"] is None

    only = (
        await api.client.get(
            "/api/v1/admin/dead-letters", params={"reason": "invalid_json"}, headers=admin
        )
    ).json()
    assert [d["reason"] for d in only["items"]] == ["invalid_json"]


async def test_redrive_stores_what_it_can_and_keeps_the_rest(api: Api) -> None:
    runtime = api.runtime
    live = state_changed("sensor.kitchen_temperature", T0, "21.5")
    record = EventRecord("sensor.refused", T0 + 1, "on", attributes_json=b'{"a":1}')
    history_row = {
        "entity_id": "sensor.garden",
        "state": "12",
        "attributes": {},
        "last_changed": format_time_us(T0 + 2),
        "last_updated": format_time_us(T0 + 2),
    }
    bad = state_changed("not an entity id", T0 + 3, "1")
    ids = keep(
        api,
        DeadLetter("normalize_failed", "a bug, since fixed", payload_bytes(live), T0),
        DeadLetter(
            "sink_rejected", "field type conflict", refused_record(record), T0, record.entity_id
        ),
        DeadLetter("bad_state", "old validation", payload_bytes(history_row), T0, "sensor.garden"),
        DeadLetter("bad_entity_id", "invalid", payload_bytes(bad), T0),
        DeadLetter("invalid_json", "truncated", b'{"type": "ev', T0),
    )
    before = runtime.metrics.value("homeiq_events_stored_total")

    response = await api.client.post(
        "/api/v1/admin/dead-letters/redrive", json={"ids": ids}, headers=api.keys.auth("admin")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["selected"] == 5
    assert (body["stored"], body["still_rejected"]) == (3, 2)
    assert body["stored_ids"] == ids[:3]
    assert [(r["id"], r["reason"]) for r in body["rejected"]] == [
        (ids[3], "bad_entity_id"),
        (ids[4], "invalid_json"),
    ]
    assert runtime.metrics.value("homeiq_events_stored_total") == before + 3

    [kitchen] = await runtime.reader.history("sensor.kitchen_temperature", None, None, 10)
    assert (kitchen.time, kitchen.state, kitchen.value, kitchen.source) == (
        T0,
        "21.5",
        21.5,
        Source.LIVE,
    )
    assert kitchen.context_id == ULID
    [refused] = await runtime.reader.history("sensor.refused", None, None, 10)
    assert (refused.time, refused.state, refused.attributes) == (T0 + 1, "on", {"a": 1})
    [garden] = await runtime.reader.history("sensor.garden", None, None, 10)
    assert (garden.state, garden.source) == ("12", Source.BACKFILL)

    remaining = runtime.metadata.dead_letter_page()
    assert sorted(k.id for k in remaining) == ids[3:]


async def test_redrive_by_reason_takes_the_oldest_first_and_is_idempotent(api: Api) -> None:
    messages = [state_changed("sensor.t", T0 + i, str(i)) for i in range(3)]
    ids = keep(
        api,
        *(DeadLetter("normalize_failed", "x", payload_bytes(m), T0) for m in messages),
        # The same event kept twice: stored once, both letters go.
        DeadLetter("normalize_failed", "x", payload_bytes(messages[0]), T0),
        DeadLetter("other", "x", b"{}", T0),
    )
    admin = api.keys.auth("admin")
    response = await api.client.post(
        "/api/v1/admin/dead-letters/redrive",
        json={"reason": "normalize_failed", "limit": 2},
        headers=admin,
    )
    assert response.json()["stored_ids"] == ids[:2]
    response = await api.client.post(
        "/api/v1/admin/dead-letters/redrive",
        json={"reason": "normalize_failed"},
        headers=admin,
    )
    assert response.json()["stored_ids"] == ids[2:4]
    stored = await api.runtime.reader.history("sensor.t", None, None, 10)
    assert [r.state for r in stored] == ["0", "1", "2"]
    assert [k.letter.reason for k in api.runtime.metadata.dead_letter_page()] == ["other"]


async def test_redrive_keeps_what_would_lose_its_attributes_again(api: Api) -> None:
    message = state_changed("sensor.big", T0, "1")
    message["event"]["data"]["new_state"]["attributes"] = {"blob": "x" * 20_000}
    [letter_id] = keep(api, DeadLetter("attributes_too_large", "big", payload_bytes(message), T0))
    response = await api.client.post(
        "/api/v1/admin/dead-letters/redrive",
        json={"ids": [letter_id]},
        headers=api.keys.auth("admin"),
    )
    assert response.json()["rejected"][0]["reason"] == "attributes_too_large"
    assert [k.id for k in api.runtime.metadata.dead_letter_page()] == [letter_id]


async def test_redrive_needs_ids_or_a_reason(api: Api) -> None:
    admin = api.keys.auth("admin")
    for body in ({}, {"ids": [1], "reason": "x"}, {"ids": [0]}, {"reason": "x", "limit": 5000}):
        response = await api.client.post(
            "/api/v1/admin/dead-letters/redrive", json=body, headers=admin
        )
        assert_error(response, 422, "validation_error")
    nothing = await api.client.post(
        "/api/v1/admin/dead-letters/redrive", json={"ids": [4711]}, headers=admin
    )
    assert nothing.json() == {
        "selected": 0,
        "stored": 0,
        "still_rejected": 0,
        "stored_ids": [],
        "rejected": [],
    }


def test_stored_dead_letter_keeps_the_letter() -> None:
    letter = DeadLetter("r", "d", b"p", 1, "sensor.x")
    kept = StoredDeadLetter(7, letter)
    assert replace(kept, id=8).letter is letter
