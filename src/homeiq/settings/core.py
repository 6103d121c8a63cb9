"""The :class:`Settings` model: the flat settings, and one sub-model per group.

Sources, strongest first: keyword arguments (tests, CLI flags), ``HOMEIQ_*`` environment
variables, ``HOMEIQ_*_FILE`` for every secret (Docker/Kubernetes secrets), the TOML file
named by ``HOMEIQ_CONFIG``, then the defaults (see :mod:`homeiq.settings.sources`).
Every field has a description: the settings table in docs/settings.md is generated
from them. Each group validates its own fields (:mod:`~homeiq.settings.influxdb`,
:mod:`~homeiq.settings.api`, :mod:`~homeiq.settings.backup`); this model checks what
spans groups (the store needs its URL) and refuses unknown ``HOMEIQ_*`` variables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from homeiq.errors import ConfigError
from homeiq.settings.alert import AlertSettings
from homeiq.settings.api import ApiSettings
from homeiq.settings.backup import BackupSettings
from homeiq.settings.checks import check_url, env_name, split_list
from homeiq.settings.cleanup import CleanupSettings
from homeiq.settings.influxdb import InfluxDBSettings
from homeiq.settings.ingest import IngestSettings
from homeiq.settings.retention import RetentionSettings
from homeiq.settings.sources import (
    EnvSource,
    SecretFileSource,
    TomlFileSource,
    check_environment,
    nest,
)


class Settings(BaseSettings):
    """HomeIQ settings; environment variable = ``HOMEIQ_`` + upper-cased path, e.g.
    ``settings.influxdb.url`` is ``HOMEIQ_INFLUXDB_URL``."""

    model_config = SettingsConfigDict(extra="forbid", validate_default=True, frozen=True)

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
    store: Literal["sqlite", "influxdb"] = Field(
        default="sqlite",
        description="Event store: sqlite (embedded default) or influxdb (see HOMEIQ_INFLUXDB_*).",
    )
    sqlite_writer: Literal["process", "thread"] = Field(
        default="process",
        description=(
            "Where SQLite writes run: a dedicated writer process (uses a second core) or a"
            " thread of the main process (one process, about a third slower)."
        ),
    )
    influxdb: InfluxDBSettings = Field(
        default_factory=InfluxDBSettings,
        description="InfluxDB, when it is the store (HOMEIQ_INFLUXDB_*).",
    )
    sink_retry_attempts: int = Field(
        default=3,
        ge=1,
        description=(
            "Quick attempts at a batch before it goes to the spool (a store that stays down"
            " opens the circuit breaker and new batches go straight to the spool)."
        ),
    )
    sink_breaker_failures: int = Field(
        default=3,
        ge=1,
        description="Consecutive failed writes that open the store's circuit breaker.",
    )
    sink_breaker_reset_s: float = Field(
        default=5.0,
        gt=0,
        description=(
            "Seconds an open breaker waits before one probe write; doubles (jittered) up to"
            " 60 s while the store stays down."
        ),
    )
    spool_max_bytes: int = Field(
        default=512 * 1024 * 1024,
        ge=1024,
        description=(
            "Bound of the on-disk spool (spool.db in the data directory) that holds batches"
            " while the store is down."
        ),
    )
    spool_full_policy: Literal["drop_newest", "drop_oldest"] = Field(
        default="drop_newest",
        description=(
            "When the spool is full: drop_newest refuses new batches, drop_oldest discards"
            " the oldest spooled batch. Either way the events are counted, logged as an"
            " error and recorded as a gap that backfill from Home Assistant's history refills."
        ),
    )
    backfill: bool = Field(
        default=True,
        description=(
            "After a (re)connect, fetch what Home Assistant recorded while HomeIQ was not"
            " listening from its history API and store it (source=backfill)."
        ),
    )
    backfill_overlap_s: float = Field(
        default=60.0,
        ge=0,
        description=(
            "Backfill starts this long before the last durably stored event (idempotent"
            " writes make the overlap free of duplicates)."
        ),
    )
    backfill_max_days: float = Field(
        default=10.0,
        gt=0,
        description=(
            "How far back backfill reaches: Home Assistant's recorder purge_keep_days (10 by"
            " default). An older gap is reported as a data-quality event."
        ),
    )
    backfill_entities_per_request: int = Field(
        default=50,
        ge=1,
        le=500,
        description="Entity ids per history request (they go in the URL).",
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
    api: ApiSettings = Field(
        default_factory=ApiSettings, description="The HTTP API (HOMEIQ_API_*)."
    )
    backup: BackupSettings = Field(
        default_factory=BackupSettings, description="Backups (HOMEIQ_BACKUP_*)."
    )
    ingest: IngestSettings = Field(  # include/exclude at ingest (settings/ingest.py)
        default_factory=IngestSettings, description="What is stored (HOMEIQ_INGEST_*)."
    )
    cleanup: CleanupSettings = Field(  # saved cleanup rules (settings/cleanup.py)
        default_factory=CleanupSettings, description="Saved cleanup rules (HOMEIQ_CLEANUP_*)."
    )
    retention: RetentionSettings = Field(
        default_factory=RetentionSettings,
        description="Retention tiers and the daily purge (HOMEIQ_RETENTION_*).",
    )
    alert: AlertSettings = Field(
        default_factory=AlertSettings, description="Alerts (HOMEIQ_ALERT_*)."
    )
    allow_unknown: list[str] = Field(
        default_factory=list,
        description=(
            "Other HOMEIQ_* environment variables to tolerate, comma-separated (any other"
            " unknown HOMEIQ_* variable stops startup, as a typo would otherwise be ignored)."
        ),
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Minimum log level."
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log line format: human text or one JSON object a line."
    )

    def __init__(self, **values: Any) -> None:
        """Field values by their flat names, as in TOML (``influxdb_url=...``), or
        groups as dicts or models (``influxdb={"url": ...}``)."""
        super().__init__(**nest(Settings, values))

    @field_validator("ha_url")
    @classmethod
    def _check_ha_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return check_url(value.strip().rstrip("/"), ("http", "https", "ws", "wss"))

    @field_validator("allow_unknown", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_list(value)

    @model_validator(mode="after")
    def _check_environment(self) -> Settings:
        check_environment(Settings, self.allow_unknown)
        return self

    @model_validator(mode="after")
    def _check_store(self) -> Settings:
        if self.store == "influxdb" and self.influxdb.url is None:
            # Not a ValueError: pydantic lets it through as is, naming the variable.
            raise ConfigError(env_name("influxdb", "url"), "is required when HOMEIQ_STORE=influxdb")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then HomeIQ's own sources: they read the nested settings by
        their flat names (pydantic-settings' would take ``HOMEIQ_API_KEY`` for a setting)."""
        return (
            init_settings,
            EnvSource(settings_cls),
            SecretFileSource(settings_cls),
            TomlFileSource(settings_cls),
        )
