"""Delivery's outage paths against the real spool, metadata store and SQLite sink: order
while the spool drains, an unreadable spooled batch, a full spool, a cancelled probe."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import orjson
import pytest

from homeiq.errors import SinkUnavailable
from homeiq.metadata.store import MetadataStore
from homeiq.model import EventRecord
from homeiq.observability.metrics import Metrics
from homeiq.pipeline import delivery as delivery_module
from homeiq.pipeline.breaker import BreakerState, CircuitBreaker
from homeiq.pipeline.delivery import Delivery
from homeiq.pipeline.spool import SPOOL_DB, Spool
from homeiq.sinks.sqlite import SQLiteSink
from tests.support.clock import FakeClock
from tests.support.wait import async_wait_until

T0 = 1_795_640_400_000_000


def batch(*seconds: int, entity_id: str = "sensor.temp") -> list[EventRecord]:
    return [
        EventRecord(
            entity_id=entity_id,
            time=T0 + s * 1_000_000,
            state=str(s),
            attributes={"unit": "W"},
            attributes_json=orjson.dumps({"unit": "W"}),
        )
        for s in seconds
    ]


class Outage:
    """The real SQLite sink behind a switch: down until ``up`` is set; logs each write."""

    name = "outage"

    def __init__(self, inner: SQLiteSink) -> None:
        self.inner = inner
        self.up = False
        self.written: list[list[int]] = []

    async def open(self) -> None:
        await self.inner.open()

    async def write(self, records: Sequence[EventRecord]) -> int:
        if not self.up:
            raise SinkUnavailable("down")
        self.written.append([r.time for r in records])
        return await self.inner.write(records)

    async def close(self) -> None:
        await self.inner.close()


class Parts:
    def __init__(self, tmp_path: Path, max_bytes: int = 10_000_000) -> None:
        self.metrics = Metrics()
        self.sink = Outage(SQLiteSink(tmp_path, writer="thread"))
        self.spool = Spool.in_dir(
            tmp_path, max_bytes=max_bytes, policy="drop_newest", metrics=self.metrics
        )
        self.metadata = MetadataStore.in_dir(tmp_path)
        self.clock = FakeClock()
        self.breaker = CircuitBreaker(
            "outage", failures=1, reset_s=0.01, metrics=self.metrics, clock=self.clock
        )
        self.gaps_signalled = 0
        self.stored: list[EventRecord] = []
        self.delivery = Delivery(
            self.sink,
            self.spool,
            self.breaker,
            self.metadata,
            self.metrics,
            retry_attempts=1,
            on_gap=self._signal,
            on_stored=[self.stored.extend],
        )

    def _signal(self) -> None:
        self.gaps_signalled += 1

    def keys(self) -> set[tuple[str, int]]:
        return self.sink.inner.store.keys()


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    p = Parts(tmp_path)
    await p.sink.open()
    try:
        yield p
    finally:
        await p.delivery.stop()
        await p.sink.close()
        p.spool.close()
        p.metadata.close()


async def test_batches_keep_their_order_while_the_spool_drains(parts: Parts) -> None:
    parts.delivery.start()
    assert await parts.delivery.deliver(batch(1, 2)) == []  # store down: spooled
    assert parts.breaker.state is BreakerState.OPEN
    parts.sink.up = True
    parts.clock.advance(0.02)  # past the reset delay: the drain's next write is the probe
    # The store is back, but the spool still holds the older batch: this one queues too.
    await parts.delivery.deliver(batch(3))
    await asyncio.wait_for(parts.delivery.wait_drained(), 5)
    assert parts.sink.written == [[T0 + 1_000_000, T0 + 2_000_000], [T0 + 3_000_000]]
    assert parts.spool.empty and parts.delivery.store_ready
    # Back to the direct path once drained.
    await parts.delivery.deliver(batch(4))
    assert parts.sink.written[-1] == [T0 + 4_000_000]
    assert parts.spool.empty
    # Followers (rollups) were told of every stored batch, in the order it was stored.
    assert [r.time for r in parts.stored] == [T0 + s * 1_000_000 for s in (1, 2, 3, 4)]


async def test_a_failing_follower_neither_fails_nor_repeats_a_stored_batch(
    parts: Parts, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(records: Sequence[EventRecord]) -> None:
        raise RuntimeError("a follower's bug")

    parts.delivery.on_stored.insert(0, broken)  # before the follower that works
    parts.sink.up = True
    with caplog.at_level(logging.ERROR, logger="homeiq.pipeline.delivery"):
        assert await parts.delivery.deliver(batch(1)) == []
    assert parts.sink.written == [[T0 + 1_000_000]]  # once: not retried, not spooled
    assert parts.spool.empty and parts.delivery.store_ready
    assert [r.time for r in parts.stored] == [T0 + 1_000_000]  # the next follower was told
    (logged,) = caplog.records
    assert "follower of stored events failed" in logged.getMessage()
    assert logged.exc_info is not None and "a follower's bug" in str(logged.exc_info[1])


async def test_the_drain_waits_out_a_locked_spool_and_goes_on(
    parts: Parts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(delivery_module, "DRAIN_IDLE_S", 0.01)
    await parts.delivery.deliver(batch(1))  # store down: spooled
    parts.spool._conn.execute("PRAGMA busy_timeout=10")
    other = sqlite3.connect(tmp_path / SPOOL_DB, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds spool.db: remove() fails
        parts.sink.up = True
        parts.clock.advance(1.0)  # past the breaker's reset: the drain may probe
        with caplog.at_level(logging.WARNING, logger="homeiq.pipeline.delivery"):
            parts.delivery.start()
            await async_wait_until(
                lambda: any("spool drain paused" in r.getMessage() for r in caplog.records),
                message="the drain to report the locked spool",
            )
        paused = [r.getMessage() for r in caplog.records if "spool drain paused" in r.getMessage()]
        assert paused and "cannot remove a batch from " in paused[0]
        assert "spool.db: database is locked" in paused[0]
        assert parts.delivery._drain_task is not None and not parts.delivery._drain_task.done()
    finally:
        other.execute("ROLLBACK")
        other.close()
    await asyncio.wait_for(parts.delivery.wait_drained(), 5)
    assert parts.spool.empty
    assert parts.keys() == {("sensor.temp", T0 + 1_000_000)}


async def test_an_unreadable_spooled_batch_becomes_a_gap_and_the_drain_goes_on(
    parts: Parts,
) -> None:
    first = parts.spool.append(batch(1, 2)).batch_id
    parts.spool.append(batch(3))
    parts.spool._conn.execute("UPDATE batches SET payload = x'01dead' WHERE id = ?", (first,))
    parts.sink.up = True
    # As after a restart: the delivery starts on a spool a previous run left.
    parts.delivery = Delivery(
        parts.sink, parts.spool, parts.breaker, parts.metadata, parts.metrics, on_gap=parts._signal
    )
    parts.delivery.start()
    await asyncio.wait_for(parts.delivery.wait_drained(), 5)
    assert parts.keys() == {("sensor.temp", T0 + 3_000_000)}
    (gap,) = parts.metadata.gaps()
    assert (gap.start_us, gap.end_us, gap.reason) == (T0 + 999_999, T0 + 2_000_000, "spool_corrupt")
    (quality,) = parts.metadata.quality_events(kind="spool_dropped")
    assert quality.events == 2 and "could not be read back" in quality.detail
    assert parts.gaps_signalled == 1


async def test_a_full_spool_records_the_dropped_span(tmp_path: Path) -> None:
    p = Parts(tmp_path, max_bytes=1024)
    await p.sink.open()
    try:
        await p.delivery.deliver(batch(*range(0, 5)))
        await p.delivery.deliver(batch(*range(100, 300)))  # too big for what is left
        (gap,) = p.metadata.gaps()
        assert (gap.start_us, gap.end_us, gap.reason) == (
            T0 + 100_000_000 - 1,
            T0 + 299_000_000,
            "spool_full",
        )
        (quality,) = p.metadata.quality_events(kind="spool_dropped")
        assert quality.events == 200 and "drop_newest" in quality.detail
        assert p.metrics.value("homeiq_quality_events_total", {"kind": "spool_dropped"}) == 1
        assert p.gaps_signalled == 1
        assert p.spool.events == 5
    finally:
        await p.sink.close()
        p.spool.close()
        p.metadata.close()


async def test_a_cancelled_probe_does_not_hold_the_breaker_half_open(parts: Parts) -> None:
    await parts.delivery.deliver(batch(1))  # down: spooled, breaker open
    parts.clock.advance(0.02)  # past the reset delay: the next write is the probe
    gate = asyncio.Event()

    async def hanging(records: Sequence[EventRecord]) -> int:
        await gate.wait()
        return 0

    parts.sink.write = hanging  # type: ignore[method-assign]
    parts.delivery.start()
    # The drain is now waiting on its probe.
    await async_wait_until(lambda: parts.breaker.state is BreakerState.HALF_OPEN)
    await parts.delivery.stop()  # cancels it
    assert parts.breaker.state is BreakerState.OPEN
