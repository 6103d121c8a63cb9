"""Alerts become persistent notifications in a real Home Assistant, and clearing one
dismisses it."""

from __future__ import annotations

import pytest

from homeiq.maintenance.alerts import Alerts
from homeiq.observability.metrics import Metrics
from tests.support.homeassistant import HomeAssistantInstance

pytestmark = pytest.mark.homeassistant


async def _notifications(ha: HomeAssistantInstance) -> dict[str, str]:
    found = await ha.ws_command({"type": "persistent_notification/get"})
    return {n["notification_id"]: n["message"] for n in found}


async def test_alerts_are_persistent_notifications_in_home_assistant(
    real_ha: HomeAssistantInstance,
) -> None:
    alerts = Alerts(Metrics(), ha_url=real_ha.url, ha_token=real_ha.token)
    await alerts.raise_alert("backup_failed", "backup homeiq-x failed: disk full")
    assert (await _notifications(real_ha)).get("homeiq_backup_failed") == (
        "backup homeiq-x failed: disk full"
    )
    await alerts.clear("backup_failed")
    assert "homeiq_backup_failed" not in await _notifications(real_ha)
