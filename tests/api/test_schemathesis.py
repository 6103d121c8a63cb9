"""Schemathesis against the API's own OpenAPI schema, over real HTTP: the runtime and
uvicorn run in a thread of their own (as ``homeiq run`` serves them), and every
generated request carries a read+admin key. No 5xx, and every response (errors
included) must match its documented status, content type and schema."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from homeiq.api.app import create_app, openapi_schema
from homeiq.api.auth import create_key
from homeiq.api.server import ApiServer, bind
from homeiq.model import DeadLetter
from homeiq.pipeline.writer import payload_bytes
from homeiq.runtime import Runtime
from tests.api.conftest import SNAPSHOT, api_settings

MAX_EXAMPLES = 20  # per operation: the whole run stays well under a minute


class ServedApi:
    """A started Runtime and its API on a loopback port, in a thread with its own loop."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.url = ""
        self.headers: dict[str, str] = {}
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="test-served-api")

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start()/stop()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
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
            self._ready.set()
            await self._stop.wait()
        finally:
            await server.stop()
            await runtime.stop()

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(20), "the API did not start"
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)
        assert not self._thread.is_alive(), "the API thread did not stop"
        if self._error is not None:
            raise self._error


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
