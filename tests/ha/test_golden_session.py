"""Golden test: the session recorded on a real Home Assistant 2024.3.3 goes through the
real client and pipeline into the SQLite store, and what is stored matches the frames."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from homeiq.metadata.store import MetadataStore
from homeiq.model import EventRecord, Source
from homeiq.runtime import Runtime
from homeiq.settings import Settings
from homeiq.sinks.sqlite import SQLiteEventStore
from tests.support.replay import TOKEN, ReplayServer, recorded_state_changes
from tests.support.wait import async_wait_until


def _us(stamp: str) -> int:
    moment = datetime.fromisoformat(stamp)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def _recorded_state_changes() -> list[dict[str, Any]]:
    return [message["event"] for message in recorded_state_changes()]


def _key(event: dict[str, Any]) -> tuple[str, int]:
    data = event["data"]
    stamp = data["new_state"]["last_updated"] if data["new_state"] else event["time_fired"]
    return data["entity_id"], _us(stamp)


async def _ingest(tmp_path: Path) -> tuple[list[EventRecord], Runtime, ReplayServer]:
    server = ReplayServer()
    await server.start()
    settings = Settings(data_dir=tmp_path, batch_max_age_s=0.05)
    runtime = Runtime(settings)
    runtime.connect_to(server.url, TOKEN)
    await runtime.start()
    try:
        await asyncio.wait_for(server.done.wait(), 10)
        expected = len(_recorded_state_changes())
        # The recorded registry events trigger a (debounced) re-sync: let it happen.
        await async_wait_until(
            lambda: (
                runtime.stats().received >= expected
                and runtime.queue.empty()
                and runtime.sync.syncs >= 2
            ),
            message=lambda: (
                f"not all received and re-synced: {runtime.stats()}, {runtime.sync.syncs} syncs"
            ),
        )
    finally:
        await runtime.stop()
        await server.stop()
    store = SQLiteEventStore.in_dir(tmp_path, readonly=True)
    try:
        return store.all_records(), runtime, server
    finally:
        store.close()


@pytest.fixture
async def golden(tmp_path: Path) -> tuple[list[EventRecord], Runtime, ReplayServer]:
    return await _ingest(tmp_path)


async def test_every_recorded_state_change_is_stored_once(golden: Any) -> None:
    records, runtime, _ = golden
    expected = {_key(e) for e in _recorded_state_changes()}
    assert len(expected) == 735
    assert {(r.entity_id, r.time) for r in records} == expected
    assert len(records) == 735
    assert runtime.stats().stored == 735
    assert all(r.source is Source.LIVE for r in records)


async def test_client_followed_the_protocol(golden: Any) -> None:
    _, _, server = golden
    ids = [c["id"] for c in server.commands]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), "ids must strictly increase"
    kinds = [c["type"] for c in server.commands]
    assert kinds[0] == "supported_features"
    assert server.commands[0]["features"] == {"coalesce_messages": 1}
    # Registries are listed before state changes are subscribed to.
    state_sub = next(
        i for i, c in enumerate(server.commands) if c.get("event_type") == "state_changed"
    )
    assert kinds.index("config/entity_registry/list") < state_sub
    subscribed = [c["event_type"] for c in server.commands if c["type"] == "subscribe_events"]
    assert subscribed[-1] == "state_changed"
    assert {"device_registry_updated", "entity_registry_updated", "area_registry_updated"} <= set(
        subscribed
    )
    # The recorded registry events made the client list the registries again.
    assert kinds.count("config/entity_registry/list") >= 2


async def test_values_match_the_frames(golden: Any) -> None:
    records, _, _ = golden
    by_key = {(r.entity_id, r.time): r for r in records}
    for event in _recorded_state_changes():
        record = by_key[_key(event)]
        data, new, old = event["data"], event["data"]["new_state"], event["data"]["old_state"]
        context = (new or event)["context"]
        assert record.context_id == context["id"]
        assert record.context_parent_id == context["parent_id"]
        assert record.context_user_id == context["user_id"]
        assert record.previous_state == (old["state"] if old else None)
        if new is None:
            assert record.state is None
            continue
        assert record.state == new["state"]
        assert record.last_changed == _us(new["last_changed"])
        if record.dropped_attributes_bytes == 0:
            assert record.attributes == new["attributes"]
        try:
            assert record.value == float(new["state"])
        except ValueError:
            assert record.value is None
        if old and old["state"] != new["state"]:
            expected = (_us(new["last_changed"]) - _us(old["last_changed"])) / 1e6
            assert record.duration_in_state_s == pytest.approx(expected)
        assert record.entity_id == data["entity_id"]


async def test_service_call_and_automation_context_chains(golden: Any) -> None:
    records, _, _ = golden
    light_on = next(r for r in records if r.entity_id == "light.bed_light" and r.state == "on")
    assert light_on.context_id == "01M8A9D4QKBKHYSCD81GW2B7EA"
    assert light_on.context_user_id == "afa9bd51afee4f0795c6dcbeeb4ad3a1"
    assert light_on.attributes["brightness"] == 200
    run = [r for r in records if r.context_id == "01M8A9DDGWBNDAQBNHF8P9BC6X"]
    assert {r.entity_id for r in run} == {
        "automation.harness_toggle",
        "input_boolean.harness_toggle",
    }
    assert len(run) == 3
    assert all(r.context_parent_id == "01M8A9DDGV9XV015S734ZNH3WQ" for r in run)
    assert all(r.context_user_id is None for r in run)


async def test_creation_removal_large_and_unicode(golden: Any, tmp_path: Path) -> None:
    records, _, _ = golden
    new = [r for r in records if r.entity_id == "sensor.fixture_new"]
    assert [r.state for r in new] == ["42", "43.5", None]
    assert new[0].previous_state is None and new[0].value == 42.0
    assert new[2].previous_state == "43.5" and new[2].removed
    assert new[2].time == _us("2026-11-25T21:22:57.067522+00:00")

    large = [r for r in records if r.entity_id == "sensor.fixture_large"]
    assert large[0].state is not None and large[0].attributes == {}
    assert large[0].dropped_attributes_bytes > 16_384
    assert large[1].removed
    meta = MetadataStore.in_dir(tmp_path, readonly=True)
    try:
        kept = meta.dead_letters(reason="attributes_too_large")
    finally:
        meta.close()
    assert len(kept) == 1
    original = orjson.loads(kept[0].payload)
    assert len(original["event"]["data"]["new_state"]["attributes"]["items"]) == 260
    assert kept[0].entity_id == "sensor.fixture_large"

    uni = next(r for r in records if r.entity_id == "sensor.fixture_unicode" and r.state)
    assert uni.state == "Zürich ☀ 晴れ 🌡️"
    assert uni.value is None
