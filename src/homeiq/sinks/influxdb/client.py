"""The one InfluxDB client: HTTP session, InfluxQL queries, database admin and the write
target, used by the sink, the reader and the backup alike.

Errors are mapped here and only here (:meth:`InfluxDBClient.failure`): anything that may
pass (no connection, timeouts, 5xx, 404, 408, 429, refused credentials) is
:class:`SinkUnavailable`; what InfluxDB refuses about a request itself (400 bad line
protocol or InfluxQL, field type conflicts, 413) is :class:`SinkRejected`, and a query
InfluxDB cannot run is :class:`QueryFailed` with InfluxDB's own message. Credentials
travel in headers only and are scrubbed from every message.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import orjson

from homeiq.errors import ConfigError, HomeIQError, QueryFailed, SinkRejected, SinkUnavailable
from homeiq.network import connection_error
from homeiq.settings import InfluxDBSettings, env_name
from homeiq.sinks.influxdb.escaping import quote_ident

ERROR_TEXT_MAX = 500
QUERY_SHOWN_MAX = 200


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


def answer_error(answer: Any) -> str | None:
    """The first error in a parsed /query answer (top level or of a statement), if any."""
    if not isinstance(answer, dict):
        return f"not a JSON object: {str(answer)[:200]}"
    if isinstance(answer.get("error"), str):
        return str(answer["error"])
    for result in answer.get("results") or []:
        if isinstance(result, dict) and isinstance(result.get("error"), str):
            return str(result["error"])
    return None


def shown(q: str) -> str:
    """A query as quoted in an error message: at most ``QUERY_SHOWN_MAX`` characters."""
    return q if len(q) <= QUERY_SHOWN_MAX else q[:QUERY_SHOWN_MAX] + "…"


@dataclass(frozen=True, slots=True)
class WriteTarget:
    """Where line protocol goes: the write path, its parameters, and a name for messages."""

    path: str
    params: dict[str, str]
    where: str


class InfluxDBClient:
    """One aiohttp session to InfluxDB with the configured auth."""

    def __init__(self, config: InfluxDBSettings) -> None:
        if config.url is None:  # Settings requires it with the InfluxDB store
            raise ConfigError(env_name("influxdb", "url"), "is required to reach InfluxDB")
        self.config = config
        self.url = config.url
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """The session, created on first use (it needs the running event loop)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self.config.auth_headers(),
                timeout=aiohttp.ClientTimeout(total=self.config.timeout_s),
            )
        return self._session

    def unreachable(self, exc: BaseException, during: str = "") -> SinkUnavailable:
        """The error for a connection that failed (aiohttp, OS or a timeout)."""
        if isinstance(exc, TimeoutError):
            what = f"no answer within {self.config.timeout_s:g} s"
        else:
            what = connection_error(exc, self.url)
        how = f"failed {during}" if during else "is unreachable"
        return SinkUnavailable(self.config.scrub(f"InfluxDB at {self.url} {how}: {what}"))

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
                method, self.url + path, params=params, data=data, headers=headers
            ) as response:
                return response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise self.unreachable(exc) from exc

    def failure(self, status: int, body: bytes, doing: str) -> HomeIQError:
        """The error for a refused request: SinkRejected only for 4xx about the request."""
        text = self.config.scrub(error_text(body))
        where = f"InfluxDB at {self.url}"
        if status in (401, 403):
            return SinkUnavailable(
                f"InfluxDB refused the credentials (HTTP {status}) {doing}: {text}; check"
                " HOMEIQ_INFLUXDB_USERNAME/PASSWORD or HOMEIQ_INFLUXDB_TOKEN"
            )
        if status >= 500 or status in (404, 408, 429):
            return SinkUnavailable(f"{where} answered HTTP {status} {doing}: {text}")
        return SinkRejected(f"{where} rejected the data (HTTP {status}) {doing}: {text}")

    # -- InfluxQL ----------------------------------------------------------------------------

    async def results(
        self, q: str, db: str | None, *, epoch: Literal["ns", "u"] = "ns"
    ) -> list[dict[str, Any]]:
        """Run ``q`` (one or more statements); each statement's result, errors included.

        QueryFailed when InfluxDB refuses the query as a whole (400, an error for the
        whole answer, not JSON); statement errors are left to the caller.
        """
        params = {"epoch": epoch} if db is None else {"db": db, "epoch": epoch}
        status, body = await self.request("POST", "/query", params, data={"q": q})
        if status == 400:
            text = self.config.scrub(error_text(body))
            raise QueryFailed(f"InfluxDB could not run {shown(q)!r}: {text}")
        if status != 200:
            raise self.failure(status, body, "to a query")
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise QueryFailed(f"InfluxDB answered {shown(q)!r} with non-JSON: {exc}") from exc
        if not isinstance(answer, dict) or isinstance(answer.get("error"), str):
            error = answer.get("error") if isinstance(answer, dict) else answer
            raise QueryFailed(f"InfluxDB could not run a query: {error}")
        results: list[dict[str, Any]] = answer.get("results") or []
        return results

    async def series(
        self, q: str, db: str | None = None, *, epoch: Literal["ns", "u"] = "ns"
    ) -> list[dict[str, Any]]:
        """The series of a one-statement query; QueryFailed with InfluxDB's message
        (``has no database 'x'`` when the database does not exist)."""
        results = await self.results(q, db, epoch=epoch) or [{}]
        error = results[0].get("error")
        if isinstance(error, str):
            error = self.config.scrub(error)
            if db is not None and error.startswith("database not found"):
                raise QueryFailed(f"InfluxDB at {self.url} has no database {db!r}")
            raise QueryFailed(f"InfluxDB could not run {shown(q)!r}: {error}")
        return list(results[0].get("series") or [])

    async def stream(
        self, q: str, db: str, *, chunk_size: int, epoch: Literal["ns", "u"] = "ns"
    ) -> AsyncGenerator[bytes, None]:
        """The answer to ``q`` as InfluxDB streams it (``chunked=true``): one JSON document
        per piece of at most ``chunk_size`` rows, so memory holds one piece at a time."""
        params = {"db": db, "epoch": epoch, "chunked": "true", "chunk_size": str(chunk_size)}
        # No total timeout: a long answer may take long to stream; only silence is an error.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.config.timeout_s, sock_read=self.config.timeout_s
        )
        try:
            async with self.session().post(
                self.url + "/query", params=params, data={"q": q}, timeout=timeout
            ) as response:
                if response.status != 200:
                    body = await response.read()
                    if response.status == 400:
                        text = self.config.scrub(error_text(body))
                        raise QueryFailed(f"InfluxDB could not run {shown(q)!r}: {text}")
                    raise self.failure(response.status, body, "to a streamed query")
                parts: list[bytes] = []
                async for block in response.content.iter_any():
                    start = 0
                    while (end := block.find(b"\n", start)) >= 0:
                        parts.append(block[start:end])
                        yield b"".join(parts)
                        parts.clear()
                        start = end + 1
                    parts.append(block[start:])
                if tail := b"".join(parts).strip():
                    yield tail
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise self.unreachable(exc, "during a streamed query") from exc

    # -- database admin (v1) -----------------------------------------------------------------

    async def database_exists(self, name: str) -> bool:
        """Whether the database ``name`` exists."""
        databases = await self.series("SHOW DATABASES")
        return any([name] in (s.get("values") or []) for s in databases)

    async def create_database(self, name: str) -> None:
        """``CREATE DATABASE`` (a no-op when it exists). SinkUnavailable while InfluxDB is
        down or busy, or the credentials are wrong (401); SinkRejected with InfluxDB's
        reason when it will not (no admin privilege: 403, the statement not allowed)."""
        status, body = await self.request(
            "POST", "/query", {}, data={"q": f"CREATE DATABASE {quote_ident(name)}"}
        )
        if status == 200:
            try:
                error = answer_error(orjson.loads(body))
            except orjson.JSONDecodeError:
                error = f"a non-JSON answer: {error_text(body)}"
            if error is None:
                return
            raise SinkRejected(self.config.scrub(error))
        failure = self.failure(status, body, "creating the database")
        if status == 403:  # 1.x: the user is not an admin
            raise SinkRejected(str(failure))
        raise failure

    async def drop_database(self, name: str) -> None:
        """``DROP DATABASE``; nothing happens when it does not exist."""
        await self.series(f"DROP DATABASE {quote_ident(name)}")

    async def retention_policies(self, database: str) -> list[str]:
        """The retention policies of ``database``."""
        q = f"SHOW RETENTION POLICIES ON {quote_ident(database)}"
        return [str(row[0]) for s in await self.series(q) for row in s.get("values") or []]

    # -- writes ------------------------------------------------------------------------------

    def write_target(
        self, database: str | None = None, *, precision: Literal["ns", "us"] = "us"
    ) -> WriteTarget:
        """Where writes go: v1 ``/write`` into ``database`` (default: the configured one,
        with its retention policy), or v2 ``/api/v2/write`` into the bucket ``database``
        names (default: the configured bucket)."""
        config = self.config
        if config.api == "v2":
            assert (
                config.org is not None and config.bucket is not None
            )  # InfluxDBSettings requires them with v2
            bucket = database or config.bucket
            params = {"org": config.org, "bucket": bucket, "precision": precision}
            return WriteTarget("/api/v2/write", params, f"bucket {bucket!r}")
        target = database or config.database
        v1_precision = "u" if precision == "us" else "ns"
        params = {"db": target, "precision": v1_precision}
        if config.retention_policy:
            params["rp"] = config.retention_policy
        return WriteTarget("/write", params, f"database {target!r}")

    async def write(self, target: WriteTarget, body: bytes, *, gzipped: bool) -> tuple[int, bytes]:
        """POST one body of line protocol; InfluxDB's status and answer (the caller maps a
        refusal with :meth:`failure`, knowing what it was doing)."""
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        return await self.request("POST", target.path, target.params, data=body, headers=headers)

    async def close(self) -> None:
        """Close the session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
