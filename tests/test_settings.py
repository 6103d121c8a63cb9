"""Settings: defaults, HOMEIQ_* environment, *_FILE secrets, the TOML file, and errors
that name the setting without echoing secrets."""

from __future__ import annotations

import os
import traceback
from pathlib import Path

import orjson
import pytest
from pydantic import SecretStr, ValidationError

from homeiq.errors import ConfigError
from homeiq.settings import (
    CONFIG_FILE_ENV,
    ENV_PREFIX,
    NOT_SETTINGS,
    Settings,
    load_settings,
    redact_url,
    redacted,
    secret_fields,
    settings_table,
)

SECRET = "s3cr3t-long-lived-token-value"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No HOMEIQ_* variable from the outside reaches these tests; monkeypatch restores the
    environment afterwards, so none set here leaks into other tests either."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env or config in the working directory


def test_environment_is_clean() -> None:
    assert [n for n in os.environ if n.startswith(ENV_PREFIX)] == []


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- defaults and the environment ---------------------------------------------------------


def test_defaults() -> None:
    settings = load_settings()
    assert settings.data_dir == Path("homeiq-data")
    assert settings.ha_url is None
    assert settings.ha_token is None
    assert settings.store == "sqlite"
    assert settings.queue_max_events == 50_000
    assert settings.batch_max_events == 5000
    assert settings.batch_max_age_s == 1.0
    assert settings.attributes_max_bytes == 16_384
    assert settings.future_tolerance_s == 300.0
    assert settings.ha_reconnect_min_s == 1.0
    assert settings.ha_reconnect_max_s == 60.0
    assert settings.shutdown_deadline_s == 10.0
    assert settings.log_level == "INFO"
    assert settings.log_format == "text"


def test_environment_with_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOMEIQ_BATCH_MAX_EVENTS", "25")
    monkeypatch.setenv("HOMEIQ_BATCH_MAX_AGE_S", "0.25")
    monkeypatch.setenv("HOMEIQ_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("HOMEIQ_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HOMEIQ_HA_URL", "  http://homeassistant.local:8123/ ")
    monkeypatch.setenv("HOMEIQ_HA_TOKEN", SECRET)
    settings = load_settings()
    assert settings.batch_max_events == 25
    assert settings.batch_max_age_s == 0.25
    assert settings.log_level == "DEBUG"
    assert settings.data_dir == tmp_path / "data"
    assert settings.ha_url == "http://homeassistant.local:8123"
    assert isinstance(settings.ha_token, SecretStr)
    assert settings.ha_token.get_secret_value() == SECRET


def test_unprefixed_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_MAX_EVENTS", "7")
    monkeypatch.setenv("HA_TOKEN", SECRET)
    settings = load_settings()
    assert settings.batch_max_events == 5000
    assert settings.ha_token is None


def test_keyword_arguments_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEIQ_BATCH_MAX_EVENTS", "25")
    assert load_settings(batch_max_events=3).batch_max_events == 3


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.batch_max_events = 5  # type: ignore[misc]
    assert settings.batch_max_events == 5000


# -- *_FILE secrets -------------------------------------------------------------------------


def test_token_file_is_read_and_stripped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    token_file = write(tmp_path / "token", f"{SECRET}\n")
    monkeypatch.setenv("HOMEIQ_HA_TOKEN_FILE", str(token_file))
    settings = load_settings()
    assert settings.ha_token is not None
    assert settings.ha_token.get_secret_value() == SECRET


def test_token_file_with_crlf_and_spaces(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    token_file = write(tmp_path / "token", f"  {SECRET} \r\n\n")
    monkeypatch.setenv("HOMEIQ_HA_TOKEN_FILE", str(token_file))
    token = load_settings().ha_token
    assert token is not None
    assert token.get_secret_value() == SECRET


def test_token_env_beats_token_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOMEIQ_HA_TOKEN_FILE", str(write(tmp_path / "token", "from-file")))
    monkeypatch.setenv("HOMEIQ_HA_TOKEN", "from-env")
    token = load_settings().ha_token
    assert token is not None
    assert token.get_secret_value() == "from-env"


def test_token_file_beats_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CONFIG_FILE_ENV, str(write(tmp_path / "c.toml", 'ha_token = "from-toml"\n')))
    monkeypatch.setenv("HOMEIQ_HA_TOKEN_FILE", str(write(tmp_path / "token", "from-file")))
    token = load_settings().ha_token
    assert token is not None
    assert token.get_secret_value() == "from-file"


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_unreadable_token_file_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "no-such-token"
    if kind == "directory":
        path.mkdir()
    monkeypatch.setenv("HOMEIQ_HA_TOKEN_FILE", str(path))
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == "HOMEIQ_HA_TOKEN_FILE"
    assert str(info.value).startswith("HOMEIQ_HA_TOKEN_FILE: cannot read ")
    assert str(path) in str(info.value)


def test_empty_token_file_variable_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEIQ_HA_TOKEN_FILE", "")
    assert load_settings().ha_token is None


# -- the TOML file ----------------------------------------------------------------------------


def test_toml_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = write(
        tmp_path / "homeiq.toml",
        'ha_url = "https://ha.example:8123/"\n'
        "batch_max_events = 42\n"
        'LOG_FORMAT = "json"\n'
        f'data_dir = "{tmp_path / "d"}"\n',
    )
    monkeypatch.setenv(CONFIG_FILE_ENV, str(config))
    settings = load_settings()
    assert settings.ha_url == "https://ha.example:8123"
    assert settings.batch_max_events == 42
    assert settings.log_format == "json"
    assert settings.data_dir == tmp_path / "d"
    assert settings.batch_max_age_s == 1.0  # untouched default


def test_environment_beats_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = write(tmp_path / "homeiq.toml", "batch_max_events = 42\nqueue_max_events = 9\n")
    monkeypatch.setenv(CONFIG_FILE_ENV, str(config))
    monkeypatch.setenv("HOMEIQ_BATCH_MAX_EVENTS", "7")
    settings = load_settings()
    assert settings.batch_max_events == 7
    assert settings.queue_max_events == 9


def test_invalid_toml_names_homeiq_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = write(tmp_path / "bad.toml", "batch_max_events = = 3\n")
    monkeypatch.setenv(CONFIG_FILE_ENV, str(config))
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == "HOMEIQ_CONFIG"
    assert "not valid TOML" in str(info.value)
    assert str(config) in str(info.value)


def test_missing_toml_names_homeiq_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CONFIG_FILE_ENV, str(tmp_path / "absent.toml"))
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == "HOMEIQ_CONFIG"
    assert "cannot read" in str(info.value)


def test_unknown_toml_key_is_rejected(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = write(tmp_path / "homeiq.toml", "batch_max_events = 5\nbatch_max_evnets = 6\n")
    monkeypatch.setenv(CONFIG_FILE_ENV, str(config))
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == "HOMEIQ_BATCH_MAX_EVNETS"
    assert "HOMEIQ_BATCH_MAX_EVNETS" in str(info.value)


def test_invalid_value_in_toml_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = write(tmp_path / "homeiq.toml", 'log_format = "xml"\n')
    monkeypatch.setenv(CONFIG_FILE_ENV, str(config))
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == "HOMEIQ_LOG_FORMAT"
    assert "'xml'" in str(info.value)


# -- invalid values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HOMEIQ_BATCH_MAX_EVENTS", "0"),
        ("HOMEIQ_BATCH_MAX_EVENTS", "-5"),
        ("HOMEIQ_BATCH_MAX_EVENTS", "lots"),
        ("HOMEIQ_BATCH_MAX_AGE_S", "0"),
        ("HOMEIQ_QUEUE_MAX_EVENTS", "1.5"),
        ("HOMEIQ_ATTRIBUTES_MAX_BYTES", "-1"),
        ("HOMEIQ_FUTURE_TOLERANCE_S", "-0.1"),
        ("HOMEIQ_HA_HEARTBEAT_S", "nan-ish"),
        ("HOMEIQ_LOG_LEVEL", "LOUD"),
        ("HOMEIQ_LOG_FORMAT", "xml"),
        ("HOMEIQ_STORE", "postgres"),
        ("HOMEIQ_HA_URL", "homeassistant.local:8123"),
        ("HOMEIQ_HA_URL", "ftp://homeassistant.local"),
    ],
)
def test_invalid_value_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == variable
    assert str(info.value).startswith(f"{variable}: ")
    assert repr(value) in str(info.value)


def test_all_problems_are_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEIQ_BATCH_MAX_EVENTS", "0")
    monkeypatch.setenv("HOMEIQ_LOG_LEVEL", "LOUD")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message == (
        "HOMEIQ_BATCH_MAX_EVENTS: Input should be greater than 0 (got '0')."
        " Also HOMEIQ_LOG_LEVEL: Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'"
        " (got 'LOUD')"
    )


def test_one_problem_is_said_once_without_pydantic_wording(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOMEIQ_HA_URL", "ftp://ha.local")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == (
        "HOMEIQ_HA_URL: must start with http://, https://, ws:// or wss:// (got 'ftp://ha.local')"
    )


def test_invalid_keyword_argument_names_the_setting() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(batch_max_events=0)
    assert info.value.setting == "HOMEIQ_BATCH_MAX_EVENTS"


def test_invalid_secret_is_not_echoed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A token that fails validation (here: a TOML array instead of a string).
    config = write(tmp_path / "homeiq.toml", f'ha_token = ["{SECRET}"]\n')
    monkeypatch.setenv(CONFIG_FILE_ENV, str(config))
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == "HOMEIQ_HA_TOKEN"
    assert SECRET not in str(info.value)
    assert "<redacted>" in str(info.value)


def test_secret_not_echoed_when_another_setting_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEIQ_HA_TOKEN", SECRET)
    monkeypatch.setenv("HOMEIQ_BATCH_MAX_EVENTS", "0")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert SECRET not in str(info.value)


def test_invalid_secret_is_not_in_the_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = write(tmp_path / "homeiq.toml", f'ha_token = ["{SECRET}"]\n')
    monkeypatch.setenv(CONFIG_FILE_ENV, str(config))
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert SECRET not in "".join(traceback.format_exception(info.value))


# -- redaction and documentation --------------------------------------------------------------


def test_redacted_hides_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEIQ_HA_TOKEN", SECRET)
    monkeypatch.setenv("HOMEIQ_HA_URL", "http://ha:8123")
    settings = load_settings()
    shown = redacted(settings)
    assert shown["ha_token"] == "<redacted>"
    assert shown["ha_url"] == "http://ha:8123"
    assert shown["batch_max_events"] == 5000
    assert list(shown) == [setting.name for setting in settings_table(Settings)]
    assert SECRET not in orjson.dumps(shown).decode()
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.model_dump())


def test_redacted_keeps_an_absent_token_absent() -> None:
    assert redacted(load_settings())["ha_token"] is None


def test_secret_fields() -> None:
    assert secret_fields() == [
        "ha_token",
        "influxdb_token",
        "influxdb_password",
        "backup_passphrase",
    ]


def test_every_field_has_a_description() -> None:
    """docs/settings.md is generated from these; an undocumented setting fails here."""
    missing = [
        setting.name
        for setting in settings_table(Settings)
        if not (setting.info.description and setting.info.description.strip())
    ]
    assert missing == []
    assert len(settings_table(Settings)) >= 15


def test_influxdb_store_needs_its_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEIQ_STORE", "influxdb")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.setting == "HOMEIQ_INFLUXDB_URL"


def test_influxdb_v2_names_each_missing_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEIQ_STORE", "influxdb")
    monkeypatch.setenv("HOMEIQ_INFLUXDB_URL", "http://127.0.0.1:8086/")
    monkeypatch.setenv("HOMEIQ_INFLUXDB_API", "v2")
    monkeypatch.setenv("HOMEIQ_INFLUXDB_BUCKET", "home")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.setting == "HOMEIQ_INFLUXDB_ORG"


def test_influxdb_credentials_from_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "user").write_text("homeiq\n")
    (tmp_path / "password").write_text("s3cret\n")
    monkeypatch.setenv("HOMEIQ_STORE", "influxdb")
    monkeypatch.setenv("HOMEIQ_INFLUXDB_URL", "http://127.0.0.1:8086/")
    monkeypatch.setenv("HOMEIQ_INFLUXDB_USERNAME_FILE", str(tmp_path / "user"))
    monkeypatch.setenv("HOMEIQ_INFLUXDB_PASSWORD_FILE", str(tmp_path / "password"))
    settings = load_settings()
    assert settings.influxdb.url == "http://127.0.0.1:8086"
    assert settings.influxdb.username == "homeiq"
    assert settings.influxdb.password is not None
    assert settings.influxdb.password.get_secret_value() == "s3cret"
    assert redacted(settings)["influxdb_password"] == "<redacted>"


# -- the API ------------------------------------------------------------------------------------


def test_api_defaults_are_safe() -> None:
    settings = load_settings()
    assert settings.api.enabled is True
    assert settings.api.host == "127.0.0.1"
    assert settings.api.port == 8642
    assert settings.api.cors_origins == []
    assert settings.api.rate_limit_read == "100/minute;20/second"
    assert settings.api.rate_limit_ip == "300/minute;50/second"
    assert settings.api.max_body_bytes == 1_048_576
    assert settings.api.max_query_bytes == 4096


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://dash.example:8443", ["https://dash.example:8443"]),
        (" http://a.lan , https://b.lan/ ", ["http://a.lan", "https://b.lan"]),
        ('["http://a.lan", "http://b.lan:3000"]', ["http://a.lan", "http://b.lan:3000"]),
        ("", []),
    ],
)
def test_cors_origins_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]
) -> None:
    monkeypatch.setenv("HOMEIQ_API_CORS_ORIGINS", value)
    assert load_settings().api.cors_origins == expected


def test_cors_origins_from_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", 'api_cors_origins = ["https://dash.example"]\n')
    monkeypatch.setenv(CONFIG_FILE_ENV, str(config))
    assert load_settings().api.cors_origins == ["https://dash.example"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HOMEIQ_API_CORS_ORIGINS", "*"),
        ("HOMEIQ_API_CORS_ORIGINS", "dash.example"),
        ("HOMEIQ_API_CORS_ORIGINS", "https://dash.example/app"),
        ("HOMEIQ_API_CORS_ORIGINS", '["http://a.lan"'),
        ("HOMEIQ_API_RATE_LIMIT_READ", "lots"),
        ("HOMEIQ_API_RATE_LIMIT_IP", "100 per fortnight"),
        ("HOMEIQ_API_PORT", "65536"),
        ("HOMEIQ_API_PORT", "-1"),
        ("HOMEIQ_API_MAX_BODY_BYTES", "10"),
        ("HOMEIQ_API_MAX_QUERY_BYTES", "0"),
    ],
)
def test_invalid_api_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == variable


def test_rate_limits_take_a_sustained_rate_and_a_burst(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEIQ_API_RATE_LIMIT_ADMIN", "10/minute;2/second")
    monkeypatch.setenv("HOMEIQ_API_ENABLED", "false")
    settings = load_settings()
    assert settings.api.rate_limit_admin == "10/minute;2/second"
    assert settings.api.enabled is False


def test_backup_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("a long passphrase\n")
    monkeypatch.setenv("HOMEIQ_BACKUP_TARGETS", "file:///mnt/nas/homeiq, s3://bucket/prefix")
    monkeypatch.setenv("HOMEIQ_BACKUP_PASSPHRASE_FILE", str(passphrase))
    monkeypatch.setenv("HOMEIQ_BACKUP_SCHEDULE", "04:15")
    monkeypatch.setenv("HOMEIQ_BACKUP_KEEP_DAILY", "3")
    settings = load_settings()
    assert settings.backup.targets == ["file:///mnt/nas/homeiq", "s3://bucket/prefix"]
    assert settings.backup.passphrase is not None
    assert settings.backup.passphrase.get_secret_value() == "a long passphrase"
    assert (settings.backup.schedule, settings.backup.keep_daily) == ("04:15", 3)
    assert "a long passphrase" not in orjson.dumps(redacted(settings)).decode()


def test_recipients_and_a_passphrase_together_name_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOMEIQ_BACKUP_RECIPIENTS", "age1abc")
    monkeypatch.setenv("HOMEIQ_BACKUP_PASSPHRASE", "secret")
    with pytest.raises(ConfigError, match="HOMEIQ_BACKUP_RECIPIENTS"):
        load_settings()


def test_a_bad_backup_target_stops_startup_naming_the_setting(tmp_path: Path) -> None:
    from homeiq.runtime import Runtime

    with pytest.raises(ConfigError, match="HOMEIQ_BACKUP_TARGETS"):
        Runtime(Settings(data_dir=tmp_path, backup={"targets": ["ftp://nas/backups"]}))


# -- unknown variables, URLs and redaction ---------------------------------------------


@pytest.mark.parametrize(
    ("variable", "suggestion"),
    [
        ("HOMEIQ_STOER", "HOMEIQ_STORE"),
        ("HOMEIQ_HA_TOKN", "HOMEIQ_HA_TOKEN"),
        ("HOMEIQ_HA_TOKEN_FLE", "HOMEIQ_HA_TOKEN_FILE"),
        ("HOMEIQ_BATCH_MAX_EVNETS", "HOMEIQ_BATCH_MAX_EVENTS"),
    ],
)
def test_an_unknown_variable_is_refused_with_the_closest_name(
    monkeypatch: pytest.MonkeyPatch, variable: str, suggestion: str
) -> None:
    monkeypatch.setenv(variable, "x")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == variable
    assert f"unknown setting; did you mean {suggestion}?" in str(info.value)


def test_an_unknown_variable_far_from_any_name_points_at_the_docs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOMEIQ_ZZZZZZZZZZZZZZZZZZZZ", "1")
    with pytest.raises(ConfigError, match=r"unknown setting; see docs/settings\.md"):
        load_settings()


def test_variables_that_are_not_settings_are_allowed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in NOT_SETTINGS - {CONFIG_FILE_ENV, "HOMEIQ_ALLOW_UNKNOWN"}:
        monkeypatch.setenv(name, "anything")
    # Every *_FILE of a file field is a way to give that field, not an unknown name.
    token = write(tmp_path / "token", SECRET)
    monkeypatch.setenv("HOMEIQ_HA_TOKEN_FILE", str(token))
    monkeypatch.setenv("HOMEIQ_INFLUXDB_USERNAME_FILE", str(write(tmp_path / "user", "bob")))
    settings = load_settings()
    assert settings.influxdb.username == "bob"


def test_allow_unknown_lets_named_variables_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEIQ_MY_SCRIPT_FLAG", "1")
    monkeypatch.setenv("HOMEIQ_OTHER", "2")
    monkeypatch.setenv("HOMEIQ_ALLOW_UNKNOWN", "HOMEIQ_MY_SCRIPT_FLAG")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == "HOMEIQ_OTHER"
    monkeypatch.setenv("HOMEIQ_ALLOW_UNKNOWN", "HOMEIQ_MY_SCRIPT_FLAG, homeiq_other")
    assert load_settings().allow_unknown == ["HOMEIQ_MY_SCRIPT_FLAG", "homeiq_other"]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("HOMEIQ_HA_URL", "http://127.0.0.1:abc", "has a port that is not a number"),
        ("HOMEIQ_HA_URL", "ws://127.0.0.1:70000", "has a port that is not a number"),
        ("HOMEIQ_HA_URL", "http://:8123", "has no host name"),
        ("HOMEIQ_INFLUXDB_URL", "http://127.0.0.1:8o86", "has a port that is not a number"),
        ("HOMEIQ_ALERT_WEBHOOK_URL", "https://hooks.example:-1/x", "port that is not"),
        ("HOMEIQ_ALERT_WEBHOOK_URL", "hooks.example/x", "must start with http:// or https://"),
        ("HOMEIQ_API_CORS_ORIGINS", "http://*.example", "wildcards never match"),
        ("HOMEIQ_API_CORS_ORIGINS", "https://*", "wildcards never match"),
        ("HOMEIQ_API_CORS_ORIGINS", "https://dash.example:x", "port that is not a number"),
    ],
)
def test_bad_urls_fail_at_startup_in_one_sentence(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert info.value.setting == variable
    assert message in text
    assert "Value error" not in text and "Also" not in text
    assert text.count(value) == 1  # said once, not repeated


def test_a_bad_url_message_does_not_show_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEIQ_INFLUXDB_URL", "http://admin:hunter2pw@127.0.0.1:80x")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "hunter2pw" not in str(info.value)
    assert "admin:***@127.0.0.1:80x" in str(info.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://user:pw@host:8086/x", "http://user:***@host:8086/x"),
        ("http://user@host", "http://user@host"),
        ("https://host/hook?token=abc&b=2", "https://host/hook?token=***&b=2"),
        ("https://host/h?access_token=a&KEY=k&x=y", "https://host/h?access_token=***&KEY=***&x=y"),
        ("https://u:p@host/h?api_key=1", "https://u:***@host/h?api_key=***"),
        ("http://host:8123", "http://host:8123"),
        ("not a url", "not a url"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redacted_hides_passwords_inside_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    # An InfluxDB URL cannot hold credentials any more (refused below); the others can.
    monkeypatch.setenv("HOMEIQ_ALERT_WEBHOOK_URL", "https://hooks.example/x?token=tok-456")
    monkeypatch.setenv("HOMEIQ_HA_URL", "http://ha:ha-pw-789@ha.local:8123")
    data = redacted(load_settings())
    dumped = orjson.dumps(data).decode()
    for secret in ("tok-456", "ha-pw-789"):
        assert secret not in dumped
    assert data["alert_webhook_url"] == "https://hooks.example/x?token=***"
    assert data["ha_url"] == "http://ha:***@ha.local:8123"
