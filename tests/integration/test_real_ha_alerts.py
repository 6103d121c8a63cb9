"""Alerts become persistent notifications in a real Home Assistant when a rule fires,
and are dismissed when it resolves; a backup alert reported by the backup code too."""

from __future__ import annotations

import pytest

from homeiq.maintenance.alerts import Alerts, Signals
from homeiq.observability.metrics import Metrics
from homeiq.settings.alert import AlertSettings
from tests.support.clock import FakeClock
from tests.support.homeassistant import HomeAssistantInstance

pytestmark = pytest.mark.homeassistant


async def _notifications(ha: HomeAssistantInstance) -> dict[str, str]:
    found = await ha.ws_command({"type": "persistent_notification/get"})
    return {n["notification_id"]: n["message"] for n in found}


async def test_a_rule_firing_and_resolving_is_a_notification_then_none(
    real_ha: HomeAssistantInstance,
) -> None:
    clock = FakeClock()
    alerts = Alerts(Metrics(), AlertSettings(), clock=clock)
    alerts.deliver_to_home_assistant(real_ha.url, real_ha.token)
    down = Signals(breaker_open=True)
    await alerts.evaluate(down)
    assert "homeiq_store_down" not in await _notifications(real_ha)  # not for 2 min yet
    clock.advance(120)
    await alerts.evaluate(down)
    assert (await _notifications(real_ha)).get("homeiq_store_down") == (
        "the sqlite store refuses writes for more than 2 min (circuit breaker open;"
        " events are spooled)"
    )
    await alerts.evaluate(Signals())
    assert "homeiq_store_down" not in await _notifications(real_ha)


async def test_backup_alerts_are_notifications_until_cleared(
    real_ha: HomeAssistantInstance,
) -> None:
    alerts = Alerts(Metrics(), AlertSettings())
    alerts.deliver_to_home_assistant(real_ha.url, real_ha.token)
    await alerts.raise_alert("backup_failed", "backup homeiq-x failed: disk full")
    assert (await _notifications(real_ha)).get("homeiq_backup_failed") == (
        "backup homeiq-x failed: disk full"
    )
    await alerts.clear("backup_failed")
    assert "homeiq_backup_failed" not in await _notifications(real_ha)
