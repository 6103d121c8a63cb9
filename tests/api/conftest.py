"""The API over a real Runtime (SQLite in a writer thread, a temp data dir, a known
registry), reached through httpx's ASGI transport: no server, no mocks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from homeiq.api.app import create_app
from homeiq.api.auth import create_key
from homeiq.model import Area, Device, Entity, Floor, RegistrySnapshot, now_us
from homeiq.runtime import Runtime
from homeiq.settings import Settings

BASE_URL = "http://testserver"
HA_TOKEN = "ha-token-SECRET-0123456789abcdef"
INFLUX_PASSWORD = "influx-password-SECRET-9876"

SNAPSHOT = RegistrySnapshot(
    floors=(Floor("ground", "Ground floor", 0), Floor("upstairs", "Upstairs", 1)),
    areas=(
        Area("kitchen", "Kitchen", "ground"),
        Area("bedroom", "Bedroom", "upstairs"),
        Area("garage", "Garage", None),
    ),
    devices=(
        Device("dev_fridge", "Fridge", "kitchen", "Acme", "F-100"),
        Device("dev_lamp", "Bedside lamp", "bedroom", "Signify", "LCT015"),
        Device("dev_hub", "Hub", None, "Acme", "H-1"),
    ),
    entities=(
        Entity("sensor.fridge_temperature", "dev_fridge", None, "acme", "Fridge temperature"),
        Entity("light.bedside", "dev_lamp", None, "hue", "Bedside"),
        # Its own area overrides its device's (bedroom).
        Entity("light.lamp_nightlight", "dev_lamp", "kitchen", "hue", "Night light"),
        Entity("sensor.hub_uptime", "dev_hub", None, "acme", "Hub uptime"),
        Entity("switch.garage_door", None, "garage", "zwave_js", "Garage door"),
        Entity("sun.sun", None, None, "sun", "Sun"),
    ),
)

GENEROUS = "100000/minute"  # rate limits out of the way, unless a test is about them


@dataclass
class Keys:
    """One key per scope, and one revoked key; ``ids`` by the same names."""

    read: str
    write: str
    admin: str
    revoked: str
    ids: dict[str, int]

    def auth(self, scope: str) -> dict[str, str]:
        """Headers presenting the key named ``scope``."""
        return {"Authorization": f"Bearer {getattr(self, scope)}"}


def api_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for an API test: thread writer, no backfill, known secrets."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "sqlite_writer": "thread",
        "backfill": False,
        "batch_max_age_s": 0.05,
        "ha_token": HA_TOKEN,
        "influxdb_password": INFLUX_PASSWORD,
        "api_rate_limit_read": GENEROUS,
        "api_rate_limit_write": GENEROUS,
        "api_rate_limit_admin": GENEROUS,
        "api_rate_limit_ip": GENEROUS,
    }
    values.update(overrides)
    return Settings(**values)


def make_keys(runtime: Runtime) -> Keys:
    """Create the test keys in the runtime's metadata store."""
    made = {
        scope: create_key(runtime.metadata, f"{scope} key", [scope])
        for scope in ("read", "write", "admin")
    }
    revoked, stored = create_key(runtime.metadata, "old key", ["admin"])
    runtime.metadata.revoke_api_key(stored.id, now_us())
    ids = {scope: key.id for scope, (_, key) in made.items()} | {"revoked": stored.id}
    return Keys(
        read=made["read"][0],
        write=made["write"][0],
        admin=made["admin"][0],
        revoked=revoked,
        ids=ids,
    )


class Api:
    """A started Runtime, its app and a client; ``restart`` rebuilds with new settings."""

    def __init__(self, runtime: Runtime, app: FastAPI, client: httpx.AsyncClient, keys: Keys):
        self.runtime = runtime
        self.app = app
        self.client = client
        self.keys = keys


ApiFactory = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(tmp_path: Path) -> AsyncIterator[ApiFactory]:
    """Build the API over a started Runtime with settings overrides (one per test)."""
    opened: list[tuple[Runtime, httpx.AsyncClient]] = []

    async def build(source: tuple[str, str] | None = None, **overrides: Any) -> Api:
        runtime = Runtime(api_settings(tmp_path / f"data{len(opened)}", **overrides))
        runtime.metadata.replace_registry(SNAPSHOT)
        runtime.registry.update(SNAPSHOT)
        if source is not None:
            runtime.connect_to(*source)  # a Home Assistant (the simulator) at this URL
        await runtime.start()
        app = create_app(runtime)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL)
        opened.append((runtime, client))
        return Api(runtime, app, client, make_keys(runtime))

    yield build
    for runtime, client in opened:
        await client.aclose()
        await runtime.stop()


@pytest.fixture
async def api(make_api: ApiFactory) -> Api:
    """The API with default settings (generous rate limits)."""
    return await make_api()


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is the one error shape with this status and code; returns the error."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "request_id"}
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return dict(error)
