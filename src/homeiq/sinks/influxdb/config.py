"""Where and how to reach InfluxDB: a plain view of the ``influxdb_*`` settings.

The settings are validated where they are read (``settings.py``: the URL's scheme, what
``HOMEIQ_STORE=influxdb`` and ``HOMEIQ_INFLUXDB_API=v2`` require); this module does not
check them again. The few rules settings.py does not know yet are in
:func:`check_settings`, the one place they live, run once when the store is opened.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import SecretStr
from yarl import URL

from homeiq.errors import ConfigError
from homeiq.settings import Settings
from homeiq.sinks.influxdb.escaping import escape_measurement


@dataclass(frozen=True, slots=True)
class InfluxDBConfig:
    """Where and how to reach InfluxDB; built from :class:`Settings` by :meth:`from_settings`
    (tests and tools may build one directly: nothing here is checked)."""

    url: str
    api: Literal["v1", "v2"] = "v1"
    database: str = "homeiq"
    retention_policy: str | None = None
    bucket: str | None = None
    org: str | None = None
    token: SecretStr | None = field(default=None, repr=False)
    username: str | None = None
    password: SecretStr | None = field(default=None, repr=False)
    measurement: str = "home_assistant_events"
    timeout_s: float = 10.0
    gzip: bool = True
    batch_max_bytes: int = 4_000_000
    batch_max_events: int = 5000

    @classmethod
    def from_settings(cls, settings: Settings) -> InfluxDBConfig:
        """The InfluxDB part of the settings; ConfigError naming what cannot work."""
        check_settings(settings)
        assert settings.influxdb_url is not None  # settings.py requires it for this store
        return cls(
            url=settings.influxdb_url.rstrip("/"),
            api=settings.influxdb_api,
            database=settings.influxdb_database,
            retention_policy=settings.influxdb_retention_policy,
            bucket=settings.influxdb_bucket,
            org=settings.influxdb_org,
            token=settings.influxdb_token,
            username=settings.influxdb_username,
            password=settings.influxdb_password,
            measurement=settings.influxdb_measurement,
            timeout_s=settings.influxdb_timeout_s,
            gzip=settings.influxdb_gzip,
            batch_max_bytes=settings.influxdb_batch_max_bytes,
            batch_max_events=settings.batch_max_events,
        )

    def with_(self, **changes: Any) -> InfluxDBConfig:
        """A copy with some fields changed (another database, say)."""
        return replace(self, **changes)

    @property
    def query_database(self) -> str:
        """The ``db`` of InfluxQL queries: the database (v1) or the bucket (v2 compatibility)."""
        if self.api == "v2" and self.bucket is not None:
            return self.bucket
        return self.database

    def auth_headers(self) -> dict[str, str]:
        """``Authorization``: the token when set (always with v2), else HTTP Basic."""
        if self.token is not None:
            return {"Authorization": f"Token {self.token.get_secret_value()}"}
        if self.username is not None:
            password = "" if self.password is None else self.password.get_secret_value()
            basic = base64.b64encode(f"{self.username}:{password}".encode()).decode()
            return {"Authorization": f"Basic {basic}"}
        return {}

    def scrub(self, text: str) -> str:
        """``text`` with every secret of this configuration replaced by a marker."""
        for secret in (self.token, self.password):
            if secret is not None and secret.get_secret_value():
                text = text.replace(secret.get_secret_value(), "<redacted>")
        return text


def check_settings(settings: Settings) -> None:
    """The InfluxDB rules settings.py does not check yet; ConfigError naming the setting.

    To move into the settings' InfluxDB sub-model (its validator can call this function
    or take its body); until then the store's backend runs it once, when it opens.
    """
    if settings.influxdb_url is None:  # settings.py refuses this when store=influxdb
        raise ConfigError("HOMEIQ_INFLUXDB_URL", "is required when HOMEIQ_STORE=influxdb")
    parsed = URL(settings.influxdb_url)
    if not parsed.host:
        raise ConfigError("HOMEIQ_INFLUXDB_URL", "must be an http:// or https:// URL with a host")
    if parsed.user or parsed.password:
        raise ConfigError(
            "HOMEIQ_INFLUXDB_URL",
            "must not contain credentials; set HOMEIQ_INFLUXDB_USERNAME/PASSWORD or TOKEN",
        )
    if settings.influxdb_username is not None and ":" in settings.influxdb_username:
        raise ConfigError("HOMEIQ_INFLUXDB_USERNAME", "cannot contain ':' (HTTP Basic auth)")
    try:
        escape_measurement(settings.influxdb_measurement)
    except ValueError as exc:
        raise ConfigError("HOMEIQ_INFLUXDB_MEASUREMENT", str(exc)) from None
