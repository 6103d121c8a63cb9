"""Alerts reach where a person looks: the log, the metrics, a webhook (a real HTTP server
on loopback here) and Home Assistant's persistent notifications (tests/integration has
the real Home Assistant); an unreachable receiver never raises."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from homeiq.maintenance.alerts import Alerts
from homeiq.observability.metrics import Metrics
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


async def test_an_alert_is_logged_counted_and_sent_once_until_cleared(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    alerts = Alerts(
        metrics, webhook_url=f"{receiver.url}/hook", ha_url=receiver.url, ha_token="ha-token"
    )
    with caplog.at_level(logging.ERROR, "homeiq.maintenance.alerts"):
        await alerts.raise_alert("backup_failed", "the NAS is full")
        await alerts.raise_alert("backup_failed", "the NAS is full")  # not sent again
    assert "ALERT backup_failed: the NAS is full" in caplog.text
    assert [a.name for a in alerts.active()] == ["backup_failed"]
    assert metrics.value("homeiq_alerts_active", {"alert": "backup_failed"}) == 1
    hook, ha = receiver.posts
    assert hook[0] == "/hook"
    assert hook[1]["alert"] == "backup_failed" and hook[1]["status"] == "firing"
    assert hook[1]["message"] == "the NAS is full" and hook[1]["source"] == "homeiq"
    assert hook[2] is None  # the HA token never goes to the webhook
    assert ha == (
        "/api/services/persistent_notification/create",
        {
            "notification_id": "homeiq_backup_failed",
            "title": "HomeIQ: backup failed",
            "message": "the NAS is full",
        },
        "Bearer ha-token",
    )

    await alerts.raise_alert("backup_failed", "the NAS is gone")  # a new message: sent
    assert len(receiver.posts) == 4
    await alerts.clear("backup_failed", "backup written")
    await alerts.clear("backup_failed")  # not active: nothing sent
    resolved, dismissed = receiver.posts[4:]
    assert resolved[1]["status"] == "resolved" and resolved[1]["message"] == "backup written"
    assert dismissed[0] == "/api/services/persistent_notification/dismiss"
    assert dismissed[1] == {"notification_id": "homeiq_backup_failed"}
    assert alerts.active() == []
    assert metrics.value("homeiq_alerts_active", {"alert": "backup_failed"}) == 0


async def test_an_unreachable_receiver_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    alerts = Alerts(Metrics(), webhook_url="http://127.0.0.1:9/hook")
    with caplog.at_level(logging.WARNING, "homeiq.maintenance.alerts"):
        await alerts.raise_alert("backup_overdue", "no backup for a day")
    assert "alert not delivered to webhook" in caplog.text
    assert [a.name for a in alerts.active()] == ["backup_overdue"]
