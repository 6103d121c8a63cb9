"""Cleanups on every store (SQLite, and the real InfluxDB 1.6.7): what a request selects
(globs, time, record source, the simulator's entities, what the ingest rules exclude), a
dry run that deletes nothing and counts what a run deletes, the recorded history, and
saved rules on the schedule."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from homeiq.maintenance.cleanup import (
    CleanupHistory,
    CleanupRequest,
    Provenance,
    count_by_entity,
    execute,
    plan,
    run_saved_rules,
)
from homeiq.maintenance.cleanup.provenance import HOME_ASSISTANT, SIMULATOR
from homeiq.metadata.store import MetadataStore
from homeiq.model import EventRecord, Source
from homeiq.observability.metrics import Metrics
from homeiq.pipeline.filter import IngestFilter
from homeiq.settings import Settings
from homeiq.settings.ingest import IngestSettings
from homeiq.sinks import registry
from homeiq.sinks.base import Eraser, EventReader, Sink
from tests.support.influxdb import T0, S, event, influx_settings


@dataclass
class Store:
    settings: Settings
    sink: Sink
    reader: EventReader
    eraser: Eraser
    metadata: MetadataStore

    async def keys(self) -> set[tuple[str, int]]:
        return await self.reader.keys()


@pytest.fixture(params=["sqlite", pytest.param("influxdb", marks=pytest.mark.influxdb)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        settings = Settings(data_dir=tmp_path, sqlite_writer="thread")
    else:
        server = request.getfixturevalue("influxdb")
        database = request.getfixturevalue("influxdb_database")
        settings = influx_settings(server.url, database, data_dir=tmp_path)
    backend = registry.backend(settings)
    sink, reader = backend.open_sink(), backend.open_reader()
    await sink.open()
    metadata = MetadataStore.in_dir(tmp_path)
    yield Store(settings, sink, reader, backend.eraser(sink), metadata)
    metadata.close()
    await reader.close()
    await sink.close()


def home() -> list[EventRecord]:
    records = []
    for second in range(6):
        records.append(event("sensor.test_a", second, str(second)))
        records.append(event("sensor.test_b", second, str(second), source=Source.BACKFILL))
        records.append(event("sensor.real", second, "20"))
    records.append(event("sensor.test_a", 10, "late", source=Source.SNAPSHOT))
    records.append(event("light.test_lamp", 1, "on"))
    wifi = {"device_class": "signal_strength"}
    records.append(event("sensor.wifi", 2, "-60", attributes=wifi))
    return records


async def test_a_dry_run_deletes_nothing_and_counts_what_the_run_deletes(store: Store) -> None:
    await store.sink.write(home())
    before = await store.keys()
    request = CleanupRequest(entities=("sensor.test_*",), before=T0 + 4 * S)
    deletion = await plan(request, store.eraser, store.metadata)
    assert deletion.entity_ids == ("sensor.test_a", "sensor.test_b")
    counts = await count_by_entity(store.eraser, deletion)
    assert counts == {"sensor.test_a": 4, "sensor.test_b": 4}
    assert await store.keys() == before  # a dry run is only counting

    history = CleanupHistory(store.metadata)
    run = await execute(deletion, request.describe(), "alice", store.eraser, history)
    assert run.deleted == sum(counts.values()) == 8
    gone = {(e, T0 + s * S) for e in ("sensor.test_a", "sensor.test_b") for s in range(4)}
    assert await store.keys() == before - gone
    assert history.runs() == [run]
    assert (run.who, run.status, run.planned, run.pid > 0) == ("alice", "done", 8, True)
    assert run.rule.startswith("sensor.test_* before=")
    assert run.finished_at is not None and run.finished_at >= run.started_at


async def test_a_record_source_selects_only_its_rows(store: Store) -> None:
    await store.sink.write(home())
    before = await store.keys()
    request = CleanupRequest(entities=("sensor.*",), source="snapshot")
    deletion = await plan(request, store.eraser, store.metadata)
    run = await execute(
        deletion, request.describe(), "bob", store.eraser, CleanupHistory(store.metadata)
    )
    assert run.deleted == 1
    assert await store.keys() == before - {("sensor.test_a", T0 + 10 * S)}


async def test_source_simulator_removes_only_entities_seen_only_from_a_simulator(
    store: Store,
) -> None:
    await store.sink.write(home())
    provenance = Provenance(store.metadata)
    provenance.record({("sensor.test_a", SIMULATOR), ("sensor.test_b", SIMULATOR)})
    provenance.record({("sensor.test_b", HOME_ASSISTANT), ("sensor.real", HOME_ASSISTANT)})
    before = await store.keys()
    request = CleanupRequest(source="simulator")
    deletion = await plan(request, store.eraser, store.metadata)
    assert deletion.entity_ids == ("sensor.test_a",)  # test_b was also seen from a real home
    assert deletion.sources == ()  # every record source of those entities
    run = await execute(
        deletion, request.describe(), "carol", store.eraser, CleanupHistory(store.metadata)
    )
    assert run.deleted == 7
    assert await store.keys() == {k for k in before if k[0] != "sensor.test_a"}


async def test_excluded_selects_what_the_current_ingest_rules_leave_out(store: Store) -> None:
    await store.sink.write(home())
    rules = IngestFilter.of(
        IngestSettings(exclude_domains=["light"], exclude_device_classes=["signal_strength"])
    )
    request = CleanupRequest(excluded=True)
    deletion = await plan(request, store.eraser, store.metadata, rules=rules, reader=store.reader)
    assert deletion.entity_ids == ("light.test_lamp", "sensor.wifi")
    assert await count_by_entity(store.eraser, deletion) == {"light.test_lamp": 1, "sensor.wifi": 1}


async def test_saved_rules_run_on_the_schedule_and_are_recorded(store: Store) -> None:
    await store.sink.write(home())
    settings = Settings(
        data_dir=store.settings.data_dir,
        cleanup={
            "rules": [
                {"entities": ["sensor.test_b"], "source": "backfill", "older_than": "2s"},
                {"entities": ["switch.*"], "name": "nothing there"},
            ]
        },
    )
    metrics = Metrics()
    now_s = (T0 + 5 * S) / S  # "older than 2s" = before T0 + 3 s
    runs = await run_saved_rules(
        settings, store.eraser, store.metadata, metrics=metrics, now_s=now_s
    )
    assert [(r.who, r.deleted, r.status) for r in runs] == [
        ("schedule", 3, "done"),
        ("schedule", 0, "done"),
    ]
    assert runs[0].rule == "sensor.test_b source=backfill older_than=2s"
    assert runs[1].rule == "nothing there: switch.*"
    left = {k for k in await store.keys() if k[0] == "sensor.test_b"}
    assert left == {("sensor.test_b", T0 + s * S) for s in (3, 4, 5)}
    assert metrics.value("homeiq_cleanup_deleted_events_total", {"by": "schedule"}) == 3
    assert CleanupHistory(store.metadata).runs() == runs[::-1]
