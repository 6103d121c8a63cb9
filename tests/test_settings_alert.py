"""HOMEIQ_ALERT_*: defaults, the moved webhook and Home Assistant switches, and every
invalid value failing startup with the variable's name."""

from __future__ import annotations

import pytest

from homeiq.errors import ConfigError
from homeiq.settings import load_settings
from homeiq.settings.alert import ALERT_NAMES


def test_defaults_are_those_docs_alerts_md_justifies() -> None:
    alert = load_settings().alert
    assert alert.webhook_url is None and alert.home_assistant is True
    assert alert.disabled == [] and all(alert.enabled(name) for name in ALERT_NAMES)
    assert (alert.cpu_percent, alert.cpu_window_minutes) == (70, 15)
    assert (alert.error_rate_percent, alert.error_window_minutes) == (1, 60)
    assert alert.backup_stale_hours == 26 and alert.evaluate_every_s == 15


def test_environment_names_stay_as_they_were(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEIQ_ALERT_WEBHOOK_URL", " https://hooks.example/x ")
    monkeypatch.setenv("HOMEIQ_ALERT_HOME_ASSISTANT", "false")
    monkeypatch.setenv("HOMEIQ_ALERT_DISABLED", "cpu_high, rss_high")
    monkeypatch.setenv("HOMEIQ_ALERT_STORE_DOWN_MINUTES", "0")
    alert = load_settings().alert
    assert alert.webhook_url == "https://hooks.example/x"
    assert alert.home_assistant is False
    assert alert.disabled == ["cpu_high", "rss_high"] and not alert.enabled("cpu_high")
    assert alert.store_down_minutes == 0  # fire as soon as the breaker opens


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("HOMEIQ_ALERT_NO_EVENTS_MINUTES", "-1", "greater than or equal to 0"),
        ("HOMEIQ_ALERT_HA_DISCONNECTED_MINUTES", "-0.5", "greater than or equal to 0"),
        ("HOMEIQ_ALERT_RSS_MINUTES", "-5", "greater than or equal to 0"),
        ("HOMEIQ_ALERT_CPU_PERCENT", "101", "less than or equal to 100"),
        ("HOMEIQ_ALERT_DISK_FREE_PERCENT", "-3", "greater than or equal to 0"),
        ("HOMEIQ_ALERT_SPOOL_PERCENT", "150", "less than or equal to 100"),
        ("HOMEIQ_ALERT_ERROR_RATE_PERCENT", "200", "less than or equal to 100"),
        ("HOMEIQ_ALERT_QUALITY_MIN", "-1", "greater than or equal to 0"),
        ("HOMEIQ_ALERT_EVALUATE_EVERY_S", "0", "greater than 0"),
        ("HOMEIQ_ALERT_CPU_WINDOW_MINUTES", "0", "greater than 0"),
        ("HOMEIQ_ALERT_WEBHOOK_URL", "ftp://hooks.example/x", "http"),
        ("HOMEIQ_ALERT_DISABLED", "cpu_high,cpu_hgih", "unknown alert cpu_hgih"),
    ],
)
def test_an_invalid_value_fails_startup_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == variable
    assert says in str(info.value)
