"""Alerts: conditions a person must act on (a backup failed, backups are overdue).

An alert is raised under a stable name and stays active until cleared. Raising one
logs it at ERROR, sets ``homeiq_alerts_active{alert=NAME}``, shows it in
``/api/v1/health``, POSTs it to ``HOMEIQ_ALERT_WEBHOOK_URL`` when set, and creates a
persistent notification in Home Assistant (``notification_id`` ``homeiq_NAME``) when HA
is configured; clearing resolves each of those. Delivery failures are logged and never
raised: an alert about a backup must not itself break the backup.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import aiohttp

from homeiq.observability.metrics import Metrics

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Alert:
    """One active alert."""

    name: str
    message: str
    raised_at: int  # µs


class Alerts:
    """The active alerts, and where they are sent."""

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
        self._active: dict[str, Alert] = {}
        self._lock = asyncio.Lock()

    def active(self) -> list[Alert]:
        """Active alerts, oldest first."""
        return sorted(self._active.values(), key=lambda a: a.raised_at)

    async def raise_alert(self, name: str, message: str) -> None:
        """Raise (or update) alert ``name``; sent again only when its message changes."""
        async with self._lock:
            previous = self._active.get(name)
            if previous is not None and previous.message == message:
                return
            self._active[name] = Alert(name, message, time.time_ns() // 1000)
            self.metrics.alerts_active.labels(name).set(1)
            log.error("ALERT %s: %s", name, message)
            await self._send(name, message, firing=True)

    async def clear(self, name: str, message: str = "resolved") -> None:
        """Clear alert ``name`` if active (and tell the webhook and Home Assistant)."""
        async with self._lock:
            if self._active.pop(name, None) is None:
                return
            self.metrics.alerts_active.labels(name).set(0)
            log.warning("alert %s cleared: %s", name, message)
            await self._send(name, message, firing=False)

    async def _send(self, name: str, message: str, *, firing: bool) -> None:
        timeout = aiohttp.ClientTimeout(total=SEND_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            if self.webhook_url:
                body = {
                    "source": "homeiq",
                    "alert": name,
                    "status": "firing" if firing else "resolved",
                    "message": message,
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
                await self._post(session, self.webhook_url, body, "webhook")
            if self.ha_url and self.ha_token:
                headers = {"Authorization": f"Bearer {self.ha_token}"}
                notification = f"homeiq_{name}"
                if firing:
                    url = f"{self.ha_url}/api/services/persistent_notification/create"
                    body = {
                        "notification_id": notification,
                        "title": f"HomeIQ: {name.replace('_', ' ')}",
                        "message": message,
                    }
                else:
                    url = f"{self.ha_url}/api/services/persistent_notification/dismiss"
                    body = {"notification_id": notification}
                await self._post(session, url, body, "Home Assistant", headers)

    @staticmethod
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
