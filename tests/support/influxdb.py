"""A real InfluxDB 1.6.7 (`influxd`, the Debian package) for tests, on loopback.

`InfluxDBServer` writes a config whose meta, data and wal dirs live in one directory,
binds HTTP and the RPC service to free 127.0.0.1 ports, and runs `influxd run -config`
as a subprocess (its output goes to `influxd.log` in that directory):

    server = InfluxDBServer(tmp_path)
    server.start()                    # waits for /ping; well under a second
    server.query('CREATE DATABASE "x"')
    server.stop(); server.start()     # an outage: same port, same data
    server.close()                    # stop and, if it made it, remove the directory

Fixtures: `influxdb` (one server per session) and `influxdb_database` (a fresh database
per test, dropped after). Registered in tests/conftest.py.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import orjson
import pytest

from homeiq.model import EventRecord
from homeiq.settings import Settings
from tests.support.components import missing

BINARY_ENV_VAR = "HOMEIQ_INFLUXD"
START_TIMEOUT_S = 20.0

_CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root}/meta"
  logging-enabled = false

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
  trace-logging-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = {auth}
  log-enabled = false

[logging]
  level = "warn"
  suppress-logo = true

[continuous_queries]
  enabled = false

[subscriber]
  enabled = false
"""


def influxd_binary() -> str | None:
    """The influxd to run: $HOMEIQ_INFLUXD, else the one on PATH (None if not there)."""
    named = os.environ.get(BINARY_ENV_VAR)
    return shutil.which(named) if named else shutil.which("influxd")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class InfluxDBServer:
    """One influxd process with its data in ``root`` (a new temp dir when not given)."""

    def __init__(
        self, root: Path | None = None, *, auth: bool = False, binary: str | None = None
    ) -> None:
        self._owns_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="homeiq-influxdb-")) if root is None else root
        self.root.mkdir(parents=True, exist_ok=True)
        self.auth = auth
        self.binary = binary or influxd_binary() or "influxd"
        self.http_port = 0
        self.rpc_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.root / "influxd.log"
        #: (user, password) sent with the harness's own requests (auth=True servers).
        self.credentials: tuple[str, str] | None = None
        atexit.register(self.kill)

    @property
    def url(self) -> str:
        """Base URL of the HTTP API."""
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start influxd (on the ports it had, after a stop) and wait until it answers."""
        if self.proc is not None and self.proc.poll() is None:
            return
        first = self.http_port == 0
        for _attempt in range(3 if first else 1):
            if first:  # another process may take a free port before influxd does
                self.http_port, self.rpc_port = _free_port(), _free_port()
            config = self.root / "influxdb.conf"
            config.write_text(
                _CONFIG.format(
                    root=self.root,
                    rpc_port=self.rpc_port,
                    http_port=self.http_port,
                    auth=str(self.auth).lower(),
                )
            )
            with self.log_path.open("ab") as log:
                self.proc = subprocess.Popen(
                    [self.binary, "run", "-config", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait_ready(timeout_s):
                return
        raise RuntimeError(f"influxd did not start; its log:\n{self.log_tail()}")

    def _wait_ready(self, timeout_s: float) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/ping", timeout=1) as response,
            ):
                if response.status == 204:
                    return True
            time.sleep(0.05)
        self.kill()
        return False

    def log_tail(self, lines: int = 30) -> str:
        """The end of influxd's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM and wait (SIGKILL if it does not exit in time)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def kill(self) -> None:
        """SIGKILL: a crash, no shutdown."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def close(self) -> None:
        """Stop the server and remove its directory if the harness created it."""
        self.stop()
        atexit.unregister(self.kill)
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> InfluxDBServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, path: str, params: dict[str, str], data: bytes) -> tuple[int, bytes]:
        if self.credentials is not None:
            params = {**params, "u": self.credentials[0], "p": self.credentials[1]}
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def query(self, q: str, db: str | None = None) -> dict[str, Any]:
        """Run InfluxQL (as POST, so CREATE/DROP work); the first statement's result."""
        params = {"epoch": "u"} if db is None else {"epoch": "u", "db": db}
        status, body = self._request("/query", params, urllib.parse.urlencode({"q": q}).encode())
        answer = json.loads(body)
        if status != 200 or "error" in answer:
            raise RuntimeError(f"influxdb query {q!r} failed ({status}): {answer}")
        result: dict[str, Any] = answer["results"][0]
        if "error" in result:
            raise RuntimeError(f"influxdb query {q!r} failed: {result['error']}")
        return result

    def rows(self, q: str, db: str) -> list[dict[str, Any]]:
        """The rows of a SELECT/SHOW as dicts."""
        rows = []
        for series in self.query(q, db).get("series", []):
            rows += [dict(zip(series["columns"], v, strict=True)) for v in series["values"]]
        return rows

    def write(self, lines: str | bytes, db: str, precision: str = "u") -> tuple[int, bytes]:
        """A raw line-protocol write; InfluxDB's status and body."""
        body = lines.encode() if isinstance(lines, str) else lines
        return self._request("/write", {"db": db, "precision": precision}, body)

    def create_database(self, name: str) -> None:
        """CREATE DATABASE (a no-op when it exists)."""
        self.query(f'CREATE DATABASE "{name}"')

    def drop_database(self, name: str) -> None:
        """DROP DATABASE."""
        self.query(f'DROP DATABASE "{name}"')


T0 = 1_795_641_737_000_000  # 2026-11-25T21:22:17Z in microseconds
S = 1_000_000


def event(
    entity_id: str = "sensor.temp", second: float = 0, state: str | None = "21.5", **kw: Any
) -> EventRecord:
    """A record at ``T0 + second``; ``attributes_json`` made from ``attributes`` as the
    normalizer makes it."""
    attributes = kw.pop("attributes", {})
    kw.setdefault("last_changed", T0 + int(second * S))
    return EventRecord(
        entity_id=entity_id,
        time=T0 + int(second * S),
        state=state,
        attributes=attributes,
        attributes_json=orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS),
        **kw,
    )


def influx_settings(url: str, database: str, **overrides: Any) -> Settings:
    """Settings for an InfluxDB store at ``url``."""
    return Settings(store="influxdb", influxdb_url=url, influxdb_database=database, **overrides)


def _missing(reason: str) -> NoReturn:
    missing(reason, "bash .ci/install-influxdb.sh")


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDBServer]:
    """A running InfluxDB 1.6.7 for the whole session (tests use their own databases)."""
    binary = influxd_binary()
    if binary is None:
        _missing("influxd (InfluxDB 1.6.7) is not installed")
    server = InfluxDBServer(tmp_path_factory.mktemp("influxdb"), binary=binary)
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def influxdb_database(influxdb: InfluxDBServer) -> Iterator[str]:
    """A new, empty database on the session's InfluxDB, dropped after the test."""
    name = f"homeiq_test_{uuid.uuid4().hex[:12]}"
    influxdb.create_database(name)
    yield name
    with contextlib.suppress(RuntimeError, OSError):
        influxdb.drop_database(name)
