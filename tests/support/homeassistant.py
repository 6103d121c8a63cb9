"""A real, running, onboarded Home Assistant 2024.3.3 for integration tests.

`.ci/install-ha.sh` installs HA into its own venv; `HomeAssistantInstance` writes an
offline configuration into a temporary config dir, starts `hass` as a subprocess bound
to 127.0.0.1, onboards it through the REST API and creates a long-lived access token:

    ha = HomeAssistantInstance()      # venv from $HOMEIQ_HA_VENV or the default path
    ha.start()                        # blocking; ~2-5 s once installed
    await ha.set_state("sensor.x", "1")
    async with ha.websocket() as ws:
        await ws.command({"type": "get_states"})
    ha.close()                        # stop and remove the temp dir

The synchronous lifecycle (`start`, `stop`, `restart`) works from plain code and from
inside a running event loop (it then runs its own loop in a worker thread); the
`async_*` variants run it in a thread so the caller's loop keeps serving.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Coroutine, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import quote

import aiohttp
from yarl import URL

HA_VERSION = "2024.3.3"
VENV_ENV_VAR = "HOMEIQ_HA_VENV"
#: Written last by .ci/install-ha.sh: a venv without it is a half-finished install.
INSTALL_MARKER = ".homeiq-ha-complete"
#: What the harness remembers in the config dir, so a restart keeps port and token.
STATE_FILE = ".homeiq-harness.json"

USERNAME = "homeiq"
PASSWORD = "homeiq-test-password"  # a throwaway local test account

_T = TypeVar("_T")

# No default_config: it pulls in cloud, discovery and other integrations that go online.
# The homeassistant: block fixes location, units and time zone so nothing is detected,
# and a country silences the "no country" repair issue.
_CONFIGURATION_YAML = """\
homeassistant:
  name: HomeIQ test home
  latitude: 52.3731
  longitude: 4.8922
  elevation: 0
  unit_system: metric
  time_zone: UTC
  currency: EUR
  country: NL
  language: en

api:
websocket_api:
config:
onboarding:
history:
recorder:
  db_url: "sqlite:///{db_path}"
  commit_interval: 1
sun:
demo:
ffmpeg:
  ffmpeg_bin: /bin/true

http:
  server_host: 127.0.0.1
  server_port: {port}

input_boolean:
  homeiq_test:
    name: HomeIQ test switch

counter:
  homeiq_test:
    name: HomeIQ test counter
    initial: 0
    step: 1

input_number:
  homeiq_test:
    name: HomeIQ test level
    min: 0
    max: 100
    step: 1
    mode: box
{extra_yaml}"""


class HomeAssistantError(RuntimeError):
    """The harness could not start, onboard or talk to Home Assistant."""


def default_venv() -> Path:
    """Where .ci/install-ha.sh puts the venv (same default as the script)."""
    configured = os.environ.get(VENV_ENV_VAR)
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "homeiq" / f"ha-{HA_VERSION}-venv"


def venv_problem(venv: Path) -> str | None:
    """Why `venv` is not a usable HA install, or None when it is."""
    if not (venv / "bin" / "hass").exists():
        return f"no Home Assistant venv at {venv}"
    if not (venv / INSTALL_MARKER).exists():
        return f"Home Assistant venv at {venv} is incomplete (no {INSTALL_MARKER})"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run_blocking(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run `coro` to completion from sync code, even when a loop runs in this thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


class HAWebSocket:
    """One authenticated WebSocket connection: ids, results and buffered events."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._next_id = 1
        self._results: dict[int, dict[str, Any]] = {}
        self._events: deque[dict[str, Any]] = deque()
        self.ha_version = ""

    async def authenticate(self, token: str) -> str:
        """Do the auth handshake; returns the HA version from `auth_required`."""
        hello = await self.ws.receive_json(timeout=10)
        if hello.get("type") != "auth_required":
            raise HomeAssistantError(f"expected auth_required, got {hello!r}")
        await self.ws.send_json({"type": "auth", "access_token": token})
        answer = await self.ws.receive_json(timeout=10)
        if answer.get("type") != "auth_ok":
            raise HomeAssistantError(f"WebSocket auth failed: {answer!r}")
        self.ha_version = str(hello.get("ha_version", ""))
        return self.ha_version

    async def send(self, payload: dict[str, Any]) -> int:
        """Send a command with the next id (ids must strictly increase); returns the id."""
        msg_id = self._next_id
        self._next_id += 1
        await self.ws.send_json({**payload, "id": msg_id})
        return msg_id

    async def _read(self, timeout_s: float) -> None:
        msg = await self.ws.receive(timeout=timeout_s)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise HomeAssistantError(f"WebSocket closed or failed: {msg.type.name} {msg.data!r}")
        data = json.loads(msg.data)
        # With coalesce_messages a frame is a JSON array of messages.
        for item in data if isinstance(data, list) else [data]:
            if item.get("type") == "event":
                self._events.append(item)
            elif "id" in item:
                self._results[item["id"]] = item

    async def result(self, msg_id: int, timeout_s: float = 30.0) -> Any:
        """Wait for the result of command `msg_id`; raises when it failed."""
        deadline = time.monotonic() + timeout_s
        while msg_id not in self._results:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no result for command {msg_id} within {timeout_s}s")
            await self._read(remaining)
        message = self._results.pop(msg_id)
        if message.get("type") == "pong":
            return None
        if not message.get("success"):
            raise HomeAssistantError(f"command {msg_id} failed: {message.get('error')!r}")
        return message.get("result")

    async def command(self, payload: dict[str, Any], timeout_s: float = 30.0) -> Any:
        """Send `payload` and return its result."""
        return await self.result(await self.send(payload), timeout_s)

    async def subscribe_events(self, event_type: str | None = None) -> int:
        """Subscribe (to every event when `event_type` is None); returns the subscription id."""
        payload: dict[str, Any] = {"type": "subscribe_events"}
        if event_type is not None:
            payload["event_type"] = event_type
        msg_id = await self.send(payload)
        await self.result(msg_id)
        return msg_id

    async def next_event(self, timeout_s: float = 10.0) -> dict[str, Any]:
        """The next event message (`{"id": sub_id, "type": "event", "event": {...}}`)."""
        deadline = time.monotonic() + timeout_s
        while not self._events:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no event within {timeout_s}s")
            await self._read(remaining)
        return self._events.popleft()

    def pop_result(self, msg_id: int) -> dict[str, Any] | None:
        """A result already read for `msg_id` (raw message), without waiting."""
        return self._results.pop(msg_id, None)


class HomeAssistantInstance:
    """A Home Assistant subprocess with its own config dir, onboarded, with a token."""

    def __init__(
        self,
        venv: Path | str | None = None,
        *,
        config_dir: Path | str | None = None,
        port: int | None = None,
        extra_yaml: str = "",
        startup_timeout_s: float = 120.0,
    ) -> None:
        self.venv = Path(venv) if venv is not None else default_venv()
        self._owns_config_dir = config_dir is None
        self.config_dir = (
            Path(config_dir)
            if config_dir is not None
            else Path(tempfile.mkdtemp(prefix="homeiq-ha-"))
        )
        self.startup_timeout_s = startup_timeout_s
        self.token: str = ""
        self.port: int = port or 0
        self._load_state()
        if not self.port:
            self.port = _free_port()
        self.extra_yaml = extra_yaml
        self._proc: subprocess.Popen[bytes] | None = None
        self._console: IO[bytes] | None = None
        #: Seconds: "process" (spawn to RUNNING), "onboarding", "total" of the last start.
        self.timings: dict[str, float] = {}
        self.ha_version = ""

    # -- addresses and files --------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/websocket"

    @property
    def log_path(self) -> Path:
        """HA's own log file."""
        return self.config_dir / "home-assistant.log"

    @property
    def console_log_path(self) -> Path:
        """stdout/stderr of the hass process."""
        return self.config_dir / "hass.console.log"

    @property
    def db_path(self) -> Path:
        return self.config_dir / "home-assistant_v2.db"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """The end of the console and HA logs, for error messages."""
        parts = []
        for path in (self.console_log_path, self.log_path):
            if path.exists():
                text = path.read_text(encoding="utf-8", errors="replace").splitlines()
                parts.append(f"--- {path.name} ---\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)

    def _load_state(self) -> None:
        state_file = self.config_dir / STATE_FILE
        if state_file.exists():
            state = json.loads(state_file.read_text(encoding="utf-8"))
            self.token = state.get("token", "")
            self.port = self.port or int(state.get("port", 0))

    def _save_state(self) -> None:
        state = {"token": self.token, "port": self.port, "username": USERNAME}
        (self.config_dir / STATE_FILE).write_text(json.dumps(state), encoding="utf-8")

    def write_config(self) -> None:
        """Write configuration.yaml (every start, so port and extras stay current)."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        yaml = _CONFIGURATION_YAML.format(
            db_path=self.db_path, port=self.port, extra_yaml=self.extra_yaml
        )
        (self.config_dir / "configuration.yaml").write_text(yaml, encoding="utf-8")

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start HA and block until it is RUNNING, onboarded and has a token."""
        if self.running:
            return
        problem = venv_problem(self.venv)
        if problem:
            raise HomeAssistantError(f"{problem}; run .ci/install-ha.sh")
        self.write_config()
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
        }
        self._console = self.console_log_path.open("ab")
        began = time.monotonic()
        # --skip-pip: the venv already holds every requirement; a test never installs.
        # Own session/process group: stop() signals HA and anything it spawned.
        self._proc = subprocess.Popen(
            [str(self.venv / "bin" / "hass"), "-c", str(self.config_dir), "--skip-pip"],
            stdin=subprocess.DEVNULL,
            stdout=self._console,
            stderr=subprocess.STDOUT,
            cwd=self.config_dir,
            env=env,
            start_new_session=True,
        )
        atexit.register(self.stop)
        try:
            _run_blocking(self._bring_up(began))
        except BaseException:
            self.stop()
            raise
        self.timings["total"] = time.monotonic() - began

    async def _bring_up(self, began: float) -> None:
        deadline = began + self.startup_timeout_s
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            if not self.token:
                await self._wait(session, deadline, self._onboarding_open)
                onboard_began = time.monotonic()
                await self._onboard(session)
                self.timings["onboarding"] = time.monotonic() - onboard_began
            await self._wait(session, deadline, self._core_running)
        self.timings["process"] = time.monotonic() - began - self.timings.get("onboarding", 0.0)

    async def _wait(self, session: aiohttp.ClientSession, deadline: float, probe: Any) -> None:
        last_error = ""
        while True:
            if self._proc is None or self._proc.poll() is not None:
                code = self._proc.returncode if self._proc else None
                raise HomeAssistantError(f"hass exited with {code}\n{self.log_tail()}")
            try:
                if await probe(session):
                    return
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                last_error = repr(exc)
            if time.monotonic() > deadline:
                raise HomeAssistantError(
                    f"Home Assistant not ready within {self.startup_timeout_s}s "
                    f"(last error: {last_error})\n{self.log_tail()}"
                )
            await asyncio.sleep(0.1)

    async def _onboarding_open(self, session: aiohttp.ClientSession) -> bool:
        async with session.get(f"{self.url}/api/onboarding") as resp:
            if resp.status != 200:
                return False
            steps = {step["step"]: step["done"] for step in await resp.json()}
        if steps.get("user"):
            raise HomeAssistantError(
                f"{self.config_dir} is already onboarded but holds no harness token"
            )
        return True

    async def _core_running(self, session: aiohttp.ClientSession) -> bool:
        async with session.get(f"{self.url}/api/config", headers=self._headers()) as resp:
            if resp.status == 401:
                raise HomeAssistantError("the harness token was rejected")
            if resp.status != 200:
                return False
            config = await resp.json()
        self.ha_version = config.get("version", "")
        return bool(config.get("state") == "RUNNING")

    async def _onboard(self, session: aiohttp.ClientSession) -> None:
        # Only the user step: core_config would set up integrations that go online, and
        # analytics/integration are not needed for the REST and WebSocket APIs.
        client_id = f"{self.url}/"
        user = {
            "client_id": client_id,
            "name": "HomeIQ Test",
            "username": USERNAME,
            "password": PASSWORD,
            "language": "en",
        }
        async with session.post(f"{self.url}/api/onboarding/users", json=user) as resp:
            body = await resp.text()
            if resp.status != 200:
                raise HomeAssistantError(f"onboarding user step: {resp.status} {body}")
            auth_code = json.loads(body)["auth_code"]
        form = {"grant_type": "authorization_code", "code": auth_code, "client_id": client_id}
        async with session.post(f"{self.url}/auth/token", data=form) as resp:
            body = await resp.text()
            if resp.status != 200:
                raise HomeAssistantError(f"token exchange: {resp.status} {body}")
            access_token = json.loads(body)["access_token"]
        async with session.ws_connect(self.ws_url) as raw:
            ws = HAWebSocket(raw)
            await ws.authenticate(access_token)
            self.token = await ws.command(
                {
                    "type": "auth/long_lived_access_token",
                    "client_name": "homeiq-tests",
                    "lifespan": 3650,
                }
            )
        self._save_state()

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM the process group, wait, SIGKILL if it does not exit in time."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
            # Anything HA spawned that outlived it (the group is ours alone).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self._console is not None:
            self._console.close()
            self._console = None
        atexit.unregister(self.stop)

    def restart(self) -> None:
        """Stop and start again with the same config dir, port, database and token."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop, and remove the config dir if this instance created it."""
        self.stop()
        if self._owns_config_dir:
            shutil.rmtree(self.config_dir, ignore_errors=True)

    async def async_start(self) -> None:
        await asyncio.to_thread(self.start)

    async def async_stop(self) -> None:
        await asyncio.to_thread(self.stop)

    async def async_restart(self) -> None:
        await asyncio.to_thread(self.restart)

    def __enter__(self) -> HomeAssistantInstance:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- REST -------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def request(
        self,
        method: str,
        path: str | URL,
        *,
        json_body: Any = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        """An authenticated REST call; returns the decoded JSON body, raises on >= 400."""
        url = path if isinstance(path, URL) else URL(f"{self.url}{path}")
        timeout = aiohttp.ClientTimeout(total=30)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(
                method, url, json=json_body, params=params, headers=self._headers()
            ) as resp,
        ):
            body = await resp.text()
            if resp.status >= 400:
                raise HomeAssistantError(f"{method} {url.path}: {resp.status} {body}")
            return json.loads(body) if body else None

    async def set_state(
        self, entity_id: str, state: str, attributes: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """POST /api/states/<entity_id>; returns the new state object."""
        body = {"state": state, "attributes": attributes or {}}
        result: dict[str, Any] = await self.request(
            "POST", f"/api/states/{entity_id}", json_body=body
        )
        return result

    async def remove_state(self, entity_id: str) -> None:
        """DELETE /api/states/<entity_id> (fires state_changed with new_state null)."""
        await self.request("DELETE", f"/api/states/{entity_id}")

    async def get_state(self, entity_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", f"/api/states/{entity_id}")
        return result

    async def call_service(
        self, domain: str, service: str, data: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """POST /api/services/<domain>/<service>; returns the states it changed."""
        result: list[dict[str, Any]] = await self.request(
            "POST", f"/api/services/{domain}/{service}", json_body=data or {}
        )
        return result

    async def history(
        self,
        entity_ids: Sequence[str],
        start: datetime,
        end: datetime | None = None,
        *,
        significant_changes_only: bool = False,
        minimal_response: bool = False,
        no_attributes: bool = False,
    ) -> list[list[dict[str, Any]]]:
        """GET /api/history/period/<start>: one list of states per entity."""
        if start.tzinfo is None or (end is not None and end.tzinfo is None):
            raise ValueError("history() needs timezone-aware datetimes")
        # HA answers 400 unless the start's "+00:00" is percent-encoded.
        query = [
            ("filter_entity_id", ",".join(entity_ids)),
            ("significant_changes_only", "1" if significant_changes_only else "0"),
        ]
        if end is not None:
            query.append(("end_time", quote(end.isoformat(), safe="")))
        query += [
            (flag, "")
            for flag, on in (
                ("minimal_response", minimal_response),
                ("no_attributes", no_attributes),
            )
            if on
        ]
        query_string = "&".join(f"{key}={value}" if value else key for key, value in query)
        url = URL(
            f"{self.url}/api/history/period/{quote(start.isoformat(), safe='')}?{query_string}",
            encoded=True,
        )
        result: list[list[dict[str, Any]]] = await self.request("GET", url)
        return result

    # -- WebSocket --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def websocket(self, token: str | None = None) -> AsyncIterator[HAWebSocket]:
        """An authenticated WebSocket connection (with the harness token by default)."""
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(self.ws_url, max_msg_size=64 * 1024 * 1024) as raw,
        ):
            ws = HAWebSocket(raw)
            await ws.authenticate(token or self.token)
            yield ws

    async def ws_command(self, payload: dict[str, Any], timeout_s: float = 30.0) -> Any:
        """Run one WebSocket command on a fresh connection and return its result."""
        async with self.websocket() as ws:
            return await ws.command(payload, timeout_s)
