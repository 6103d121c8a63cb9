"""The nested settings groups (settings.influxdb, .api, .backup) read by their flat names:
HOMEIQ_* variables, *_FILE secrets, TOML keys or tables, keyword arguments; and every
error names the variable a user would set."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
from pydantic import SecretStr, ValidationError

from homeiq.errors import ConfigError
from homeiq.settings import (
    CONFIG_FILE_ENV,
    ENV_PREFIX,
    ApiSettings,
    BackupSettings,
    InfluxDBSettings,
    Settings,
    flat_settings,
    load_settings,
    redacted,
    secret_values,
    settings_table,
)
from homeiq.sinks.influxdb.escaping import escape_measurement


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str) -> None:
    path = tmp_path / "homeiq.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv(CONFIG_FILE_ENV, str(path))


def test_every_group_field_has_its_flat_variable() -> None:
    table = {s.env: s.path for s in settings_table(Settings)}
    for group, model in (("influxdb", InfluxDBSettings), ("api", ApiSettings)):
        for field in model.model_fields:
            assert table[f"HOMEIQ_{group.upper()}_{field.upper()}"] == (group, field)
    for field in BackupSettings.model_fields:
        assert table[f"HOMEIQ_BACKUP_{field.upper()}"] == ("backup", field)
    assert table["HOMEIQ_DATA_DIR"] == ("data_dir",)
    assert "HOMEIQ_INFLUXDB" not in table  # a group is not a setting of its own


def test_grouped_variables_reach_their_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEIQ_INFLUXDB_BATCH_MAX_BYTES", "2048")
    monkeypatch.setenv("HOMEIQ_INFLUXDB_URL", "http://127.0.0.1:8086/")
    monkeypatch.setenv("HOMEIQ_API_PORT", "9000")
    monkeypatch.setenv("HOMEIQ_API_TRUSTED_PROXIES", "10.0.0.1")
    monkeypatch.setenv("HOMEIQ_BACKUP_KEEP_WEEKLY", "2")
    monkeypatch.setenv("HOMEIQ_BACKUP_INFLUXDB_NATIVE", "true")
    monkeypatch.setenv("homeiq_backfill_overlap_s", "5")  # names are case-insensitive
    monkeypatch.setenv("HOMEIQ_API_KEY", "a key kept in the shell")  # not a setting
    settings = load_settings()
    assert settings.influxdb.batch_max_bytes == 2048
    assert settings.influxdb.url == "http://127.0.0.1:8086"
    assert (settings.api.port, settings.api.trusted_proxies) == (9000, ["10.0.0.1/32"])
    assert (settings.backup.keep_weekly, settings.backup.influxdb_native) == (2, True)
    assert (settings.backfill, settings.backfill_overlap_s) == (True, 5.0)


def test_a_typo_in_a_grouped_variable_names_the_closest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEIQ_INFLUXDB_URLL", "http://127.0.0.1:8086")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == "HOMEIQ_INFLUXDB_URLL"
    assert "did you mean HOMEIQ_INFLUXDB_URL?" in str(info.value)


def test_toml_takes_flat_keys_and_tables_merged(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    toml(
        monkeypatch,
        tmp_path,
        'influxdb_database = "flat"\nAPI_PORT = 9001\nbatch_max_events = 9\n'
        '[influxdb]\nurl = "http://127.0.0.1:8086"\nmeasurement = "m"\n'
        '[backup]\ntargets = ["file:///nas"]\n',
    )
    monkeypatch.setenv("HOMEIQ_INFLUXDB_MEASUREMENT", "from_env")  # beats the file
    settings = load_settings()
    assert settings.influxdb.database == "flat"
    assert settings.influxdb.url == "http://127.0.0.1:8086"
    assert settings.influxdb.measurement == "from_env"
    assert settings.api.port == 9001
    assert settings.backup.targets == ["file:///nas"]
    assert settings.batch_max_events == 9


@pytest.mark.parametrize(
    ("text", "variable"),
    [
        ("influxdb_urll = 'http://h:1'\n", "HOMEIQ_INFLUXDB_URLL"),
        ("[influxdb]\nurll = 'http://h:1'\n", "HOMEIQ_INFLUXDB_URLL"),
        ("[api]\nport = 'x'\n", "HOMEIQ_API_PORT"),
        ("api_port = 'x'\n", "HOMEIQ_API_PORT"),
        ("[backup]\nkeep_daily = -1\n", "HOMEIQ_BACKUP_KEEP_DAILY"),
    ],
)
def test_toml_errors_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str, variable: str
) -> None:
    toml(monkeypatch, tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == variable
    assert str(info.value).startswith(f"{variable}: ")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HOMEIQ_INFLUXDB_TIMEOUT_S", "0"),
        ("HOMEIQ_INFLUXDB_API", "v3"),
        ("HOMEIQ_INFLUXDB_USERNAME", "a:b"),
        ("HOMEIQ_INFLUXDB_MEASUREMENT", "#comment"),
        ("HOMEIQ_API_HOST", ""),
        ("HOMEIQ_API_TRUSTED_PROXIES", "proxy.example"),
        ("HOMEIQ_BACKUP_VERIFY_WEEKDAY", "someday"),
        ("HOMEIQ_BACKUP_SCHEDULE", "25:00"),
    ],
)
def test_environment_errors_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == variable
    assert str(info.value).startswith(f"{variable}: ")


def test_keyword_errors_name_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(influxdb={"timeout_s": 0})
    assert info.value.setting == "HOMEIQ_INFLUXDB_TIMEOUT_S"
    with pytest.raises(ConfigError) as info:
        load_settings(api_max_body_bytes=10)
    assert info.value.setting == "HOMEIQ_API_MAX_BODY_BYTES"


def test_a_grouped_secret_is_never_echoed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    toml(monkeypatch, tmp_path, '[influxdb]\ntoken = ["tok-in-a-list"]\n')
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == "HOMEIQ_INFLUXDB_TOKEN"
    assert "tok-in-a-list" not in str(info.value) and "<redacted>" in str(info.value)


def test_credentials_in_the_influxdb_url_are_refused_unshown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOMEIQ_INFLUXDB_URL", "http://reader:influx-pw-123@127.0.0.1:8086")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == "HOMEIQ_INFLUXDB_URL"
    assert "must not contain credentials" in str(info.value)
    assert "influx-pw-123" not in str(info.value)


def test_grouped_secrets_from_files_beat_the_toml_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    toml(monkeypatch, tmp_path, '[influxdb]\ntoken = "from-toml"\n[backup]\npassphrase = "toml"\n')
    (tmp_path / "token").write_text("from-file\n")
    (tmp_path / "pass").write_text("a passphrase from a file\n")
    monkeypatch.setenv("HOMEIQ_INFLUXDB_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("HOMEIQ_BACKUP_PASSPHRASE_FILE", str(tmp_path / "pass"))
    settings = load_settings()
    assert settings.influxdb.token == SecretStr("from-file")
    assert settings.backup.passphrase == SecretStr("a passphrase from a file")
    assert sorted(secret_values(settings)) == ["a passphrase from a file", "from-file"]


def test_keyword_arguments_take_flat_names_groups_and_merge_with_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOMEIQ_INFLUXDB_URL", "http://127.0.0.1:8086")
    monkeypatch.setenv("HOMEIQ_INFLUXDB_DATABASE", "from_env")
    group = {"database": "from_kwargs"}
    settings = load_settings(influxdb=group, influxdb_gzip=False, api={"port": 1})
    assert settings.influxdb.url == "http://127.0.0.1:8086"
    assert (settings.influxdb.database, settings.influxdb.gzip) == ("from_kwargs", False)
    assert settings.api.port == 1
    assert group == {"database": "from_kwargs"}  # the caller's dict is left alone
    built = InfluxDBSettings(url="http://127.0.0.1:1", database="d")
    merged = load_settings(influxdb=built, influxdb_measurement="m")
    assert (merged.influxdb.database, merged.influxdb.measurement) == ("d", "m")


def test_v2_needs_its_bucket_whatever_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEIQ_INFLUXDB_API", "v2")
    monkeypatch.setenv("HOMEIQ_INFLUXDB_ORG", "o")
    monkeypatch.setenv("HOMEIQ_INFLUXDB_TOKEN", "t")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == "HOMEIQ_INFLUXDB_BUCKET: is required when HOMEIQ_INFLUXDB_API=v2"


def test_the_groups_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.influxdb.database = "other"  # type: ignore[misc]


def test_config_show_and_archives_keep_flat_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEIQ_INFLUXDB_PASSWORD", "pw-456")
    monkeypatch.setenv("HOMEIQ_API_CORS_ORIGINS", "https://dash.example")
    settings = load_settings()
    shown = redacted(settings)
    assert shown["influxdb_password"] == "<redacted>"
    assert shown["api_cors_origins"] == ["https://dash.example"]
    assert shown["backup_keep_daily"] == 7
    assert "influxdb" not in shown and "pw-456" not in orjson.dumps(shown).decode()
    assert flat_settings(settings).keys() == shown.keys()


@pytest.mark.parametrize("name", ["m", "with space", "a,b", "tab\tinside", "#x", "x\\", "a\nb"])
def test_the_measurement_setting_and_the_escaper_agree(name: str) -> None:
    try:
        escape_measurement(name)
    except ValueError:
        with pytest.raises(ValidationError):
            InfluxDBSettings(measurement=name)
    else:
        assert InfluxDBSettings(measurement=name).measurement == name
