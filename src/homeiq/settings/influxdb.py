"""The InfluxDB settings (``HOMEIQ_INFLUXDB_*``), validated here and nowhere else.

:class:`InfluxDBSettings` is what the sink, the reader and the backup take: there is no
second view of it. Every rule lives on the model, so one built by hand (tests, tools)
is checked like one read from the environment: the URL (scheme, host, port, and no
credentials in it: aiohttp would send them as a second Authorization header), a user
name HTTP Basic can carry, a measurement name line protocol can carry, and what the
v2 API requires (bucket, org, token).

The name rules of line protocol live here, at the base floor, because the measurement
is the one name a user gives; :mod:`homeiq.sinks.influxdb.escaping` applies the same
functions to every name it escapes, so the settings and the writes cannot disagree.
"""

from __future__ import annotations

import base64
import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from homeiq.errors import ConfigError
from homeiq.settings.checks import check_url, env_name

# A newline ends a line; a backslash before a delimiter or at the end reads back
# differently (InfluxDB 1.x scans names by "is the previous byte a backslash" but
# unescapes them by search-and-replace).
_UNWRITABLE = re.compile(r'[\n\r]|\\(?=[,= "]|\Z)')


def check_name(text: str, what: str, *, queried: bool) -> str:
    """``text`` when line protocol can carry it as a name (and, ``queried``, InfluxQL
    can reach it); ValueError naming ``what`` otherwise."""
    if not text:
        raise ValueError(f"{what} is empty")
    if _UNWRITABLE.search(text):
        raise ValueError(
            f"{what} {text!r} has a newline, or a backslash before a delimiter or at its end,"
            " which line protocol cannot carry"
        )
    if queried and (text.startswith("\t") or "\x00" in text):  # 1.x skips a tab; NUL unquotable
        raise ValueError(f"{what} {text!r} starts with a tab or holds a NUL")
    return text


def check_measurement(name: str) -> str:
    """``name`` when it can be a measurement; ValueError otherwise."""
    if name.startswith("#"):
        raise ValueError(f"the measurement {name!r} starts with '#' (a comment line)")
    return check_name(name, "the measurement name", queried=True)


class InfluxDBSettings(BaseModel):
    """Where and how to reach InfluxDB; ``HOMEIQ_INFLUXDB_`` + upper-cased field name."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)

    url: str | None = Field(
        default=None,
        description="InfluxDB base URL, e.g. http://127.0.0.1:8086 (required when store=influxdb).",
    )
    api: Literal["v1", "v2"] = Field(
        default="v1",
        description=(
            "InfluxDB write API: v1 (/write: database, retention policy, user/password; 1.x,"
            " and 2.x/3.x through their v1 compatibility API) or v2 (/api/v2/write: org,"
            " bucket, token; 2.x and 3.x)."
        ),
    )
    database: str = Field(
        default="homeiq",
        min_length=1,
        description="v1: database written and read (created if missing when allowed).",
    )
    retention_policy: str | None = Field(
        default=None, description="v1: retention policy to write into (default: the database's)."
    )
    bucket: str | None = Field(
        default=None, description="v2: bucket to write into (required with influxdb_api=v2)."
    )
    org: str | None = Field(
        default=None, description="v2: organization of the bucket (required with influxdb_api=v2)."
    )
    token: SecretStr | None = Field(
        default=None,
        description="InfluxDB API token (v2, or v1 token auth), or HOMEIQ_INFLUXDB_TOKEN_FILE.",
    )
    username: str | None = Field(
        default=None,
        description="v1: InfluxDB user name, or HOMEIQ_INFLUXDB_USERNAME_FILE.",
        json_schema_extra={"from_file": True},
    )
    password: SecretStr | None = Field(
        default=None, description="v1: InfluxDB password, or HOMEIQ_INFLUXDB_PASSWORD_FILE."
    )
    measurement: str = Field(
        default="home_assistant_events",
        min_length=1,
        description="Measurement the events are written to and read from.",
    )
    timeout_s: float = Field(
        default=10.0, gt=0, description="Timeout of one InfluxDB HTTP request."
    )
    gzip: bool = Field(
        default=True, description="Send writes gzip-compressed (Content-Encoding: gzip)."
    )
    batch_max_bytes: int = Field(
        default=4_000_000,
        ge=1024,
        description=(
            "A batch is split into write requests of at most this many bytes of line"
            " protocol (before gzip); at most batch_max_events points each."
        ),
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = check_url(value.strip().rstrip("/"), ("http", "https"))
        parts = urlsplit(value)
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                "must not contain credentials; set HOMEIQ_INFLUXDB_USERNAME/PASSWORD or TOKEN"
            )
        return value

    @field_validator("username")
    @classmethod
    def _check_username(cls, value: str | None) -> str | None:
        if value is not None and ":" in value:
            raise ValueError("cannot contain ':' (HTTP Basic auth)")
        return value

    @field_validator("measurement")
    @classmethod
    def _check_measurement(cls, value: str) -> str:
        return check_measurement(value)

    @model_validator(mode="after")
    def _check_v2(self) -> InfluxDBSettings:
        if self.api == "v2":
            for name in ("bucket", "org", "token"):
                if getattr(self, name) is None:
                    # Not a ValueError: pydantic lets it through as is, naming the variable.
                    raise ConfigError(
                        env_name("influxdb", name), "is required when HOMEIQ_INFLUXDB_API=v2"
                    )
        return self

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
        """``text`` with every secret of these settings replaced by a marker."""
        for secret in (self.token, self.password):
            if secret is not None and secret.get_secret_value():
                text = text.replace(secret.get_secret_value(), "<redacted>")
        return text
