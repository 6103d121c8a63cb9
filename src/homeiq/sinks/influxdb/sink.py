"""Writing events to InfluxDB over HTTP: the v1 ``/write`` API or the v2 ``/api/v2/write``.

InfluxDB stores one point per series and timestamp: writing the same record again
replaces the point with identical values, so a retried or replayed batch never makes a
duplicate. (A record written twice with *different* tags, e.g. after its entity moved
to another area, lands in two series; the reader keeps one per (entity_id, time).)

Failures are sorted for the writer above (DESIGN §8): anything that may pass (no
connection, timeouts, 5xx, 429, refused credentials, a missing database) is
:class:`SinkUnavailable`, retried and spooled; only what InfluxDB refuses about the data
itself (400 bad line protocol, field type conflicts, 413) is :class:`SinkRejected`,
whose rows are isolated and dead-lettered. Credentials travel in headers only and are
scrubbed from every message.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import aiohttp
import orjson
from pydantic import SecretStr
from yarl import URL

from homeiq.errors import ConfigError, HomeIQError, SinkRejected, SinkUnavailable
from homeiq.model import EventRecord
from homeiq.settings import Settings
from homeiq.sinks.influxdb.lineprotocol import LineEncoder, bodies, escape_measurement

log = logging.getLogger(__name__)

GZIP_LEVEL = 1  # line protocol compresses ~10x even at level 1; higher levels cost CPU
ERROR_TEXT_MAX = 500


@dataclass(frozen=True, slots=True)
class InfluxDBConfig:
    """Where and how to reach InfluxDB; built from :class:`Settings` by :meth:`from_settings`."""

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

    def __post_init__(self) -> None:
        parsed = URL(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConfigError("HOMEIQ_INFLUXDB_URL", "must be an http:// or https:// URL")
        if parsed.user or parsed.password:
            raise ConfigError(
                "HOMEIQ_INFLUXDB_URL",
                "must not contain credentials; set HOMEIQ_INFLUXDB_USERNAME/PASSWORD or TOKEN",
            )
        if self.username is not None and ":" in self.username:
            raise ConfigError("HOMEIQ_INFLUXDB_USERNAME", "cannot contain ':' (HTTP Basic auth)")
        try:
            escape_measurement(self.measurement)
        except ValueError as exc:
            raise ConfigError("HOMEIQ_INFLUXDB_MEASUREMENT", str(exc)) from None
        if self.api == "v2":
            for name in ("bucket", "org", "token"):
                if getattr(self, name) is None:
                    raise ConfigError(
                        f"HOMEIQ_INFLUXDB_{name.upper()}", "is required with HOMEIQ_INFLUXDB_API=v2"
                    )

    @classmethod
    def from_settings(cls, settings: Settings) -> InfluxDBConfig:
        """The InfluxDB part of the settings; ConfigError naming what is missing or wrong."""
        if settings.influxdb_url is None:
            raise ConfigError("HOMEIQ_INFLUXDB_URL", "is required when HOMEIQ_STORE=influxdb")
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
        """A copy with some fields changed (tests, tools)."""
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


def error_text(body: bytes) -> str:
    """InfluxDB's error message from a response body (its JSON ``error``, else the text)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        text: str = parsed["error"]
    elif isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        text = parsed["message"]  # InfluxDB 2.x
    else:
        text = body.decode("utf-8", "replace").strip()
    return text[:ERROR_TEXT_MAX] or "(no message)"


class HTTPClient:
    """One aiohttp session to InfluxDB with the configured auth, shared by sink and reader."""

    def __init__(self, config: InfluxDBConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """The session, created on first use (it needs the running event loop)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self.config.auth_headers(),
                timeout=aiohttp.ClientTimeout(total=self.config.timeout_s),
            )
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        *,
        data: bytes | Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """Send one request; its status and body. SinkUnavailable if InfluxDB cannot be reached."""
        session = self.session()
        try:
            async with session.request(
                method, self.config.url + path, params=params, data=data, headers=headers
            ) as response:
                return response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            if isinstance(exc, TimeoutError):
                what = f"no answer within {self.config.timeout_s:g} s"
            else:
                what = str(exc) or type(exc).__name__
            raise SinkUnavailable(
                self.config.scrub(f"InfluxDB at {self.config.url} is unreachable: {what}")
            ) from exc

    def failure(self, status: int, body: bytes, doing: str) -> HomeIQError:
        """The error for a refused request: SinkRejected only for 4xx about the data."""
        text = self.config.scrub(error_text(body))
        where = f"InfluxDB at {self.config.url}"
        if status in (401, 403):
            return SinkUnavailable(
                f"InfluxDB refused the credentials (HTTP {status}) {doing}: {text}; check"
                " HOMEIQ_INFLUXDB_USERNAME/PASSWORD or HOMEIQ_INFLUXDB_TOKEN"
            )
        if status >= 500 or status in (404, 408, 429):
            return SinkUnavailable(f"{where} answered HTTP {status} {doing}: {text}")
        return SinkRejected(f"{where} rejected the data (HTTP {status}) {doing}: {text}")

    async def close(self) -> None:
        """Close the session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


class InfluxDBSink:
    """The :class:`~homeiq.sinks.base.Sink` for InfluxDB 1.x (v1 API) and 2.x/3.x (v2 API)."""

    name = "influxdb"

    def __init__(self, config: InfluxDBConfig) -> None:
        self.config = config
        self.http = HTTPClient(config)
        self._encoder = LineEncoder(config.measurement)
        # v2 buckets are never created here; a v1 database once, before the first write.
        self._database_checked = config.api == "v2"
        self._warned_create = False
        if config.api == "v2":
            assert config.org is not None and config.bucket is not None
            self._path = "/api/v2/write"
            self._params = {"org": config.org, "bucket": config.bucket, "precision": "us"}
        else:
            self._path = "/write"
            self._params = {"db": config.database, "precision": "u"}
            if config.retention_policy:
                self._params["rp"] = config.retention_policy

    @classmethod
    def from_settings(cls, settings: Settings) -> InfluxDBSink:
        """A sink for the configured InfluxDB."""
        return cls(InfluxDBConfig.from_settings(settings))

    async def open(self) -> None:
        """Prepare the session and try to create the database; never fails if InfluxDB is down.

        HomeIQ must start (and spool) while InfluxDB is away: the database is then
        created before the first write that reaches it.
        """
        self.http.session()
        try:
            await self._ensure_database()
        except SinkUnavailable as exc:
            log.warning("%s; writes are spooled until it answers", exc)

    async def _ensure_database(self) -> None:
        if self._database_checked:
            return
        await self.create_database()
        self._database_checked = True

    async def create_database(self) -> None:
        """``CREATE DATABASE`` (a no-op when it exists).

        SinkUnavailable while InfluxDB is down or busy; any refusal (no permission, the
        statement not allowed) is logged once and otherwise ignored: the database may
        well exist, and the writes will say if it does not.
        """
        query = f"CREATE DATABASE {quote_ident(self.config.database)}"
        status, body = await self.http.request("POST", "/query", {}, data={"q": query})
        if status == 200:
            text = _statement_error(body)
            if text is None:
                return
        else:
            error = self.http.failure(status, body, "creating the database")
            if isinstance(error, SinkUnavailable) and status not in (401, 403):
                raise error
            text = str(error)
        if not self._warned_create:
            self._warned_create = True
            log.warning(
                "could not create InfluxDB database %r (%s); assuming it exists",
                self.config.database,
                self.config.scrub(text),
            )

    async def write(self, batch: Sequence[EventRecord]) -> int:
        """Write ``batch`` in requests of bounded size; returns ``len(batch)``.

        InfluxDB cannot say which points were new; rewriting a record only replaces its
        point with the same values, so every record counts as stored.
        """
        if not batch:
            return 0
        try:
            lines = self._encoder.encode_many(batch)
        except ValueError as exc:  # UnicodeError included: a lone surrogate, bad JSON bytes
            raise SinkRejected(f"influxdb cannot encode a record: {exc}") from exc
        await self._ensure_database()
        for body in bodies(lines, self.config.batch_max_bytes, self.config.batch_max_events):
            await self._post(body)
        return len(batch)

    async def _post(self, body: bytes) -> None:
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        data = body
        if self.config.gzip:
            headers["Content-Encoding"] = "gzip"
            # In a thread: zlib lets go of the GIL while it compresses, so this overlaps
            # with normalizing the next batch instead of stalling the event loop.
            data = await asyncio.to_thread(gzip.compress, body, GZIP_LEVEL)
        status, answer = await self.http.request(
            "POST", self._path, self._params, data=data, headers=headers
        )
        if status == 404 and self.config.api == "v1" and b"database not found" in answer:
            # Dropped or never created (open() could not reach InfluxDB): create, retry once.
            await self.create_database()
            status, answer = await self.http.request(
                "POST", self._path, self._params, data=data, headers=headers
            )
        if status not in (200, 204):
            raise self.http.failure(status, answer, "to a write")

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.http.close()


def quote_ident(name: str) -> str:
    """An InfluxQL identifier: double-quoted, with backslash, quote and newline escaped."""
    escaped = name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def quote_literal(value: str) -> str:
    """An InfluxQL string literal: single-quoted, with backslash, quote and newline escaped."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def _statement_error(body: bytes) -> str | None:
    """The error of the first statement of a /query answer, if any."""
    try:
        parsed = orjson.loads(body)
        error = parsed["results"][0].get("error")
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError):
        return None
    return error if isinstance(error, str) else None
