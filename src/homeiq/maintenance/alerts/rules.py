"""The built-in alert rules: each reads a :class:`Signals` snapshot and says, while its
condition holds, what is wrong (else None). The engine fires a rule once the condition
has held for the rule's ``for_s`` and resolves it once it stops holding.

Averages over a window (CPU over 15 minutes, error rate and disk growth over an hour)
are computed before they reach the snapshot (:mod:`homeiq.observability.resources`), so
those rules fire at once: the window already is their duration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeiq.settings.alert import AlertSettings

MIB = 1024 * 1024
DAY_S = 86_400.0
GROWTH_WINDOW_S = 3600.0  # disk growth is judged over the last hour
# Fewer events than this in the error window give no rate: one dead letter among
# three events is not "33 % errors" anyone should be woken for.
ERROR_RATE_MIN_EVENTS = 100


@dataclass(frozen=True, slots=True)
class Signals:
    """What the rules read, gathered once per evaluation. None: not known (yet)."""

    ha_configured: bool = False
    ha_connected: bool = False
    received_since_last: int | None = None  # events since the previous evaluation
    store: str = "sqlite"
    breaker_open: bool = False  # open or half-open: the store refuses writes
    spool_bytes: int = 0
    spool_max_bytes: int = 1
    disk_free_percent: float | None = None
    disk_free_bytes: int | None = None
    growth_bytes_per_s: float | None = None  # database files, over GROWTH_WINDOW_S
    rss_bytes: int | None = None
    cpu_percent: float | None = None  # averaged over the CPU window, % of every core
    error_rate: float | None = None  # a fraction, over the error window
    quality_score: float | None = None  # 0..100


Check = Callable[[Signals], str | None]


@dataclass(frozen=True, slots=True)
class Rule:
    """An evaluated rule: fires after ``check`` said something for ``for_s`` seconds."""

    name: str
    for_s: float
    check: Check


def _minutes(value: float) -> str:
    return f"{value:g} min"


def evaluated_rules(s: AlertSettings) -> list[Rule]:
    """The rules evaluated on the schedule, with their thresholds from ``s`` (those
    turned off by ``HOMEIQ_ALERT_DISABLED`` left out)."""

    def no_events(x: Signals) -> str | None:
        if x.ha_connected and x.received_since_last == 0:
            return (
                f"no event from Home Assistant for {_minutes(s.no_events_minutes)} while"
                " connected: is the subscription alive, or is the home silent?"
            )
        return None

    def ha_disconnected(x: Signals) -> str | None:
        if x.ha_configured and not x.ha_connected:
            return (
                f"Home Assistant unreachable for more than {_minutes(s.ha_disconnected_minutes)}"
                " (reconnecting; backfill refills the gap once it is back)"
            )
        return None

    def store_down(x: Signals) -> str | None:
        if x.breaker_open:
            return (
                f"the {x.store} store refuses writes for more than"
                f" {_minutes(s.store_down_minutes)} (circuit breaker open; events are spooled)"
            )
        return None

    def spool_high(x: Signals) -> str | None:
        used = 100.0 * x.spool_bytes / max(1, x.spool_max_bytes)
        if used > s.spool_percent:
            return (
                f"the spool is {used:.0f} % full ({x.spool_bytes} of {x.spool_max_bytes}"
                " bytes, HOMEIQ_SPOOL_MAX_BYTES): events will be dropped when it is full"
            )
        return None

    def disk_free_low(x: Signals) -> str | None:
        if x.disk_free_percent is not None and x.disk_free_percent < s.disk_free_percent:
            return (
                f"{x.disk_free_percent:.1f} % free on the data directory's disk"
                f" (below {s.disk_free_percent:g} %)"
            )
        return None

    def disk_growth_fast(x: Signals) -> str | None:
        growth, free = x.growth_bytes_per_s, x.disk_free_bytes
        if growth is None or free is None or growth <= 0:
            return None
        days_left = free / growth / DAY_S
        if days_left < s.disk_fill_days:
            return (
                f"the data grew {growth * 3600 / MIB:.1f} MiB in the last hour: at that pace"
                f" the disk is full in {days_left:.1f} days (below {s.disk_fill_days:g})"
            )
        return None

    def rss_high(x: Signals) -> str | None:
        if x.rss_bytes is not None and x.rss_bytes > s.rss_max_mb * MIB:
            return (
                f"HomeIQ uses {x.rss_bytes / MIB:.0f} MiB of memory (limit"
                f" {s.rss_max_mb:g} MiB) for more than {_minutes(s.rss_minutes)}"
            )
        return None

    def cpu_high(x: Signals) -> str | None:
        if x.cpu_percent is not None and x.cpu_percent > s.cpu_percent:
            return (
                f"HomeIQ used {x.cpu_percent:.0f} % of the CPU on average over"
                f" {_minutes(s.cpu_window_minutes)} (limit {s.cpu_percent:g} %)"
            )
        return None

    def error_rate_high(x: Signals) -> str | None:
        if x.error_rate is not None and 100.0 * x.error_rate > s.error_rate_percent:
            return (
                f"{100.0 * x.error_rate:.1f} % of the events received in the last"
                f" {_minutes(s.error_window_minutes)} were dead-lettered or failed to write"
                f" (limit {s.error_rate_percent:g} %)"
            )
        return None

    def quality_low(x: Signals) -> str | None:
        if x.quality_score is not None and x.quality_score < s.quality_min:
            return (
                f"data quality score {x.quality_score:.0f} below {s.quality_min:g} for more"
                f" than {_minutes(s.quality_minutes)} (see homeiq quality)"
            )
        return None

    rules = [
        Rule("no_events", s.no_events_minutes * 60, no_events),
        Rule("ha_disconnected", s.ha_disconnected_minutes * 60, ha_disconnected),
        Rule("store_down", s.store_down_minutes * 60, store_down),
        Rule("spool_high", 0, spool_high),
        Rule("disk_free_low", 0, disk_free_low),
        Rule("disk_growth_fast", 0, disk_growth_fast),
        Rule("rss_high", s.rss_minutes * 60, rss_high),
        Rule("cpu_high", 0, cpu_high),
        Rule("error_rate_high", 0, error_rate_high),
        Rule("quality_low", s.quality_minutes * 60, quality_low),
    ]
    return [rule for rule in rules if s.enabled(rule.name)]
