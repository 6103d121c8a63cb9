"""Schemathesis against the API's own OpenAPI schema, over real HTTP: the runtime and
uvicorn run in a thread of their own (as ``homeiq run`` serves them), and every
generated request carries a read+admin key. No 5xx, and every response (errors
included) must match its documented status, content type and schema."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from homeiq.api.app import create_app, openapi_schema
from homeiq.api.auth import create_key
from homeiq.api.server import ApiServer, bind
from homeiq.model import DeadLetter, payload_bytes
from homeiq.runtime import Runtime
from tests.api.conftest import SNAPSHOT, api_settings
from tests.support.loopthread import LoopThread

MAX_EXAMPLES = 20  # per operation: the whole run stays well under a minute


class ServedApi(LoopThread):
    """A started Runtime and its API on a loopback port, in a thread with its own loop."""

    name = "test-served-api"

    def __init__(self, data_dir: Path) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.url = ""
        self.headers: dict[str, str] = {}

    async def serve(self, ready: Callable[[], None], stopped: Awaitable[bool]) -> None:
        runtime = Runtime(api_settings(self.data_dir))
        runtime.metadata.replace_registry(SNAPSHOT)
        runtime.registry.update(SNAPSHOT)
        runtime.metadata.add_dead_letters(
            [
                DeadLetter("bad_state", "state is int", payload_bytes({"type": "event"}), 1),
                DeadLetter("invalid_json", "truncated", b'{"ty', 2),
            ]
        )
        key, _ = create_key(runtime.metadata, "schemathesis", ["read", "admin"])
        self.headers = {"Authorization": f"Bearer {key}"}
        await runtime.start()
        server = ApiServer(create_app(runtime), bind("127.0.0.1", 0), runtime.settings)
        try:
            await server.start()
            self.url = server.url
            ready()
            await stopped
        finally:
            await server.stop()
            await runtime.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApi]:
    api = ServedApi(tmp_path_factory.mktemp("served"))
    api.start()
    try:
        yield api
    finally:
        api.stop()


# The schema does not depend on configuration, so it is loaded once, here; the requests
# go to the served app (schemathesis' lazy from_fixture does not work with pytest 9).
schema = schemathesis.openapi.from_dict(openapi_schema())


@pytest.mark.schemathesis
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,  # the same cases on every run: CI is reproducible
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_schema(case: Any, served: ServedApi) -> None:
    case.call_and_validate(base_url=served.url, headers=served.headers)
