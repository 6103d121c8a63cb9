"""All of HomeIQ's configuration: one pydantic-settings model.

Sources, strongest first: keyword arguments (tests, CLI flags), ``HOMEIQ_*`` environment
variables, ``HOMEIQ_*_FILE`` for every secret (Docker/Kubernetes secrets), the TOML file
named by ``HOMEIQ_CONFIG``, then the defaults below. Every field has a description: the
settings table in docs/settings.md is generated from them.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from homeiq.errors import ConfigError

ENV_PREFIX = "HOMEIQ_"
CONFIG_FILE_ENV = "HOMEIQ_CONFIG"


class Settings(BaseSettings):
    """HomeIQ settings; environment variable = ``HOMEIQ_`` + upper-cased field name."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        validate_default=True,
        frozen=True,
    )

    data_dir: Path = Field(
        default=Path("homeiq-data"),
        description="Directory for the embedded stores (events.db, metadata.db) and state.",
    )
    ha_url: str | None = Field(
        default=None,
        description="Home Assistant base URL, e.g. http://homeassistant.local:8123.",
    )
    ha_token: SecretStr | None = Field(
        default=None,
        description="Home Assistant long-lived access token (or HOMEIQ_HA_TOKEN_FILE).",
    )
    ha_reconnect_min_s: float = Field(
        default=1.0, gt=0, description="First delay before reconnecting to Home Assistant."
    )
    ha_reconnect_max_s: float = Field(
        default=60.0, gt=0, description="Cap of the exponential reconnect backoff (jittered)."
    )
    ha_heartbeat_s: float = Field(
        default=30.0, gt=0, description="Seconds between ping heartbeats to Home Assistant."
    )
    ha_heartbeat_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A pong later than this marks the connection dead and reconnects.",
    )
    store: Literal["sqlite"] = Field(
        default="sqlite", description="Event store backend: sqlite (embedded default)."
    )
    sqlite_writer: Literal["process", "thread"] = Field(
        default="process",
        description=(
            "Where SQLite writes run: a dedicated writer process (uses a second core) or a"
            " thread of the main process (one process, about a third slower)."
        ),
    )
    queue_max_events: int = Field(
        default=50_000,
        gt=0,
        description="Bound of the in-memory queue between the Home Assistant reader and writer.",
    )
    batch_max_events: int = Field(
        default=5000,
        gt=0,
        description=(
            "A batch is written once it holds this many events (larger batches rewrite"
            " fewer SQLite pages per event under load; the age bound caps the latency)."
        ),
    )
    batch_max_age_s: float = Field(
        default=1.0,
        gt=0,
        description="A batch is written once its oldest event waited this long.",
    )
    attributes_max_bytes: int = Field(
        default=16_384,
        ge=0,
        description=(
            "Attributes larger than this (JSON bytes) are not stored with the event; the whole"
            " message is kept in the dead-letter table instead (Home Assistant's recorder cap)."
        ),
    )
    future_tolerance_s: float = Field(
        default=300.0,
        ge=0,
        description="Events stamped further than this in the future are rejected.",
    )
    shutdown_deadline_s: float = Field(
        default=10.0,
        gt=0,
        description="On SIGTERM/SIGINT, time allowed to flush the queue before exiting.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Minimum log level."
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log line format: human text or one JSON object a line."
    )

    @field_validator("ha_url")
    @classmethod
    def _check_ha_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError("must start with http://, https://, ws:// or wss://")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Add the ``*_FILE`` secrets and the TOML config file below the environment."""
        return (
            init_settings,
            env_settings,
            _SecretFileSource(settings_cls),
            _TomlFileSource(settings_cls),
        )


def secret_fields() -> list[str]:
    """Names of the fields that hold secrets."""
    return [
        name
        for name, info in Settings.model_fields.items()
        if info.annotation is not None and "SecretStr" in str(info.annotation)
    ]


class _SecretFileSource(PydanticBaseSettingsSource):
    """``HOMEIQ_<SECRET>_FILE``: read the secret from a file (trailing newline stripped)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name in secret_fields():
            env = f"{ENV_PREFIX}{name.upper()}_FILE"
            path = os.environ.get(env)
            if not path:
                continue
            try:
                found[name] = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(env, f"cannot read {path}: {exc.strerror}") from exc
        return found


class _TomlFileSource(PydanticBaseSettingsSource):
    """The TOML file named by ``HOMEIQ_CONFIG``; keys are field names."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get(CONFIG_FILE_ENV)
        if not path:
            return {}
        try:
            with Path(path).open("rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(CONFIG_FILE_ENV, f"cannot read {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(CONFIG_FILE_ENV, f"{path} is not valid TOML: {exc}") from exc
        return {str(key).lower(): value for key, value in data.items()}


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning validation errors into a ConfigError naming the setting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first["loc"][0] if first["loc"] else "?"
        name = f"{ENV_PREFIX}{str(loc).upper()}"
        given = first.get("input")
        if str(loc) in secret_fields():
            given = "<redacted>"
        problems = "; ".join(
            f"{ENV_PREFIX}{str(err['loc'][0]).upper() if err['loc'] else '?'}: {err['msg']}"
            for err in exc.errors()
        )
        # `from None`: pydantic's own text repeats every input, secrets included.
        raise ConfigError(
            name, f"{first['msg']} (got {given!r}). All problems: {problems}"
        ) from None


def redacted(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data, every secret replaced by a marker."""
    data = settings.model_dump(mode="json")
    for name in secret_fields():
        if data.get(name) is not None:
            data[name] = "<redacted>"
    return data
