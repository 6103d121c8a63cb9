"""The alerts' settings (``HOMEIQ_ALERT_*``): where alerts go, each rule's threshold and
duration, and which rules are off. docs/alerts.md says why each default is what it is."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from homeiq.settings.checks import check_url, split_list

# Every alert HomeIQ can raise: the closed label set of ``homeiq_alerts_active{alert}``.
# The first ten are evaluated from the process's signals on a schedule; the backup ones
# are reported by the backup code as they happen.
ALERT_NAMES = (
    "no_events",
    "ha_disconnected",
    "store_down",
    "spool_high",
    "disk_free_low",
    "disk_growth_fast",
    "rss_high",
    "cpu_high",
    "error_rate_high",
    "quality_low",
    "backup_failed",
    "backup_overdue",
    "backup_verify_failed",
)


def _minutes(default: float, description: str) -> Any:
    return Field(default=default, ge=0, description=description)


def _percent(default: float, description: str) -> Any:
    return Field(default=default, ge=0, le=100, description=description)


class AlertSettings(BaseModel):
    """Alerts; ``HOMEIQ_ALERT_`` + upper-cased field name."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)

    webhook_url: str | None = Field(
        default=None,
        description=(
            "URL that alerts are POSTed to as JSON when they fire and when they resolve."
            " Alerts are also logged, shown in /api/v1/health and /api/v1/alerts, and sent"
            " to Home Assistant."
        ),
    )
    home_assistant: bool = Field(
        default=True,
        description=(
            "Create a persistent notification in Home Assistant (HOMEIQ_HA_URL/TOKEN) for"
            " each alert that fires, and dismiss it when the alert resolves."
        ),
    )
    disabled: list[str] = Field(
        default_factory=list,
        description=(
            "Alert rules turned off, comma-separated, e.g. `cpu_high,rss_high`"
            " (names in docs/alerts.md)."
        ),
    )
    evaluate_every_s: float = Field(
        default=15.0,
        gt=0,
        le=3600,
        description="Seconds between evaluations of the rules (and resource samples).",
    )
    history_days: int = Field(
        default=90, ge=1, description="Days of alert history (fired/resolved) kept."
    )
    history_max_rows: int = Field(
        default=10_000, ge=10, description="At most this many alert history rows are kept."
    )
    no_events_minutes: float = _minutes(
        30, "no_events: no event received for this long while Home Assistant is connected."
    )
    ha_disconnected_minutes: float = _minutes(
        5, "ha_disconnected: Home Assistant unreachable for this long."
    )
    store_down_minutes: float = _minutes(
        2, "store_down: the store's circuit breaker open (writes refused) for this long."
    )
    spool_percent: float = _percent(
        50, "spool_high: the spool holds more than this share of HOMEIQ_SPOOL_MAX_BYTES."
    )
    disk_free_percent: float = _percent(
        10, "disk_free_low: free space of the data dir's file system below this share."
    )
    disk_fill_days: float = Field(
        default=7,
        gt=0,
        description=(
            "disk_growth_fast: the data dir's growth over the last hour, kept up, would"
            " fill the file system within this many days."
        ),
    )
    rss_max_mb: float = Field(
        default=1024,
        gt=0,
        description="rss_high: resident memory of HomeIQ (with its writer process), MiB.",
    )
    rss_minutes: float = _minutes(5, "rss_high: memory above the limit for this long.")
    cpu_percent: float = _percent(
        70,
        "cpu_high: HomeIQ's CPU use, averaged over cpu_window_minutes, above this share"
        " of the machine (every core).",
    )
    cpu_window_minutes: float = Field(
        default=15, gt=0, le=240, description="cpu_high: the averaging window."
    )
    error_rate_percent: float = _percent(
        1, "error_rate_high: dead letters + failed writes over events received, above this."
    )
    error_window_minutes: float = Field(
        default=60, gt=0, le=240, description="error_rate_high: the window the rate is over."
    )
    quality_min: float = _percent(
        80, "quality_low: the overall data-quality score (0..100) below this."
    )
    quality_minutes: float = _minutes(30, "quality_low: the score low for this long.")
    backup_stale_hours: float = Field(
        default=26,
        gt=0,
        description=(
            "backup_overdue: no backup completed for this long while scheduled backups are"
            " on (a day plus two hours' grace for a slow or retried run)."
        ),
    )

    @field_validator("webhook_url")
    @classmethod
    def _check_webhook(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return check_url(value.strip(), ("http", "https"))

    @field_validator("disabled", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("disabled")
    @classmethod
    def _check_names(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in ALERT_NAMES]
        if unknown:
            raise ValueError(f"unknown alert {', '.join(unknown)}; known: {', '.join(ALERT_NAMES)}")
        return value

    def enabled(self, name: str) -> bool:
        """True unless the rule ``name`` is turned off."""
        return name not in self.disabled
