"""The ``ingest`` and ``cleanup`` settings groups: from the environment and TOML, and every
bad value stopping startup with a sentence naming its variable."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from homeiq.errors import ConfigError
from homeiq.settings import ENV_PREFIX, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    yield


def test_ingest_rules_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEIQ_INGEST_INCLUDE_DOMAINS", "sensor, light")
    monkeypatch.setenv("HOMEIQ_INGEST_EXCLUDE_ENTITY_GLOBS", '["sensor.*_rssi"]')
    monkeypatch.setenv("HOMEIQ_INGEST_EXCLUDE_DEVICE_CLASSES", "signal_strength")
    ingest = load_settings().ingest
    assert ingest.include.domains == {"sensor", "light"}
    assert ingest.exclude.entity_globs == ("sensor.*_rssi",)
    assert ingest.exclude.device_classes == {"signal_strength"}
    assert ingest.active
    monkeypatch.delenv("HOMEIQ_INGEST_INCLUDE_DOMAINS")
    monkeypatch.delenv("HOMEIQ_INGEST_EXCLUDE_ENTITY_GLOBS")
    monkeypatch.delenv("HOMEIQ_INGEST_EXCLUDE_DEVICE_CLASSES")
    assert not load_settings().ingest.active


def test_cleanup_rules_from_toml_tables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "homeiq.toml"
    config.write_text(
        "[ingest]\nexclude_domains = ['update']\n\n"
        "[[cleanup.rules]]\nentities = ['sensor.test_*']\nsource = 'simulator'\n"
        "older_than = '7d'\n\n[[cleanup.rules]]\nentities = ['light.demo']\nname = 'demo'\n"
    )
    monkeypatch.setenv("HOMEIQ_CONFIG", str(config))
    settings = load_settings()
    assert settings.ingest.exclude.domains == {"update"}
    first, second = settings.cleanup.rules
    assert (first.entities, first.source, first.older_than_s) == (
        ["sensor.test_*"], "simulator", 7 * 86400.0,
    )  # fmt: skip
    assert second.describe() == "demo: light.demo"


def test_cleanup_rules_from_json_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "HOMEIQ_CLEANUP_RULES", '[{"entities": ["sensor.test_*"], "older_than": "12h"}]'
    )
    (rule,) = load_settings().cleanup.rules
    assert rule.older_than_s == 12 * 3600.0 and rule.source is None


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("HOMEIQ_INGEST_EXCLUDE_DOMAINS", "sensr", "did you mean 'sensor'"),
        ("HOMEIQ_INGEST_INCLUDE_ENTITIES", "sensor", "is not an entity id"),
        ("HOMEIQ_INGEST_INCLUDE_ENTITY_GLOBS", "sensor.[ab", "never closed"),
        ("HOMEIQ_INGEST_EXCLUDE_DEVICE_CLASSES", "Power", "is not a device class"),
        ("HOMEIQ_CLEANUP_RULES", '[{"entities": []}]', "rule 1: entities"),
        ("HOMEIQ_CLEANUP_RULES", '[{"entities": ["a.*"]}, {"entities": ["B"]}]', "rule 2"),
        ("HOMEIQ_CLEANUP_RULES", '[{"entities": ["a.*"], "older_than": "-3d"}]', "older_than"),
        ("HOMEIQ_CLEANUP_RULES", '[{"entities": ["a.*"], "older_than": "0d"}]', "positive"),
        ("HOMEIQ_CLEANUP_RULES", '[{"entities": ["a.*"], "source": "test"}]', "simulator"),
        ("HOMEIQ_CLEANUP_RULES", '[{"entities": ["a.*"], "every": "day"}]', "every"),
        ("HOMEIQ_CLEANUP_RULES", "sensor.test_*", "not a JSON list"),
    ],
)
def test_a_bad_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.setting == variable
    assert message in str(caught.value)
