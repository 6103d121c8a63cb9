"""The ingest filter in the writer, on the real SQLite sink: excluded events are counted,
never stored and never dead-lettered, whichever way they came (a queued message, a raw
frame of several, a backfill batch); included ones are stored as before."""

from __future__ import annotations

import orjson

from homeiq.model import Source
from homeiq.pipeline.filter import IngestFilter
from homeiq.settings.ingest import IngestSettings
from tests.pipeline import test_writer
from tests.pipeline.test_writer import Harness, message, us
from tests.support.influxdb import event

# The writer tests' fixtures: a real SQLite sink, spool and metadata.db in tmp_path.
harness = test_writer.harness
fast_retries = test_writer.fast_retries


def _filter(harness: Harness, **lists: list[str]) -> IngestFilter:
    found = IngestFilter.of(IngestSettings(**lists), harness.metrics)
    assert found is not None
    return found


async def test_excluded_messages_are_counted_and_never_stored(harness: Harness) -> None:
    writer = harness.make()
    writer.ingest_filter = _filter(
        harness, exclude_domains=["light"], exclude_device_classes=["signal_strength"]
    )
    harness.start()
    rssi = {"device_class": "signal_strength"}
    removal = message("sensor.wifi", 4)
    removal["event"]["data"]["new_state"] = None  # no attributes: the class last seen
    frame = orjson.dumps([message("light.b", 5), message("sensor.t", 6)])
    await harness.offer(
        message("light.a", 1),
        message("sensor.t", 2),
        message("sensor.wifi", 3, attributes=rssi),
        removal,
        frame,
    )
    await harness.stop()
    assert harness.keys() == {("sensor.t", us(2)), ("sensor.t", us(6))}
    assert harness.value("homeiq_events_received_total") == 6
    assert harness.value("homeiq_events_excluded_total", domain="light") == 2
    assert harness.value("homeiq_events_excluded_total", domain="sensor") == 2
    assert writer.ingest_filter is not None
    assert writer.ingest_filter.counts() == {"light": 2, "sensor": 2}
    assert writer.excluded_counts() == {"light": 2, "sensor": 2}
    assert harness.metadata.dead_letters() == []
    assert harness.metrics.rejected_total() == 0


async def test_backfilled_records_pass_the_same_rules(harness: Harness) -> None:
    writer = harness.make()
    writer.ingest_filter = _filter(harness, include_entity_globs=["sensor.*_power"])
    records = [
        event("sensor.oven_power", 1, source=Source.BACKFILL),
        event("sensor.temperature", 2, source=Source.BACKFILL),
        event("switch.plug", 3, source=Source.BACKFILL),
    ]
    await writer.deliver(records)
    stored = harness.keys()
    assert {entity_id for entity_id, _ in stored} == {"sensor.oven_power"}
    assert harness.value("homeiq_events_excluded_total", domain="sensor") == 1
    assert harness.value("homeiq_events_excluded_total", domain="switch") == 1


async def test_a_message_without_an_entity_is_still_dead_lettered(harness: Harness) -> None:
    writer = harness.make()
    writer.ingest_filter = _filter(harness, include_domains=["sensor"])
    harness.start()
    broken = message("sensor.t", 1)
    del broken["event"]["data"]["entity_id"]
    await harness.offer(broken, message("sensor.t", 2))
    await harness.stop()
    assert harness.keys() == {("sensor.t", us(2))}
    assert [d.reason for d in harness.metadata.dead_letters()] == ["bad_entity_id"]
    assert writer.ingest_filter is not None and writer.ingest_filter.counts() == {}
    writer.ingest_filter = None
    assert writer.excluded_counts() == {}
