"""The writer and its delivery wrapper against the real SQLite sink, spool and metadata
store: batching by size and age, retries, isolating a refused row, dead letters and
metrics, and draining on stop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from homeiq.errors import SinkRejected, SinkUnavailable
from homeiq.metadata.registry import Registry
from homeiq.metadata.store import MetadataStore
from homeiq.model import Area, DeadLetter, Device, Entity, EventRecord, RegistrySnapshot, Source
from homeiq.observability.metrics import Metrics
from homeiq.pipeline import delivery as delivery_module
from homeiq.pipeline.breaker import CircuitBreaker
from homeiq.pipeline.delivery import Delivery
from homeiq.pipeline.normalize import Normalizer, parse_time_us
from homeiq.pipeline.queue import EventQueue, Incoming
from homeiq.pipeline.spool import Spool
from homeiq.pipeline.writer import Writer
from homeiq.sinks.sqlite import SQLiteSink
from tests.support.wait import async_wait_until

BASE = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)
NOW = (BASE + timedelta(hours=1)).timestamp()


BASE_US = 1_795_640_400_000_000  # BASE in microseconds since the epoch


def stamp(second: int) -> str:
    return (BASE + timedelta(seconds=second)).isoformat()


def us(second: int) -> int:
    return BASE_US + second * 1_000_000


def message(
    entity_id: str = "sensor.temp",
    second: int = 0,
    state: str = "21.5",
    attributes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A state_changed message shaped like Home Assistant's."""
    new_state = {
        "entity_id": entity_id,
        "state": state,
        "attributes": {"friendly_name": "Temp"} if attributes is None else attributes,
        "last_changed": stamp(second),
        "last_updated": stamp(second),
        "context": {"id": "01M8A9CZW8ENE63FBQ2PA6RTGS", "parent_id": None, "user_id": None},
    }
    return {
        "id": 2,
        "type": "event",
        "event": {
            "event_type": "state_changed",
            "data": {"entity_id": entity_id, "old_state": None, "new_state": new_state},
            "origin": "LOCAL",
            "time_fired": stamp(second),
        },
    }


class FlakySink:
    """Raises SinkUnavailable for the first ``failures`` writes, then delegates."""

    name = "flaky"

    def __init__(self, inner: SQLiteSink, failures: int) -> None:
        self.inner = inner
        self.failures = failures
        self.calls = 0

    async def open(self) -> None:
        await self.inner.open()

    async def write(self, batch: Sequence[EventRecord]) -> int:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise SinkUnavailable("store is busy")
        return await self.inner.write(batch)

    async def close(self) -> None:
        await self.inner.close()


class RejectingSink:
    """Refuses, for good, any batch holding an event of one of ``bad`` entities."""

    name = "rejecting"

    def __init__(self, inner: SQLiteSink, *bad: str) -> None:
        self.inner = inner
        self.bad = set(bad)
        self.refused: list[int] = []

    async def open(self) -> None:
        await self.inner.open()

    async def write(self, batch: Sequence[EventRecord]) -> int:
        if any(r.entity_id in self.bad for r in batch):
            self.refused.append(len(batch))
            raise SinkRejected("constraint violated")
        return await self.inner.write(batch)

    async def close(self) -> None:
        await self.inner.close()


class Harness:
    def __init__(self, sink: SQLiteSink, metadata: MetadataStore, spool: Spool) -> None:
        self.sink = sink
        self.metadata = metadata
        self.metrics = Metrics()
        self.spool = spool
        self.queue = EventQueue(10_000, self.metrics)
        self.task: asyncio.Task[None] | None = None
        self.writer: Writer | None = None
        self.delivery: Delivery | None = None

    def make(
        self,
        *,
        sink: Any = None,
        batch_max_events: int = 100,
        batch_max_age_s: float = 0.02,
        normalizer: Normalizer | None = None,
        breaker_failures: int = 3,
    ) -> Writer:
        sink = sink or self.sink
        breaker = CircuitBreaker(
            sink.name, failures=breaker_failures, reset_s=0.01, metrics=self.metrics
        )
        self.delivery = Delivery(sink, self.spool, breaker, self.metadata, self.metrics)
        self.writer = Writer(
            self.queue,
            self.delivery,
            self.metadata,
            normalizer or Normalizer(clock=lambda: NOW),
            self.metrics,
            batch_max_events=batch_max_events,
            batch_max_age_s=batch_max_age_s,
        )
        return self.writer

    def start(self) -> None:
        assert self.writer is not None and self.delivery is not None
        self.delivery.start()
        self.task = asyncio.create_task(self.writer.run())

    async def offer(self, *items: Any, source: Source = Source.LIVE) -> None:
        for item in items:
            await self.queue.offer(item if isinstance(item, DeadLetter) else Incoming(item, source))

    async def stop(self) -> float:
        """Stop the writer, wait for the spool to drain; returns how long run() took."""
        assert self.writer is not None and self.task is not None and self.delivery is not None
        started = time.monotonic()
        self.writer.stop()
        await asyncio.wait_for(self.task, 2.0)
        took = time.monotonic() - started
        await asyncio.wait_for(self.delivery.wait_drained(), 2.0)
        await self.delivery.stop()
        return took

    def value(self, name: str, **labels: str) -> float:
        return self.metrics.value(name, labels)

    @property
    def stored(self) -> float:
        return self.value("homeiq_events_stored_total")

    @property
    def batches(self) -> float:
        return self.value("homeiq_batch_events_count")

    def keys(self) -> set[tuple[str, int]]:
        return self.sink.store.keys()

    @property
    def entities_seen(self) -> set[str]:
        assert self.delivery is not None
        return self.delivery.entities_seen


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(delivery_module, "RETRY_MIN_S", 0.002)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    sink = SQLiteSink(tmp_path, writer="thread")
    await sink.open()
    metadata = MetadataStore.in_dir(tmp_path)
    spool = Spool.in_dir(tmp_path, max_bytes=10_000_000)
    h = Harness(sink, metadata, spool)
    try:
        yield h
    finally:
        if h.task is not None and not h.task.done():
            h.task.cancel()
            await asyncio.gather(h.task, return_exceptions=True)
        if h.delivery is not None:
            await h.delivery.stop()
        await sink.close()
        spool.close()
        metadata.close()


# -- the happy path -----------------------------------------------------------------------------


def test_time_helpers_agree_with_the_normalizer() -> None:
    assert parse_time_us(stamp(0), "t") == us(0)
    assert parse_time_us(stamp(3601), "t") == us(3601)


async def test_every_message_is_stored_once(harness: Harness) -> None:
    harness.make()
    harness.start()
    messages = [message(f"sensor.s{i % 3}", i, str(i)) for i in range(30)]
    await harness.offer(*messages)
    await harness.stop()

    assert harness.keys() == {(f"sensor.s{i % 3}", us(i)) for i in range(30)}
    assert harness.stored == 30
    assert harness.value("homeiq_events_received_total") == 30
    assert harness.value("homeiq_events_duplicate_total") == 0
    assert harness.metrics.rejected_total() == 0
    assert harness.metadata.dead_letters() == []
    assert harness.entities_seen == {"sensor.s0", "sensor.s1", "sensor.s2"}
    assert harness.value("homeiq_last_event_timestamp_seconds") == us(29) / 1_000_000
    assert harness.value("homeiq_batch_events_sum") == 30
    stored = harness.sink.store.history("sensor.s1", None, None, 100)
    assert [r.state for r in stored] == [str(i) for i in range(1, 30, 3)]
    assert stored[0].attributes == {"friendly_name": "Temp"}


async def test_duplicates_are_counted_not_stored(harness: Harness) -> None:
    harness.make(batch_max_events=2)
    harness.start()
    await harness.offer(message(second=1), message(second=2), message(second=1), message(second=3))
    await harness.stop()
    assert len(harness.keys()) == 3
    assert harness.stored == 3
    assert harness.value("homeiq_events_duplicate_total") == 1


async def test_source_and_placement_reach_the_store(harness: Harness) -> None:
    registry = Registry(
        RegistrySnapshot(
            areas=(Area("kitchen", "Kitchen"),),
            devices=(Device("dev-1", area_id="kitchen"),),
            entities=(Entity("sensor.temp", device_id="dev-1"),),
        )
    )
    harness.make(normalizer=Normalizer(placement_of=registry.placement_of, clock=lambda: NOW))
    harness.start()
    await harness.offer(message(second=1), source=Source.BACKFILL)
    await harness.stop()
    (record,) = harness.sink.store.all_records()
    assert record.source is Source.BACKFILL
    assert (record.device_id, record.area_id) == ("dev-1", "kitchen")


# -- transient failures -------------------------------------------------------------------------


async def test_transient_failures_are_retried_until_stored_once(harness: Harness) -> None:
    flaky = FlakySink(harness.sink, failures=3)
    harness.make(sink=flaky)
    await harness.offer(*[message(second=i) for i in range(10)])
    harness.start()
    await harness.stop()

    assert flaky.calls == 4  # one batch, three refusals, one success
    assert harness.keys() == {("sensor.temp", us(i)) for i in range(10)}
    assert harness.stored == 10
    assert harness.value("homeiq_events_duplicate_total") == 0
    assert harness.value("homeiq_sink_errors_total", kind="transient") == 3
    assert harness.value("homeiq_sink_errors_total", kind="permanent") == 0
    assert harness.metadata.dead_letters() == []


async def test_retry_backoff_grows(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(seconds: float) -> None:
        delays.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(delivery_module, "RETRY_MIN_S", 1.0)
    monkeypatch.setattr(delivery_module, "RETRY_MAX_S", 2.0)
    monkeypatch.setattr(delivery_module.asyncio, "sleep", recording_sleep)
    harness.make(sink=FlakySink(harness.sink, failures=2), breaker_failures=10)
    await harness.offer(message())
    harness.start()
    await harness.stop()
    # Three attempts: jittered within [0.5, 1] of 1 then 2 seconds between them.
    assert len(delays) == 2
    for delay, cap in zip(delays, [1.0, 2.0], strict=True):
        assert cap / 2 <= delay <= cap
    assert harness.stored == 1
    assert harness.spool.empty


async def test_a_store_that_stays_down_gets_the_batch_from_the_spool(harness: Harness) -> None:
    flaky = FlakySink(harness.sink, failures=6)
    harness.make(sink=flaky)
    await harness.offer(*[message(second=i) for i in range(10)])
    harness.start()
    await harness.stop()  # returns once the spool drained into the store
    assert flaky.calls == 7  # three quick attempts, then spooled; probes until it is back
    assert harness.keys() == {("sensor.temp", us(i)) for i in range(10)}
    assert harness.stored == 10
    assert harness.spool.empty
    assert harness.value("homeiq_sink_breaker_opens_total", sink="flaky") >= 1
    assert harness.value("homeiq_sink_breaker_state", sink="flaky") == 0


# -- permanent refusals -------------------------------------------------------------------------


async def test_rejected_batch_is_bisected_to_the_bad_event(harness: Harness) -> None:
    rejecting = RejectingSink(harness.sink, "sensor.bad")
    harness.make(sink=rejecting)
    messages = [message("sensor.good", i) for i in range(9)]
    messages.insert(5, message("sensor.bad", 100, state="on"))
    await harness.offer(*messages)
    harness.start()
    await harness.stop()

    assert harness.keys() == {("sensor.good", us(i)) for i in range(9)}
    assert harness.stored == 9
    letters = harness.metadata.dead_letters()
    assert len(letters) == 1
    (letter,) = letters
    assert letter.reason == "sink_rejected"
    assert letter.entity_id == "sensor.bad"
    assert "constraint violated" in letter.detail
    payload = orjson.loads(letter.payload)
    assert payload["entity_id"] == "sensor.bad"
    assert payload["state"] == "on"
    assert payload["time"] == us(100)
    assert harness.value("homeiq_events_rejected_total", reason="sink_rejected") == 1
    assert harness.value("homeiq_sink_errors_total", kind="permanent") == len(rejecting.refused)
    # Refusals shrink by halves down to the single bad event.
    assert rejecting.refused[0] == 10
    assert rejecting.refused[-1] == 1
    assert rejecting.refused == sorted(rejecting.refused, reverse=True)


async def test_several_bad_events_are_each_dead_lettered(harness: Harness) -> None:
    harness.make(sink=RejectingSink(harness.sink, "sensor.bad", "sensor.worse"))
    messages = [message("sensor.good", i) for i in range(12)]
    messages[0] = message("sensor.bad", 0)
    messages[7] = message("sensor.worse", 7)
    messages[11] = message("sensor.bad", 11)
    await harness.offer(*messages)
    harness.start()
    await harness.stop()

    good = {("sensor.good", us(i)) for i in range(12) if i not in (0, 7, 11)}
    assert harness.keys() == good
    letters = harness.metadata.dead_letters(reason="sink_rejected")
    assert sorted((d.entity_id, orjson.loads(d.payload)["time"]) for d in letters) == [
        ("sensor.bad", us(0)),
        ("sensor.bad", us(11)),
        ("sensor.worse", us(7)),
    ]
    assert harness.metadata.dead_letter_counts() == {"sink_rejected": 3}


# -- invalid messages -----------------------------------------------------------------------


async def test_invalid_messages_are_dead_lettered_with_their_reason(harness: Harness) -> None:
    bad_state = message("sensor.broken", 1)
    bad_state["event"]["data"]["new_state"]["state"] = 12
    bad_entity = message("sensor.ok", 2)
    bad_entity["event"]["data"]["entity_id"] = "Not.Valid"
    future = message("sensor.future", 3)
    future["event"]["data"]["new_state"]["last_updated"] = "2030-01-01T00:00:00+00:00"
    harness.make()
    await harness.offer(
        message("sensor.fine", 0),
        bad_state,
        bad_entity,
        ["not", "an", "object"],
        {"type": "event"},
        future,
        message("sensor.fine", 4),
    )
    harness.start()
    await harness.stop()

    assert harness.keys() == {("sensor.fine", us(0)), ("sensor.fine", us(4))}
    assert harness.value("homeiq_events_received_total") == 7
    assert harness.metadata.dead_letter_counts() == {
        "bad_entity_id": 1,
        "bad_state": 1,
        "missing_event": 1,
        "not_an_object": 1,
        "timestamp_in_future": 1,
    }
    for reason in ("bad_entity_id", "bad_state", "missing_event", "not_an_object"):
        assert harness.value("homeiq_events_rejected_total", reason=reason) == 1
    assert harness.metrics.rejected_total() == 5

    (state_letter,) = harness.metadata.dead_letters(reason="bad_state")
    assert state_letter.entity_id == "sensor.broken"
    assert orjson.loads(state_letter.payload) == bad_state
    assert "int" in state_letter.detail
    (entity_letter,) = harness.metadata.dead_letters(reason="bad_entity_id")
    assert entity_letter.entity_id == "Not.Valid"
    (list_letter,) = harness.metadata.dead_letters(reason="not_an_object")
    assert list_letter.entity_id is None
    assert orjson.loads(list_letter.payload) == ["not", "an", "object"]
    before = time.time_ns() // 1000
    assert all(0 < d.received_at <= before for d in harness.metadata.dead_letters())


async def test_a_full_metadata_disk_neither_stops_the_writer_nor_loses_a_dead_letter(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    conn = harness.metadata._conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages}")  # SQLite's real "database or disk is full"
    harness.make()
    harness.start()
    assert harness.delivery is not None and harness.task is not None
    letters = harness.delivery.dead_letters
    frame = b"{not json" + b"x" * 20_000  # too large for the free space left in its pages
    with caplog.at_level(logging.WARNING):
        await harness.offer(frame, message("sensor.a", 1))
        await async_wait_until(
            lambda: (
                harness.stored == 1
                and harness.value("homeiq_dead_letter_write_failures_total") >= 1
            )
        )
    assert letters.pending == 1
    assert not harness.task.done()  # the writer goes on
    assert harness.value("homeiq_events_rejected_total", reason="invalid_json") == 1
    assert any("disk is full" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")

    conn.execute("PRAGMA max_page_count=1073741823")  # space freed
    await harness.offer(message("sensor.a", 2))  # the next batch takes the waiting letter along
    await async_wait_until(lambda: letters.pending == 0)
    await harness.stop()
    assert [(d.reason, d.payload) for d in harness.metadata.dead_letters()] == [
        ("invalid_json", frame)
    ]
    assert harness.keys() == {("sensor.a", us(1)), ("sensor.a", us(2))}
    assert harness.value("homeiq_events_rejected_total", reason="invalid_json") == 1


async def test_unserializable_invalid_message_is_kept_as_repr(harness: Harness) -> None:
    odd = {"type": "event", "event": {1: "non-string key"}}
    harness.make()
    await harness.offer(odd)
    harness.start()
    await harness.stop()
    (letter,) = harness.metadata.dead_letters()
    assert letter.reason == "unexpected_event_type"
    assert letter.payload == repr(odd).encode()


async def test_reader_dead_letters_pass_through(harness: Harness) -> None:
    frame_letter = DeadLetter("bad_json", "frame is not JSON", b"{nope", 123, None)
    harness.make()
    await harness.offer(frame_letter, message(second=1))
    harness.start()
    await harness.stop()
    assert harness.metadata.dead_letters() == [frame_letter]
    assert harness.value("homeiq_events_rejected_total", reason="bad_json") == 1
    # A reader's dead letter is not a received state_changed message.
    assert harness.value("homeiq_events_received_total") == 1
    assert harness.stored == 1


async def test_oversized_attributes_are_stored_without_them_and_dead_lettered(
    harness: Harness,
) -> None:
    big = {"friendly_name": "Big", "items": ["x" * 50] * 20}
    oversized = message("sensor.big", 1, "260", attributes=big)
    harness.make(normalizer=Normalizer(attributes_max_bytes=256, clock=lambda: NOW))
    await harness.offer(oversized, message("sensor.small", 2))
    harness.start()
    await harness.stop()

    (record,) = harness.sink.store.history("sensor.big", None, None, 10)
    assert record.state == "260"
    assert record.value == 260.0
    assert record.attributes == {}
    size = len(orjson.dumps(big, option=orjson.OPT_SORT_KEYS))
    assert record.dropped_attributes_bytes == size
    (letter,) = harness.metadata.dead_letters()
    assert letter.reason == "attributes_too_large"
    assert letter.entity_id == "sensor.big"
    assert str(size) in letter.detail
    assert orjson.loads(letter.payload) == oversized  # the whole message, attributes included
    assert harness.value("homeiq_events_rejected_total", reason="attributes_too_large") == 1
    assert harness.stored == 2
    (small,) = harness.sink.store.history("sensor.small", None, None, 10)
    assert small.attributes == {"friendly_name": "Temp"}


# -- batching ---------------------------------------------------------------------------------


async def test_batches_flush_by_size(harness: Harness) -> None:
    harness.make(batch_max_events=3, batch_max_age_s=30)
    await harness.offer(*[message(second=i) for i in range(7)])
    harness.start()
    await async_wait_until(lambda: harness.stored == 6)
    await asyncio.sleep(0.05)
    # Two full batches went out; the seventh waits for more events or its age.
    assert harness.stored == 6
    assert harness.batches == 2
    assert len(harness.keys()) == 6
    elapsed = await harness.stop()
    assert elapsed < 10.0  # stop does not wait out the 30 s age
    assert harness.stored == 7
    assert harness.batches == 3
    assert harness.value("homeiq_batch_events_sum") == 7


async def test_batches_flush_by_age(harness: Harness) -> None:
    harness.make(batch_max_events=1000, batch_max_age_s=0.05)
    harness.start()
    await harness.offer(message(second=1), message(second=2))
    await async_wait_until(lambda: harness.stored == 2)
    assert harness.batches == 1
    await harness.offer(message(second=3))
    await async_wait_until(lambda: harness.stored == 3)
    assert harness.batches == 2
    assert not harness.task.done()  # type: ignore[union-attr]
    await harness.stop()
    assert harness.keys() == {("sensor.temp", us(s)) for s in (1, 2, 3)}


async def test_idle_writer_writes_nothing(harness: Harness) -> None:
    harness.make(batch_max_age_s=0.01)
    harness.start()
    await asyncio.sleep(0.08)
    await harness.stop()
    assert harness.batches == 0
    assert harness.keys() == set()


# -- stopping ---------------------------------------------------------------------------------


async def test_stop_drains_everything_queued(harness: Harness) -> None:
    harness.make(batch_max_events=50, batch_max_age_s=30)
    await harness.offer(*[message(f"sensor.e{i % 7}", i) for i in range(333)])
    harness.start()
    elapsed = await harness.stop()
    assert elapsed < 2.0
    assert len(harness.keys()) == 333
    assert harness.stored == 333
    assert harness.queue.empty()
    assert harness.batches == 7  # six full batches of 50 and the 33 left


async def test_stop_before_run_with_empty_queue_returns_at_once(harness: Harness) -> None:
    writer = harness.make(batch_max_age_s=30)
    writer.stop()
    await asyncio.wait_for(writer.run(), 1.0)
    assert harness.batches == 0


async def test_stop_waits_for_a_retrying_write(harness: Harness) -> None:
    flaky = FlakySink(harness.sink, failures=4)
    harness.make(sink=flaky, batch_max_events=5, batch_max_age_s=30)
    await harness.offer(*[message(second=i) for i in range(5)])
    harness.start()
    await async_wait_until(lambda: flaky.calls >= 1)
    await harness.stop()
    assert flaky.failures == 0
    assert flaky.calls == 5
    assert len(harness.keys()) == 5


async def test_messages_offered_while_running_are_drained_on_stop(harness: Harness) -> None:
    harness.make(batch_max_events=10, batch_max_age_s=30)
    harness.start()
    for i in range(25):
        await harness.offer(message(second=i))
        if i % 5 == 0:
            await asyncio.sleep(0)
    await harness.stop()
    assert len(harness.keys()) == 25
    assert harness.value("homeiq_events_received_total") == 25


# -- the queue in front of the writer ---------------------------------------------------------


async def test_full_queue_makes_the_reader_wait_and_is_counted() -> None:
    metrics = Metrics()
    queue = EventQueue(2, metrics)
    assert metrics.value("homeiq_queue_capacity") == 2
    await queue.offer(Incoming(message(second=1)))
    await queue.offer(Incoming(message(second=2)))
    assert queue.qsize() == 2
    assert metrics.value("homeiq_queue_depth") == 2
    assert metrics.value("homeiq_queue_full_total") == 0

    blocked = asyncio.create_task(queue.offer(Incoming(message(second=3))))
    await async_wait_until(lambda: metrics.value("homeiq_queue_full_total") == 1)
    assert not blocked.done()  # waits for room instead of dropping
    assert metrics.value("homeiq_queue_full_total") == 1

    first = queue.get_nowait()
    assert isinstance(first, Incoming)
    assert first.message == message(second=1)
    await asyncio.wait_for(blocked, 1.0)
    assert [queue.get_nowait(), await queue.get()] == [
        Incoming(message(second=2)),
        Incoming(message(second=3)),
    ]
    assert queue.empty()
    assert metrics.value("homeiq_queue_depth") == 0
