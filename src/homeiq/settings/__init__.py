"""All of HomeIQ's configuration: one pydantic-settings model with nested groups.

``settings.influxdb`` (:class:`InfluxDBSettings`), ``settings.api`` (:class:`ApiSettings`)
and ``settings.backup`` (:class:`BackupSettings`) hold their groups; everything else is a
flat field of :class:`Settings`. Users keep writing flat names: ``HOMEIQ_INFLUXDB_URL``,
``influxdb_url`` in TOML, the same keys in ``config show``.

Validation lives in the models, once: an unknown ``HOMEIQ_*`` variable (a typo would
otherwise be ignored silently) is refused with the closest valid name, unless it is one
of :data:`NOT_SETTINGS` or listed in ``HOMEIQ_ALLOW_UNKNOWN``; URLs are checked down to
their port; every problem is reported as one sentence naming the variable.
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr, ValidationError

from homeiq.errors import ConfigError
from homeiq.settings.api import ApiSettings
from homeiq.settings.backup import BackupSettings
from homeiq.settings.checks import ENV_PREFIX, check_url, daily_time, env_name, redact_url
from homeiq.settings.core import Settings
from homeiq.settings.influxdb import InfluxDBSettings
from homeiq.settings.retention import RetentionSettings
from homeiq.settings.sources import (
    ALLOW_UNKNOWN_ENV,
    CONFIG_FILE_ENV,
    NOT_SETTINGS,
    Setting,
    settings_table,
)

__all__ = [
    "ALLOW_UNKNOWN_ENV",
    "CONFIG_FILE_ENV",
    "ENV_PREFIX",
    "NOT_SETTINGS",
    "ApiSettings",
    "BackupSettings",
    "InfluxDBSettings",
    "RetentionSettings",
    "Setting",
    "Settings",
    "check_url",
    "daily_time",
    "env_name",
    "file_fields",
    "flat_settings",
    "load_settings",
    "redact_url",
    "redacted",
    "secret_fields",
    "secret_values",
    "settings_table",
]


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning validation errors into a ConfigError naming the variable.

    ``overrides`` are field values, groups as dicts or models:
    ``load_settings(store="influxdb", influxdb={"url": ...})``.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        errors = exc.errors()
        described = [_describe(err) for err in errors]
        name, first = described[0]
        others = "; ".join(f"{n}: {m}" for n, m in described[1:])
        # `from None`: pydantic's own text repeats every input, secrets included.
        raise ConfigError(name, first + (f". Also {others}" if others else "")) from None


def _describe(error: Any) -> tuple[str, str]:
    """(variable, one sentence) for one pydantic error, without pydantic's wording."""
    # ("influxdb", "url") is HOMEIQ_INFLUXDB_URL; list positions are not part of the name.
    path = tuple(str(part) for part in error["loc"] if isinstance(part, str))
    name = env_name(*path) if path else f"{ENV_PREFIX}?"
    message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    given = error.get("input")
    if "_".join(path) in secret_fields():
        given = "<redacted>"
    elif isinstance(given, str):
        given = redact_url(given)
    if error.get("type") == "value_error" and isinstance(given, str) and repr(given) in message:
        return name, message  # the message shows the value already
    return name, f"{message} (got {given!r})"


def secret_fields() -> list[str]:
    """Flat names of the settings that hold secrets (``influxdb_password``...)."""
    return [s.name for s in settings_table(Settings) if s.secret]


def file_fields() -> list[str]:
    """Flat names of the settings that may also come from a file (``HOMEIQ_<NAME>_FILE``):
    every secret, then credentials that are not secret but travel with them (a user name)."""
    table = settings_table(Settings)
    return secret_fields() + [s.name for s in table if s.from_file and not s.secret]


def secret_values(settings: Settings) -> list[str]:
    """The secrets set in ``settings``, in clear: what logs must never show."""
    values = [s.value(settings) for s in settings_table(Settings) if s.secret]
    return [v.get_secret_value() for v in values if isinstance(v, SecretStr)]


def flat_settings(settings: Settings) -> dict[str, Any]:
    """The settings as plain JSON data under their flat names (``influxdb_url``), the
    names of the TOML file; secrets as pydantic shows them (masked)."""
    data = settings.model_dump(mode="json")
    flat: dict[str, Any] = {}
    for setting in settings_table(Settings):
        value: Any = data
        for part in setting.path:
            value = value[part]
        flat[setting.name] = value
    return flat


def redacted(settings: Settings) -> dict[str, Any]:
    """The effective settings under their flat names, every secret replaced by a marker
    and every password or token inside a URL by ``***``."""
    data = flat_settings(settings)
    for name in secret_fields():
        if data[name] is not None:
            data[name] = "<redacted>"
    for name, value in data.items():
        if isinstance(value, str) and "://" in value:
            data[name] = redact_url(value)
        elif isinstance(value, list):
            data[name] = [redact_url(v) if isinstance(v, str) else v for v in value]
    return data
