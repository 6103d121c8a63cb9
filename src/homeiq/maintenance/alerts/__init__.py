"""Alerts: conditions a person must act on, from one engine.

- :mod:`.rules`: the built-in rules and the :class:`Signals` they read;
- :mod:`.signals`: gathering signals from the running process;
- :mod:`.engine`: :class:`Alerts`, firing/resolving with durations and deduplication;
- :mod:`.delivery`: log, metrics, webhook, Home Assistant notifications;
- :mod:`.history`: the bounded history in metadata.db.

docs/alerts.md describes every rule, its setting and its default.
"""

from __future__ import annotations

from homeiq.maintenance.alerts.delivery import Change, Notifier, webhook_body
from homeiq.maintenance.alerts.engine import Alert, Alerts
from homeiq.maintenance.alerts.history import AlertHistory, HistoryEntry
from homeiq.maintenance.alerts.rules import Rule, Signals, evaluated_rules
from homeiq.maintenance.alerts.signals import RuntimeSignals, SignalHost
from homeiq.settings.alert import ALERT_NAMES

__all__ = [
    "ALERT_NAMES",
    "Alert",
    "AlertHistory",
    "Alerts",
    "Change",
    "HistoryEntry",
    "Notifier",
    "Rule",
    "RuntimeSignals",
    "SignalHost",
    "Signals",
    "evaluated_rules",
    "webhook_body",
]
