"""Where an alert goes when it fires or resolves: the log, the metrics, a webhook and
Home Assistant's persistent notifications.

Firing logs at ERROR, resolving at WARNING. The webhook gets one JSON POST per change
(body in docs/alerts.md); Home Assistant gets ``persistent_notification.create`` on
firing and ``.dismiss`` on resolve, under ``notification_id`` ``homeiq_NAME``. Delivery
failures are logged and never raised: an alert about a backup must not break the backup.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import aiohttp

from homeiq.observability.metrics import Metrics
from homeiq.pipeline.normalize import format_time_us

log = logging.getLogger("homeiq.maintenance.alerts")

SEND_TIMEOUT_S = 10.0
Status = Literal["firing", "resolved"]


@dataclass(frozen=True, slots=True)
class Change:
    """An alert that fired or resolved. Times are µs since the epoch."""

    alert: str
    status: Status
    message: str
    at: int
    fired_at: int  # when this firing began (equal to ``at`` for a firing)


def webhook_body(change: Change) -> dict[str, str]:
    """What the webhook receives for one change."""
    return {
        "source": "homeiq",
        "alert": change.alert,
        "status": change.status,
        "message": change.message,
        "time": format_time_us(change.at),
        "fired_at": format_time_us(change.fired_at),
    }


class Notifier:
    """Sends alert changes to every configured receiver."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        webhook_url: str | None = None,
        ha_url: str | None = None,
        ha_token: str | None = None,
    ) -> None:
        self.metrics = metrics
        self.webhook_url = webhook_url
        self.ha_url = ha_url.rstrip("/") if ha_url else None  # REST base, http(s)://host:port
        self.ha_token = ha_token

    async def send(self, change: Change) -> None:
        """Log, count and deliver ``change``; receivers that fail are logged."""
        if change.status == "firing":
            log.error("ALERT %s: %s", change.alert, change.message)
        else:
            log.warning("alert %s resolved: %s", change.alert, change.message)
        self.metrics.alerts_active.labels(change.alert).set(int(change.status == "firing"))
        self.metrics.alert_notifications.labels(change.status).inc()
        if not self.webhook_url and not (self.ha_url and self.ha_token):
            return
        timeout = aiohttp.ClientTimeout(total=SEND_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            if self.webhook_url:
                await _post(session, self.webhook_url, webhook_body(change), "webhook")
            if self.ha_url and self.ha_token:
                await self._to_home_assistant(session, change)

    async def _to_home_assistant(self, session: aiohttp.ClientSession, change: Change) -> None:
        headers = {"Authorization": f"Bearer {self.ha_token}"}
        notification = f"homeiq_{change.alert}"
        body: dict[str, str]
        if change.status == "firing":
            url = f"{self.ha_url}/api/services/persistent_notification/create"
            body = {
                "notification_id": notification,
                "title": f"HomeIQ: {change.alert.replace('_', ' ')}",
                "message": change.message,
            }
        else:
            url = f"{self.ha_url}/api/services/persistent_notification/dismiss"
            body = {"notification_id": notification}
        await _post(session, url, body, "Home Assistant", headers)


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    body: dict[str, str],
    what: str,
    headers: dict[str, str] | None = None,
) -> None:
    try:
        async with session.post(url, json=body, headers=headers) as response:
            if response.status >= 400:
                log.warning("alert not delivered to %s: HTTP %d", what, response.status)
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("alert not delivered to %s: %s", what, exc or type(exc).__name__)
