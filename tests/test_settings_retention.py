"""The retention settings: defaults, overrides from TOML and the environment, and every
invalid rule failing startup with the setting's name."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homeiq.errors import ConfigError
from homeiq.settings import load_settings
from homeiq.settings.retention import DAY_US, keep_days, keep_us, tier_order_problem


def test_defaults() -> None:
    retention = load_settings().retention
    assert retention.keeps() == {
        "raw": 365,
        "five_minute": 730,
        "hourly": "forever",
        "daily": "forever",
    }
    assert retention.schedule == "04:15"
    assert not retention.influxdb_manage


def test_overrides_from_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "homeiq.toml"
    config.write_text(
        '[retention]\nraw_days = "400"\nfive_minute_days = "forever"\n'
        '[[retention.overrides]]\nentities = ["sensor.*_power"]\nraw_days = 30\n'
        '[[retention.overrides]]\ndomains = ["sensor", "binary_sensor"]\nraw_days = 90\n'
        "five_minute_days = 180\n"
    )
    monkeypatch.setenv("HOMEIQ_CONFIG", str(config))
    retention = load_settings().retention
    assert retention.keeps_for("sensor.kitchen_power")["raw"] == 30  # the first that matches
    assert retention.keeps_for("sensor.kitchen_power")["five_minute"] == "forever"
    assert retention.keeps_for("sensor.kitchen_temp") == {
        "raw": 90,
        "five_minute": 180,
        "hourly": "forever",
        "daily": "forever",
    }
    assert retention.keeps_for("light.hall")["raw"] == 400


def test_overrides_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "HOMEIQ_RETENTION_OVERRIDES", '[{"entities": ["switch.test_*"], "raw_days": "7"}]'
    )
    monkeypatch.setenv("HOMEIQ_RETENTION_HOURLY_DAYS", "Forever")
    retention = load_settings().retention
    assert retention.keeps_for("switch.test_1")["raw"] == 7
    assert retention.keeps_for("switch.real")["raw"] == 365


@pytest.mark.parametrize(
    ("values", "setting", "words"),
    [
        ({"retention_raw_days": -1}, "HOMEIQ_RETENTION_RAW_DAYS", "at least 1 day"),
        ({"retention_raw_days": 0}, "HOMEIQ_RETENTION_RAW_DAYS", "at least 1 day"),
        ({"retention_hourly_days": "soon"}, "HOMEIQ_RETENTION_HOURLY_DAYS", "or forever"),
        ({"retention_raw_days": 800}, "HOMEIQ_RETENTION_FIVE_MINUTE_DAYS", "shorter than"),
        (
            {"retention_hourly_days": 1000, "retention_daily_days": 900},
            "HOMEIQ_RETENTION_DAILY_DAYS",
            "shorter than",
        ),
        (
            {"retention_overrides": [{"domains": ["sensr"], "raw_days": 3}]},
            "HOMEIQ_RETENTION_OVERRIDES",
            "unknown domain 'sensr'",
        ),
        (
            {"retention_overrides": [{"entities": ["sensor.[ab"], "raw_days": 3}]},
            "HOMEIQ_RETENTION_OVERRIDES",
            "never closed",
        ),
        (
            {"retention_overrides": [{"entities": ["sensor.*"], "raw_days": -5}]},
            "HOMEIQ_RETENTION_OVERRIDES",
            "at least 1 day",
        ),
        (
            {"retention_overrides": [{"entities": ["sensor.*"], "five_minute_days": 10}]},
            "HOMEIQ_RETENTION_OVERRIDES",
            "override 1 (glob sensor.*): five_minute is kept 10 days",
        ),
        (
            {"retention_overrides": [{"entities": ["sensor.*"]}]},
            "HOMEIQ_RETENTION_OVERRIDES",
            "sets no keep period",
        ),
        (
            {"retention_overrides": [{"raw_days": 3}]},
            "HOMEIQ_RETENTION_OVERRIDES",
            "names no entities",
        ),
        (
            {"retention_overrides": [{"entities": ["sensor.*"], "raw": 3}]},
            "HOMEIQ_RETENTION_OVERRIDES",
            "raw",
        ),
        ({"retention_overrides": "[{"}, "HOMEIQ_RETENTION_OVERRIDES", "not a JSON list"),
        ({"retention_chunk_rows": 10}, "HOMEIQ_RETENTION_CHUNK_ROWS", "100"),
        ({"retention_chunk_rows": 10**7}, "HOMEIQ_RETENTION_CHUNK_ROWS", "100000"),
        ({"retention_schedule": "4pm"}, "HOMEIQ_RETENTION_SCHEDULE", "HH:MM"),
    ],
)
def test_invalid_rules_fail_naming_the_setting(
    values: dict[str, object], setting: str, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(**values)
    assert caught.value.setting == setting
    assert words in str(caught.value)


@given(st.integers(min_value=1, max_value=10**6))
def test_days_parse_as_written(days: int) -> None:
    assert keep_days(days) == keep_days(str(days)) == keep_days(f" {days} ") == days
    assert keep_us(days) == days * DAY_US


@given(st.lists(st.one_of(st.integers(1, 5000), st.just("forever")), min_size=4, max_size=4))
def test_tier_order_is_a_non_decreasing_keep(keeps: list[int | str]) -> None:
    by_tier = dict(zip(("raw", "five_minute", "hourly", "daily"), keeps, strict=True))
    as_days = [10**9 if k == "forever" else int(k) for k in keeps]
    ordered = all(a <= b for a, b in itertools.pairwise(as_days))
    assert (tier_order_problem(by_tier) is None) == ordered  # type: ignore[arg-type]
