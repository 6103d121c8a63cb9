"""The alert engine: one place that decides when an alert fires and resolves, keeps the
history, and delivers each change once.

Two kinds of alerts share it. *Evaluated* rules (:mod:`.rules`) read a :class:`Signals`
snapshot every ``HOMEIQ_ALERT_EVALUATE_EVERY_S``: a rule fires once its condition held
for its duration, and resolves at the first evaluation where it no longer holds.
*Reported* alerts (the backups') are raised and cleared by the code that knows the
outcome, through :meth:`Alerts.raise_alert` and :meth:`Alerts.clear`.

Either way an alert is deduplicated: one notification when it fires, one when it
resolves, none in between (a later message only updates what the API shows). Each
change is kept in metadata.db (:mod:`.history`); after a restart, alerts the history
leaves firing are active again, so a condition gone while HomeIQ was down resolves
(and dismisses its Home Assistant notification) at the first evaluation.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from homeiq.errors import HomeIQError
from homeiq.maintenance.alerts.delivery import Change, Notifier, Status
from homeiq.maintenance.alerts.history import AlertHistory
from homeiq.maintenance.alerts.rules import Rule, Signals, evaluated_rules
from homeiq.observability.metrics import Metrics
from homeiq.settings.alert import ALERT_NAMES, AlertSettings

log = logging.getLogger("homeiq.maintenance.alerts")


@dataclass(frozen=True, slots=True)
class Alert:
    """One active alert; ``raised_at`` is µs since the epoch (when it fired)."""

    name: str
    message: str
    raised_at: int


class Alerts:
    """The alerts of one HomeIQ process: rules, state, history and delivery.

    ``signals`` gathers a snapshot (blocking; run in a thread), ``quality_score`` is the
    data-quality overall score (0..100, None while not known; without it ``quality_low``
    never fires), ``history`` keeps the changes; ``clock`` (monotonic seconds) times the
    rules' durations and ``wall_us`` stamps the changes."""

    def __init__(
        self,
        metrics: Metrics,
        settings: AlertSettings | None = None,
        *,
        signals: Callable[[], Signals] | None = None,
        quality_score: Callable[[], float | None] | None = None,
        history: AlertHistory | None = None,
        rules: Sequence[Rule] | None = None,
        webhook_url: str | None = None,
        ha_url: str | None = None,
        ha_token: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_us: Callable[[], int] = lambda: time.time_ns() // 1000,
    ) -> None:
        self.settings = settings or AlertSettings()
        self.metrics = metrics
        self.history = history
        self.rules = list(evaluated_rules(self.settings) if rules is None else rules)
        self.notifier = Notifier(
            metrics,
            webhook_url=webhook_url or self.settings.webhook_url,
            ha_url=ha_url,
            ha_token=ha_token,
        )
        self._signals = signals
        self._quality_score = quality_score
        self._clock = clock
        self._wall_us = wall_us
        self._active: dict[str, Alert] = {}
        self._pending: dict[str, float] = {}  # rule -> when its condition began to hold
        self._lock = asyncio.Lock()
        for name in ALERT_NAMES:  # every series exists from the start, at 0
            metrics.alerts_active.labels(name).set(0)
        self._restore()

    def deliver_to_home_assistant(self, url: str, token: str) -> None:
        """Also create/dismiss persistent notifications in Home Assistant at ``url`` (REST
        base, ``http(s)://host:port``), unless ``HOMEIQ_ALERT_HOME_ASSISTANT`` is off."""
        if self.settings.home_assistant:
            self.notifier.ha_url, self.notifier.ha_token = url.rstrip("/"), token

    def active(self) -> list[Alert]:
        """Active alerts, oldest first."""
        return sorted(self._active.values(), key=lambda a: a.raised_at)

    # -- reported alerts -------------------------------------------------------------------

    async def raise_alert(self, name: str, message: str) -> None:
        """Fire ``name`` (one of :data:`ALERT_NAMES`) now; while it is active a new
        message only replaces the one shown, nothing is sent again."""
        _check_name(name)
        if not self.settings.enabled(name):
            log.info("alert %s is turned off (HOMEIQ_ALERT_DISABLED): %s", name, message)
            return
        async with self._lock:
            await self._fire(name, message)

    async def clear(self, name: str, message: str = "resolved") -> None:
        """Resolve ``name`` if it is active (and tell every receiver)."""
        _check_name(name)
        async with self._lock:
            await self._resolve(name, message)

    # -- evaluated rules -------------------------------------------------------------------

    async def evaluate(self, signals: Signals | None = None) -> None:
        """Judge every evaluated rule once against ``signals`` (default: gathered now)."""
        if signals is None:
            signals = await self._gather()
        now = self._clock()
        async with self._lock:
            for rule in self.rules:
                message = rule.check(signals)
                if message is None:
                    self._pending.pop(rule.name, None)
                    if rule.name in self._active:
                        await self._resolve(rule.name, "the condition no longer holds")
                    continue
                since = self._pending.setdefault(rule.name, now)
                if now - since >= rule.for_s:
                    await self._fire(rule.name, message)

    async def _gather(self) -> Signals:
        # Reading the process and the data directory's files blocks: off the loop. The
        # quality score is read here, on the loop, where its tracker's state changes.
        signals = Signals() if self._signals is None else await asyncio.to_thread(self._signals)
        if self._quality_score is not None:
            signals = dataclasses.replace(signals, quality_score=self._quality_score())
        return signals

    async def run(self) -> None:
        """Evaluate on the schedule until cancelled."""
        while True:
            try:
                await self.evaluate()
            except HomeIQError as exc:  # a store or file error: try again next time
                log.warning("alert evaluation failed: %s", exc)
            except Exception:  # a bug in a signal source must not end alerting for good
                log.exception("alert evaluation failed")
            await asyncio.sleep(self.settings.evaluate_every_s)

    def _restore(self) -> None:
        """Alerts the history leaves firing become active again (not re-sent). Done at
        construction, before anything can fire or clear, so nothing races it."""
        if self.history is None:
            return
        try:
            firing = self.history.still_firing()
        except HomeIQError as exc:
            log.warning("alert history unreadable, starting with no active alert: %s", exc)
            return
        for entry in firing:
            if entry.alert in ALERT_NAMES:
                self._active[entry.alert] = Alert(entry.alert, entry.message, entry.at)
                self.metrics.alerts_active.labels(entry.alert).set(1)

    # -- changes ---------------------------------------------------------------------------

    async def _fire(self, name: str, message: str) -> None:
        current = self._active.get(name)
        if current is not None:
            if current.message != message:
                self._active[name] = Alert(name, message, current.raised_at)
            return
        at = self._wall_us()
        self._active[name] = Alert(name, message, at)
        await self._change(Change(name, "firing", message, at, at))

    async def _resolve(self, name: str, message: str) -> None:
        current = self._active.pop(name, None)
        if current is None:
            return
        self._pending.pop(name, None)
        await self._change(Change(name, "resolved", message, self._wall_us(), current.raised_at))

    async def _change(self, change: Change) -> None:
        await self._record(change.alert, change.status, change.message, change.at)
        await self.notifier.send(change)

    async def _record(self, name: str, status: Status, message: str, at: int) -> None:
        if self.history is None:
            return
        try:
            await asyncio.to_thread(self.history.record, name, status, message, at)
        except HomeIQError as exc:  # a full disk must not silence the alert itself
            log.warning("alert %s %s not kept in the history: %s", name, status, exc)


def _check_name(name: str) -> None:
    if name not in ALERT_NAMES:
        raise ValueError(f"unknown alert {name!r}: add it to ALERT_NAMES (a closed set)")
