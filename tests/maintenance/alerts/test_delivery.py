"""Alerts reach where a person looks: the log, the metrics, a webhook (a real HTTP server
on loopback here) and Home Assistant's persistent notifications (tests/integration has
the real Home Assistant), once when they fire and once when they resolve; an unreachable
receiver never raises."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from homeiq.maintenance.alerts import Alerts, Signals
from homeiq.observability.metrics import Metrics
from homeiq.settings.alert import AlertSettings
from tests.support.clock import FakeClock
from tests.support.http import loopback_server


class Receiver:
    """An HTTP server that records every JSON POST it gets."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any], str | None]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.posts.append(
            (request.path, await request.json(), request.headers.get("Authorization"))
        )
        return web.json_response({})


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    async with loopback_server(found.handle) as url:
        found.url = url
        yield found


async def test_a_rule_is_logged_counted_and_sent_once_until_it_resolves(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    clock = FakeClock()
    alerts = Alerts(
        metrics,
        AlertSettings(webhook_url=f"{receiver.url}/hook"),
        clock=clock,
        wall_us=lambda: int(clock.now * 1_000_000),
    )
    alerts.deliver_to_home_assistant(receiver.url, "ha-token")
    down = Signals(breaker_open=True, store="influxdb")
    with caplog.at_level(logging.ERROR, "homeiq.maintenance.alerts"):
        await alerts.evaluate(down)
        clock.advance(120)
        await alerts.evaluate(down)
        clock.advance(15)
        await alerts.evaluate(down)  # still down: not sent again
    message = (
        "the influxdb store refuses writes for more than 2 min (circuit breaker open;"
        " events are spooled)"
    )
    assert f"ALERT store_down: {message}" in caplog.text
    assert metrics.value("homeiq_alerts_active", {"alert": "store_down"}) == 1
    hook, ha = receiver.posts
    assert hook == (
        "/hook",
        {
            "source": "homeiq",
            "alert": "store_down",
            "status": "firing",
            "message": message,
            "time": "1970-01-01T00:18:40+00:00",
            "fired_at": "1970-01-01T00:18:40+00:00",
        },
        None,  # the HA token never goes to the webhook
    )
    assert ha == (
        "/api/services/persistent_notification/create",
        {
            "notification_id": "homeiq_store_down",
            "title": "HomeIQ: store down",
            "message": message,
        },
        "Bearer ha-token",
    )

    clock.advance(45)
    with caplog.at_level(logging.WARNING, "homeiq.maintenance.alerts"):
        await alerts.evaluate(Signals(store="influxdb"))
    assert "alert store_down resolved" in caplog.text
    resolved, dismissed = receiver.posts[2:]
    assert resolved[1]["status"] == "resolved"
    assert resolved[1]["time"] == "1970-01-01T00:19:40+00:00"
    assert resolved[1]["fired_at"] == "1970-01-01T00:18:40+00:00"
    assert dismissed[0] == "/api/services/persistent_notification/dismiss"
    assert dismissed[1] == {"notification_id": "homeiq_store_down"}
    assert alerts.active() == []
    assert metrics.value("homeiq_alerts_active", {"alert": "store_down"}) == 0
    assert len(receiver.posts) == 4


async def test_home_assistant_can_be_left_out(receiver: Receiver) -> None:
    alerts = Alerts(Metrics(), AlertSettings(home_assistant=False))
    alerts.deliver_to_home_assistant(receiver.url, "ha-token")
    await alerts.raise_alert("backup_failed", "the NAS is full")
    assert receiver.posts == []


async def test_an_unreachable_receiver_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    alerts = Alerts(Metrics(), AlertSettings(webhook_url="http://127.0.0.1:9/hook"))
    with caplog.at_level(logging.WARNING, "homeiq.maintenance.alerts"):
        await alerts.raise_alert("backup_overdue", "no backup for a day")
    assert "alert not delivered to webhook" in caplog.text
    assert [a.name for a in alerts.active()] == ["backup_overdue"]
