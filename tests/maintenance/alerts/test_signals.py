"""Signals gathered from real parts (a Home Assistant client, a breaker, a spool, the
resource watch over a data directory) drive the rules: no events while connected, a
store that stays down, a full spool, the quality score the quality helper supplies."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from homeiq.ha.client import HAClient
from homeiq.maintenance.alerts import Alerts, RuntimeSignals
from homeiq.model import EventRecord
from homeiq.observability.metrics import Metrics
from homeiq.observability.resources import ResourceWatch
from homeiq.pipeline.breaker import CircuitBreaker
from homeiq.pipeline.queue import EventQueue
from homeiq.pipeline.spool import Spool
from homeiq.settings.alert import AlertSettings
from tests.support.clock import FakeClock


@dataclass
class Host:
    """The parts of a runtime the signals come from, each the real class."""

    client: HAClient | None
    breaker: CircuitBreaker
    spool: Spool
    resources: ResourceWatch


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def host(tmp_path: Path, clock: FakeClock) -> Iterator[tuple[Host, Metrics]]:
    metrics = Metrics()
    client = HAClient("http://127.0.0.1:9", "token", EventQueue(100, metrics), metrics)
    breaker = CircuitBreaker("sqlite", failures=1, reset_s=5, metrics=metrics, clock=clock)
    spool = Spool.in_dir(tmp_path, max_bytes=4096, metrics=metrics)
    watch = ResourceWatch(tmp_path, metrics, clock=clock)
    yield Host(client, breaker, spool, watch), metrics
    spool.close()


def engine(
    host: Host,
    metrics: Metrics,
    clock: FakeClock,
    quality_score: Callable[[], float | None] | None = None,
) -> Alerts:
    settings = AlertSettings()
    signals = RuntimeSignals(host, settings)
    return Alerts(metrics, settings, signals=signals, quality_score=quality_score, clock=clock)


async def every_15_s(alerts: Alerts, clock: FakeClock, minutes: float) -> None:
    for _ in range(int(minutes * 4)):
        clock.advance(15)
        await alerts.evaluate()


async def test_no_events_while_connected_fires_and_an_event_resolves(
    host: tuple[Host, Metrics], clock: FakeClock
) -> None:
    parts, metrics = host
    assert parts.client is not None
    alerts = engine(parts, metrics, clock)
    await alerts.evaluate()
    await every_15_s(alerts, clock, 10)  # not connected: that is the other rule's
    assert [a.name for a in alerts.active()] == ["ha_disconnected"]

    parts.client.connected.set()
    await every_15_s(alerts, clock, 29.75)
    assert alerts.active() == []  # connected again; silent for less than 30 min
    await every_15_s(alerts, clock, 0.5)
    assert [a.name for a in alerts.active()] == ["no_events"]
    metrics.events_received.inc(3)
    await every_15_s(alerts, clock, 0.25)
    assert alerts.active() == []


async def test_a_store_down_and_a_full_spool(host: tuple[Host, Metrics], clock: FakeClock) -> None:
    parts, metrics = host
    parts.client = None  # a process without a source: no Home Assistant rules
    alerts = engine(parts, metrics, clock)
    parts.breaker.failure()  # one failure opens it (failures=1)
    parts.spool.append([EventRecord(entity_id="sensor.a", time=1, state=secrets.token_hex(1900))])
    assert parts.spool.bytes > 2048  # past 50 % of 4096
    await alerts.evaluate()
    assert [a.name for a in alerts.active()] == ["spool_high"]
    assert "% full" in alerts.active()[0].message
    await every_15_s(alerts, clock, 2)
    assert {a.name for a in alerts.active()} == {"spool_high", "store_down"}
    parts.breaker.success()
    spooled = parts.spool.oldest()
    assert spooled is not None
    parts.spool.remove(spooled.id)
    await alerts.evaluate()
    assert alerts.active() == []


@pytest.mark.parametrize(("score", "fires"), [(None, False), (95.0, False), (42.0, True)])
async def test_the_quality_score_comes_from_a_callable(
    host: tuple[Host, Metrics], clock: FakeClock, score: float | None, fires: bool
) -> None:
    parts, metrics = host
    parts.client = None
    alerts = engine(parts, metrics, clock, quality_score=lambda: score)
    await alerts.evaluate()
    await every_15_s(alerts, clock, 30)
    assert [a.name for a in alerts.active()] == (["quality_low"] if fires else [])
