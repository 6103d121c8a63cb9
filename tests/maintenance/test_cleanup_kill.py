"""A cleanup killed with SIGKILL part-way: the store keeps whole chunks (consistent), the
history shows the run as interrupted, and the next start finishes it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from homeiq.maintenance.cleanup import CleanupHistory
from homeiq.metadata.store import MetadataStore
from homeiq.runtime import Runtime
from homeiq.settings import ENV_PREFIX, Settings
from homeiq.sinks import registry
from tests.support.influxdb import event
from tests.support.wait import async_wait_until

# The real cleanup in a process of its own, whose eraser kills the process (SIGKILL,
# nothing flushed, nothing finished) right after the first entity's rows went.
DIES_MIDWAY = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from pathlib import Path
    from homeiq.maintenance.cleanup import CleanupHistory, CleanupRequest, execute, plan
    from homeiq.metadata.store import MetadataStore
    from homeiq.settings import Settings
    from homeiq.sinks import registry
    from homeiq.sinks.base import Deletion

    class DiesMidway:
        def __init__(self, inner):
            self.inner = inner
        async def count(self, deletion):
            return await self.inner.count(deletion)
        async def entity_ids(self):
            return await self.inner.entity_ids()
        async def delete(self, deletion, *, chunk_rows):
            first = Deletion(deletion.entity_ids[:1], deletion.before, deletion.after)
            await self.inner.delete(first, chunk_rows=chunk_rows)
            os.kill(os.getpid(), signal.SIGKILL)

    async def main():
        settings = Settings(data_dir=Path(sys.argv[1]))  # the store from HOMEIQ_* variables
        backend = registry.backend(settings)
        sink = backend.open_sink()
        await sink.open()
        metadata = MetadataStore.in_dir(settings.data_dir)
        eraser = DiesMidway(backend.eraser(sink))
        request = CleanupRequest(entities=("sensor.test_*",))
        deletion = await plan(request, eraser, metadata)
        await execute(deletion, request.describe(), "dave", eraser, CleanupHistory(metadata))

    asyncio.run(main())
    """
)


def settings_for(request: pytest.FixtureRequest, data_dir: Path) -> dict[str, str]:
    """The store's settings as HOMEIQ_* variables (the subprocess reads them too)."""
    if request.param == "sqlite":
        return {"HOMEIQ_SQLITE_WRITER": "thread"}
    server = request.getfixturevalue("influxdb")
    database = request.getfixturevalue("influxdb_database")
    return {
        "HOMEIQ_STORE": "influxdb",
        "HOMEIQ_INFLUXDB_URL": server.url,
        "HOMEIQ_INFLUXDB_DATABASE": database,
    }


@pytest.fixture(params=["sqlite", pytest.param("influxdb", marks=pytest.mark.influxdb)])
def store_env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    variables = settings_for(request, tmp_path)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return variables


async def stored_entities(settings: Settings) -> set[str]:
    reader = registry.backend(settings).open_reader()
    try:
        return {entity_id for entity_id, _ in await reader.keys()}
    finally:
        await reader.close()


async def test_a_killed_cleanup_is_interrupted_consistent_and_resumed_at_start(
    tmp_path: Path, store_env: dict[str, str]
) -> None:
    settings = Settings(data_dir=tmp_path)
    backend = registry.backend(settings)
    sink = backend.open_sink()
    await sink.open()
    entities = ("sensor.test_a", "sensor.test_b", "sensor.real")
    await sink.write([event(e, s) for e in entities for s in range(5)])
    await sink.close()

    command = [sys.executable, "-c", DIES_MIDWAY, str(tmp_path)]
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, timeout=60, env={**os.environ}
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()

    # Whole chunks: the first entity went, the second is untouched.
    assert await stored_entities(settings) == {"sensor.test_b", "sensor.real"}
    metadata = MetadataStore.in_dir(tmp_path)
    try:
        (run,) = CleanupHistory(metadata).runs()
        assert (run.status, run.shown_status, run.planned, run.who) == (
            "running", "interrupted", 10, "dave",
        )  # fmt: skip
        assert CleanupHistory(metadata).interrupted() == [run]
    finally:
        metadata.close()

    runtime = Runtime(settings)
    await runtime.start()
    try:
        history = CleanupHistory(runtime.metadata)
        await async_wait_until(lambda: history.runs()[0].status == "done")
        (resumed,) = history.runs()
    finally:
        await runtime.stop()
    assert (resumed.id, resumed.deleted, resumed.planned) == (run.id, 10, 10)
    assert resumed.detail.startswith("resumed: process")
    assert await stored_entities(settings) == {"sensor.real"}
