"""All of HomeIQ's configuration: one pydantic-settings model.

Sources, strongest first: keyword arguments (tests, CLI flags), ``HOMEIQ_*`` environment
variables, ``HOMEIQ_*_FILE`` for every secret (Docker/Kubernetes secrets), the TOML file
named by ``HOMEIQ_CONFIG``, then the defaults below. Every field has a description: the
settings table in docs/settings.md is generated from them.

Validation lives here, once: an unknown ``HOMEIQ_*`` variable (a typo would otherwise be
ignored silently) is refused with the closest valid name, unless it is one of
:data:`NOT_SETTINGS` or listed in ``HOMEIQ_ALLOW_UNKNOWN``; URLs are checked down to their
port; every problem is reported as one sentence naming the setting.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import limits
import orjson
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from homeiq.errors import ConfigError

ENV_PREFIX = "HOMEIQ_"
CONFIG_FILE_ENV = "HOMEIQ_CONFIG"
ALLOW_UNKNOWN_ENV = "HOMEIQ_ALLOW_UNKNOWN"
# HOMEIQ_* variables that are not settings but are legitimately set: the config file's
# name, the escape hatch itself, the shell variable the docs keep an API key in, and the
# test and CI tools' own (Home Assistant's venv and Python, the influxd binary).
NOT_SETTINGS = frozenset(
    {
        CONFIG_FILE_ENV,
        ALLOW_UNKNOWN_ENV,
        "HOMEIQ_API_KEY",
        "HOMEIQ_HA_VENV",
        "HOMEIQ_HA_PYTHON",
        "HOMEIQ_INFLUXD",
    }
)
# Query parameters whose values are credentials in webhook and service URLs.
_SECRET_QUERY_KEYS = frozenset(
    {"token", "access_token", "key", "api_key", "apikey", "password", "secret", "sig",
     "signature", "auth"}
)  # fmt: skip


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
    influxdb_url: str | None = Field(
        default=None,
        description="InfluxDB base URL, e.g. http://127.0.0.1:8086 (required when store=influxdb).",
    )
    influxdb_api: Literal["v1", "v2"] = Field(
        default="v1",
        description=(
            "InfluxDB write API: v1 (/write: database, retention policy, user/password; 1.x,"
            " and 2.x/3.x through their v1 compatibility API) or v2 (/api/v2/write: org,"
            " bucket, token; 2.x and 3.x)."
        ),
    )
    influxdb_database: str = Field(
        default="homeiq",
        min_length=1,
        description="v1: database written and read (created if missing when allowed).",
    )
    influxdb_retention_policy: str | None = Field(
        default=None, description="v1: retention policy to write into (default: the database's)."
    )
    influxdb_bucket: str | None = Field(
        default=None, description="v2: bucket to write into (required with influxdb_api=v2)."
    )
    influxdb_org: str | None = Field(
        default=None, description="v2: organization of the bucket (required with influxdb_api=v2)."
    )
    influxdb_token: SecretStr | None = Field(
        default=None,
        description="InfluxDB API token (v2, or v1 token auth), or HOMEIQ_INFLUXDB_TOKEN_FILE.",
    )
    influxdb_username: str | None = Field(
        default=None,
        description="v1: InfluxDB user name, or HOMEIQ_INFLUXDB_USERNAME_FILE.",
        json_schema_extra={"from_file": True},
    )
    influxdb_password: SecretStr | None = Field(
        default=None, description="v1: InfluxDB password, or HOMEIQ_INFLUXDB_PASSWORD_FILE."
    )
    influxdb_measurement: str = Field(
        default="home_assistant_events",
        min_length=1,
        description="Measurement the events are written to and read from.",
    )
    influxdb_timeout_s: float = Field(
        default=10.0, gt=0, description="Timeout of one InfluxDB HTTP request."
    )
    influxdb_gzip: bool = Field(
        default=True, description="Send writes gzip-compressed (Content-Encoding: gzip)."
    )
    influxdb_batch_max_bytes: int = Field(
        default=4_000_000,
        ge=1024,
        description=(
            "A batch is split into write requests of at most this many bytes of line"
            " protocol (before gzip); at most batch_max_events points each."
        ),
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
    api_enabled: bool = Field(
        default=True,
        description="Serve the HTTP API (and /metrics) from `homeiq run` and `homeiq demo`.",
    )
    api_host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description=(
            "Address the API listens on. Loopback by default; any other address exposes the"
            " API to the network (logged as a warning)."
        ),
    )
    api_port: int = Field(
        default=8642, ge=0, le=65535, description="TCP port of the API (0 = any free port)."
    )
    api_cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Browser origins allowed to call the API (CORS), comma-separated, e.g."
            " https://dash.example:8443. Empty: no CORS headers at all."
        ),
    )
    api_trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Reverse proxies (IP addresses or CIDR networks, comma-separated) whose"
            " X-Forwarded-For and X-Forwarded-Proto are believed; the per-IP rate limit then"
            " counts the client they name. Empty: forwarded headers are ignored, whoever"
            " sends them."
        ),
    )
    api_rate_limit_read: str = Field(
        default="100/minute;20/second",
        description=(
            "Requests allowed per key whose highest scope is read: a sustained rate and a"
            " burst, both enforced (`limits` notation, ';'-separated)."
        ),
    )
    api_rate_limit_write: str = Field(
        default="100/minute;20/second",
        description="Requests allowed per key whose highest scope is write (as for read).",
    )
    api_rate_limit_admin: str = Field(
        default="100/minute;20/second",
        description="Requests allowed per key with the admin scope (as for read).",
    )
    api_rate_limit_ip: str = Field(
        default="300/minute;50/second",
        description=(
            "Requests allowed per client IP address, with or without a key (all but /healthz)."
        ),
    )
    api_max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest request body accepted; larger ones get 413 before being read.",
    )
    api_max_query_bytes: int = Field(
        default=4096,
        ge=256,
        description="Longest query string accepted; longer ones get 414.",
    )
    backup_targets: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Where backup archives go, comma-separated: file:///mnt/nas/homeiq,"
            " s3://bucket/prefix (S3 endpoint and credentials the usual boto3 ways, e.g."
            " AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID). Empty: the backups folder of the data dir."
        ),
    )
    backup_recipients: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "age public keys (age1...) archives are encrypted to, comma-separated: the"
            " machine that makes backups cannot read them. Or set a passphrase instead."
        ),
    )
    backup_passphrase: SecretStr | None = Field(
        default=None,
        description=(
            "Passphrase archives are encrypted with (age scrypt), usually given as"
            " HOMEIQ_BACKUP_PASSPHRASE_FILE; instead of recipients."
        ),
    )
    backup_identity_file: Path | None = Field(
        default=None,
        description=(
            "age identity file (age-keygen's output) that decrypts archives made for the"
            " recipients: needed by verify and restore, and by the weekly automatic verify."
        ),
    )
    backup_schedule: str = Field(
        default="03:30",
        description=(
            "Daily time (HH:MM, local time) of the scheduled backup, or `off`. Runs only"
            " when recipients or a passphrase are set."
        ),
    )
    backup_verify_weekday: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun", "off"] = Field(
        default="sun",
        description=(
            "Day of the week whose scheduled backup is followed by a full verify with a"
            " test restore, or `off`."
        ),
    )
    backup_keep_daily: int = Field(default=7, ge=0, description="Daily archives kept per target.")
    backup_keep_weekly: int = Field(
        default=4, ge=0, description="Weekly archives kept per target (the newest of each week)."
    )
    backup_keep_monthly: int = Field(
        default=6, ge=0, description="Monthly archives kept per target (the newest of each month)."
    )
    backup_influxdb_native: bool = Field(
        default=False,
        description=(
            "With the InfluxDB store, also run `influxd backup -portable` into the archive"
            " (needs the influxd binary on this machine)."
        ),
    )
    backup_influxdb_rpc: str = Field(
        default="127.0.0.1:8088",
        description="InfluxDB's RPC address (bind-address) for `influxd backup`.",
    )
    alert_webhook_url: str | None = Field(
        default=None,
        description=(
            "URL that alerts (a failed or overdue backup) are POSTed to as JSON. Alerts are"
            " also logged, shown in /api/v1/health and sent to Home Assistant."
        ),
    )
    alert_home_assistant: bool = Field(
        default=True,
        description=(
            "Create a persistent notification in Home Assistant (HOMEIQ_HA_URL/TOKEN) for"
            " each alert."
        ),
    )
    allow_unknown: Annotated[list[str], NoDecode] = Field(
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

    @field_validator("ha_url")
    @classmethod
    def _check_ha_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return check_url(value.strip().rstrip("/"), ("http", "https", "ws", "wss"))

    @field_validator("influxdb_url")
    @classmethod
    def _check_influxdb_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return check_url(value.strip().rstrip("/"), ("http", "https"))

    @field_validator(
        "api_cors_origins", "backup_targets", "backup_recipients", "allow_unknown", mode="before"
    )
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        # From the environment: comma-separated, or a JSON list; from TOML: a list.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return orjson.loads(text)
                except orjson.JSONDecodeError as exc:
                    raise ValueError(f"not a JSON list of origins: {exc}") from None
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("api_cors_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        checked = []
        for origin in value:
            origin = origin.strip().rstrip("/")
            parts = urlsplit(origin)
            # An origin is scheme://host[:port]; "*" would turn the allow-list off.
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
                raise ValueError(f"{origin!r} is not an origin like https://host:port")
            if "*" in parts.netloc:  # browsers send one exact origin: a pattern never matches
                raise ValueError(f"{origin!r}: wildcards never match; list each origin")
            check_url(origin, ("http", "https"))
            checked.append(origin)
        return checked

    @field_validator("api_trusted_proxies", mode="before")
    @classmethod
    def _check_proxies(cls, value: Any) -> Any:
        # Comma-separated from the environment, a list from TOML; each an IP or a network.
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list):
            return value  # pydantic refuses it with its own message
        checked = []
        for entry in value:
            try:
                checked.append(str(ipaddress.ip_network(str(entry).strip(), strict=False)))
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or CIDR network") from None
        return checked

    @field_validator(
        "api_rate_limit_read", "api_rate_limit_write", "api_rate_limit_admin", "api_rate_limit_ip"
    )
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        try:
            parsed = limits.parse_many(value)
        except ValueError:
            parsed = []
        if not parsed:
            raise ValueError("expected limits like 100/minute;20/second")
        return value

    @field_validator("backup_schedule")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        value = value.strip().lower()
        if value != "off" and daily_time(value) is None:
            raise ValueError("expected a daily time HH:MM (24-hour, local time) or off")
        return value

    @field_validator("alert_webhook_url")
    @classmethod
    def _check_webhook(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return check_url(value.strip(), ("http", "https"))

    @model_validator(mode="after")
    def _check_environment(self) -> Settings:
        allowed = NOT_SETTINGS | {name.strip().upper() for name in self.allow_unknown}
        known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
        known |= {f"{ENV_PREFIX}{name.upper()}_FILE" for name in file_fields()}
        for variable in sorted(os.environ):
            name = variable.upper()
            if not name.startswith(ENV_PREFIX) or name in known or name in allowed:
                continue
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else "see docs/settings.md"
            raise ConfigError(
                variable,
                f"unknown setting; {hint} (to keep it, add it to {ALLOW_UNKNOWN_ENV})",
            )
        return self

    @model_validator(mode="after")
    def _check_backup(self) -> Settings:
        if self.backup_recipients and self.backup_passphrase is not None:
            raise _missing(
                "backup_recipients", "set recipients or a passphrase for backups, not both"
            )
        return self

    @model_validator(mode="after")
    def _check_store(self) -> Settings:
        if self.store != "influxdb":
            return self
        if self.influxdb_url is None:
            raise _missing("influxdb_url", "is required when HOMEIQ_STORE=influxdb")
        if self.influxdb_api == "v2":
            for name in ("influxdb_bucket", "influxdb_org", "influxdb_token"):
                if getattr(self, name) is None:
                    raise _missing(name, "is required when HOMEIQ_INFLUXDB_API=v2")
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
        """Add the ``*_FILE`` secrets and the TOML config file below the environment."""
        return (
            init_settings,
            env_settings,
            _SecretFileSource(settings_cls),
            _TomlFileSource(settings_cls),
        )


def daily_time(text: str) -> tuple[int, int] | None:
    """(hour, minute) of ``HH:MM``; None when it is not one."""
    hour, sep, minute = text.partition(":")
    if not sep or not (hour.isdigit() and minute.isdigit()) or len(minute) != 2:
        return None
    h, m = int(hour), int(minute)
    return (h, m) if 0 <= h < 24 and 0 <= m < 60 else None


def check_url(value: str, schemes: tuple[str, ...]) -> str:
    """``value`` when it is a URL of one of ``schemes`` with a host and a valid port;
    ValueError saying what is wrong otherwise."""
    names = [f"{s}://" for s in schemes]
    shown = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    try:
        parts = urlsplit(value)
        port = parts.port  # ValueError for a port that is not a number in 0-65535
    except ValueError:
        raise ValueError(
            f"{redact_url(value)!r} has a port that is not a number from 1 to 65535"
        ) from None
    if parts.scheme not in schemes:
        raise ValueError(f"must start with {shown}")
    if not parts.hostname:
        raise ValueError(f"{redact_url(value)!r} has no host name")
    if port == 0:
        raise ValueError(f"{redact_url(value)!r}: port 0 cannot be connected to")
    return value


def redact_url(url: str) -> str:
    """``url`` with the password of its user info and credential-like query values
    (``token``, ``access_token``, ``key``...) replaced by ``***``; other text as is."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, sep, _password = userinfo.partition(":")
        netloc = f"{user}:***@{host}" if sep else f"{userinfo}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_QUERY_KEYS for k, _ in pairs):
            query = urlencode(
                [(k, "***" if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs],
                safe="*",
            )
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _missing(field: str, message: str) -> ConfigError:
    # Raised from a model validator: not a ValueError, so pydantic lets it through as is.
    return ConfigError(f"{ENV_PREFIX}{field.upper()}", message)


def secret_fields() -> list[str]:
    """Names of the fields that hold secrets."""
    return [
        name
        for name, info in Settings.model_fields.items()
        if info.annotation is not None and "SecretStr" in str(info.annotation)
    ]


def file_fields() -> list[str]:
    """Fields that may also come from a file (``HOMEIQ_<NAME>_FILE``): every secret, and
    credentials that are not secret but travel with them (a user name)."""
    marked = [
        name
        for name, info in Settings.model_fields.items()
        if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("from_file")
    ]
    return secret_fields() + marked


class _SecretFileSource(PydanticBaseSettingsSource):
    """``HOMEIQ_<SECRET>_FILE``: read the secret from a file (trailing newline stripped)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name in file_fields():
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
        errors = exc.errors()
        described = [_describe(err) for err in errors]
        name, first = described[0]
        others = "; ".join(f"{n}: {m}" for n, m in described[1:])
        # `from None`: pydantic's own text repeats every input, secrets included.
        raise ConfigError(name, first + (f". Also {others}" if others else "")) from None


def _describe(error: Any) -> tuple[str, str]:
    """(variable, one sentence) for one pydantic error, without pydantic's wording."""
    loc = str(error["loc"][0]) if error["loc"] else "?"
    name = f"{ENV_PREFIX}{loc.upper()}"
    message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    given = error.get("input")
    if loc in secret_fields():
        given = "<redacted>"
    elif isinstance(given, str):
        given = redact_url(given)
    if error.get("type") == "value_error" and isinstance(given, str) and repr(given) in message:
        return name, message  # the message shows the value already
    return name, f"{message} (got {given!r})"


def redacted(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data, every secret replaced by a marker."""
    data = settings.model_dump(mode="json")
    for name in secret_fields():
        if data.get(name) is not None:
            data[name] = "<redacted>"
    for name, value in data.items():
        if isinstance(value, str) and "://" in value:
            data[name] = redact_url(value)
        elif isinstance(value, list):
            data[name] = [redact_url(v) if isinstance(v, str) else v for v in value]
    return data
