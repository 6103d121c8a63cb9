"""Home Assistant WebSocket client: auth, subscriptions, heartbeat, reconnect forever.

(HA accepts only TEXT frames: a binary frame closes the connection.)

Facts of the protocol this code relies on (verified against HA 2024.3.3, DESIGN §6):

* Command ids must strictly increase per connection, so allocating an id and sending
  the command happen under one lock: two concurrent commands could otherwise go out of
  order.
* With ``coalesce_messages`` a frame is one JSON object or an array of them, and an event
  can arrive in the same array as, and before, the result of the command that caused it.
* HA drops a client that leaves 4096 messages pending, so the reader only parses and
  enqueues; it never waits on storage (see :class:`~homeiq.pipeline.queue.EventQueue`).
* A rejected token is final: retrying gets the IP banned, so ``auth_invalid`` stops.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson

from homeiq.errors import AuthenticationFailed, ProtocolError, SourceUnavailable
from homeiq.network import connection_error
from homeiq.observability.logging import cancel_and_wait
from homeiq.observability.metrics import Metrics
from homeiq.pipeline.deadletters import dead_letter
from homeiq.pipeline.normalize import describe
from homeiq.pipeline.queue import EventQueue, Incoming

log = logging.getLogger(__name__)

REGISTRY_EVENTS = (
    "floor_registry_updated",
    "area_registry_updated",
    "device_registry_updated",
    "entity_registry_updated",
)
# HA's own frames top out around a few MB (get_states of a large home); cap far above.
MAX_FRAME_BYTES = 64 * 1024 * 1024


def websocket_url(base_url: str) -> str:
    """``http(s)://host:port`` (or ``ws(s)://``) -> the ``/api/websocket`` endpoint."""
    url = base_url.rstrip("/")
    if url.startswith("http"):
        url = "ws" + url[len("http") :]
    return url if url.endswith("/api/websocket") else url + "/api/websocket"


class HAConnection:
    """One authenticated WebSocket session: send commands, get their results."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ha_version: str | None = None
        self._last_id = 0
        self._send_lock = asyncio.Lock()
        self._pending: dict[int, asyncio.Future[Any]] = {}

    async def request(self, payload: dict[str, Any], wait_s: float = 30.0) -> tuple[int, Any]:
        """Send a command with the next id; wait for its ``result`` (or ``pong``).

        Returns the id with the result: a subscription's events carry that id.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        async with self._send_lock:
            self._last_id += 1
            command_id = self._last_id
            self._pending[command_id] = future
            try:
                await self.ws.send_str(orjson.dumps({**payload, "id": command_id}).decode())
            except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
                self._pending.pop(command_id, None)
                raise SourceUnavailable(f"sending {payload.get('type')}: {exc}") from exc
        try:
            return command_id, await asyncio.wait_for(future, wait_s)
        except TimeoutError as exc:
            raise SourceUnavailable(f"no answer to {payload.get('type')} in {wait_s}s") from exc
        finally:
            self._pending.pop(command_id, None)

    async def command(self, payload: dict[str, Any], wait_s: float = 30.0) -> Any:
        """Send a command and return its result; ProtocolError when HA reports failure."""
        return (await self.request(payload, wait_s))[1]

    def resolve(self, message: dict[str, Any]) -> bool:
        """Hand a ``result``/``pong`` to its waiting command; False if nobody waits."""
        msg_id = message.get("id")
        future = self._pending.get(msg_id) if type(msg_id) is int else None
        if future is None or future.done():
            return False
        if message.get("type") == "pong":
            future.set_result(None)
        elif message.get("success"):
            future.set_result(message.get("result"))
        else:
            error = message.get("error") or {}
            future.set_exception(
                ProtocolError(f"{error.get('code', 'error')}: {error.get('message', message)}")
            )
        return True

    def fail_pending(self, exc: BaseException) -> None:
        """Fail every waiting command (the connection is gone)."""
        for future in self._pending.values():
            if not future.done():
                future.set_exception(exc)
        self._pending.clear()


OnConnected = Callable[[HAConnection], Awaitable[None]]
OnRegistryEvent = Callable[[str], None]
OnSubscribed = Callable[[], None]


class HAClient:
    """Keeps one connection to Home Assistant alive and feeds state changes to a queue."""

    def __init__(
        self,
        url: str,
        token: str,
        queue: EventQueue,
        metrics: Metrics,
        *,
        on_connected: OnConnected | None = None,
        on_registry_event: OnRegistryEvent | None = None,
        on_subscribed: OnSubscribed | None = None,
        on_streaming: OnConnected | None = None,
        reconnect_min_s: float = 1.0,
        reconnect_max_s: float = 60.0,
        heartbeat_s: float = 30.0,
        heartbeat_timeout_s: float = 10.0,
    ) -> None:
        self.url = websocket_url(url)
        self._token = token
        self.queue = queue
        self.metrics = metrics
        self.on_connected = on_connected
        self.on_registry_event = on_registry_event
        self.on_subscribed = on_subscribed
        self.on_streaming = on_streaming
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.heartbeat_s = heartbeat_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.connected = asyncio.Event()
        self.connection: HAConnection | None = None
        self._state_subscription: int | None = None
        self._registry_subscriptions: dict[int, str] = {}

    async def run(self) -> None:
        """Connect, stream, reconnect with jittered exponential backoff; forever.

        Returns only by cancellation; raises :class:`AuthenticationFailed` when the token
        is rejected, because retrying a bad token gets the client banned.
        """
        attempt = retries = 0
        async with aiohttp.ClientSession() as session:
            while True:
                reason, problem = "closed", "connection closed"
                try:
                    await self._session(session)
                except AuthenticationFailed:
                    raise
                except (SourceUnavailable, ProtocolError) as exc:
                    reason, problem = type(exc).__name__, f"connection lost: {exc}"
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    reason, problem = type(exc).__name__, connection_error(exc, self.url)
                finally:
                    was_up = self.connected.is_set()
                    self.connected.clear()
                    self.metrics.ha_connected.set(0)
                    self.connection = None
                if was_up:
                    self.metrics.ha_disconnects.labels(reason).inc()
                    attempt = retries = 0  # it was up: start the backoff afresh
                delay = min(self.reconnect_max_s, self.reconnect_min_s * 2**attempt)
                delay *= random.uniform(0.5, 1.0)
                attempt, retries = min(attempt + 1, 30), retries + 1
                log.warning(
                    "Home Assistant: %s; reconnecting in %.1f s (attempt %d)",
                    problem,
                    delay,
                    retries,
                )
                await asyncio.sleep(delay)

    async def _session(self, session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(
            self.url,
            max_msg_size=MAX_FRAME_BYTES,
            autoping=True,
            timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
        ) as ws:
            conn = HAConnection(ws)
            await self._authenticate(ws, conn)
            self.connection = conn
            reader = asyncio.create_task(self._read(conn), name="ha-reader")
            try:
                await self._subscribe(conn)
                self.connected.set()
                self.metrics.ha_connected.set(1)
                self.metrics.ha_connects.inc()
                log.info("connected to Home Assistant %s at %s", conn.ha_version, self.url)
                heartbeat = asyncio.create_task(self._heartbeat(conn), name="ha-heartbeat")
                try:
                    done, _ = await asyncio.wait(
                        {reader, heartbeat}, return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in done:
                        task.result()  # surface the error that ended the session
                finally:
                    await cancel_and_wait(heartbeat)
            finally:
                await cancel_and_wait(reader)
                conn.fail_pending(SourceUnavailable("connection closed"))
            raise SourceUnavailable("Home Assistant closed the connection")

    async def _authenticate(self, ws: aiohttp.ClientWebSocketResponse, conn: HAConnection) -> None:
        hello = await self._receive_json(ws)
        if hello.get("type") != "auth_required":
            raise ProtocolError(f"expected auth_required, got {hello.get('type')!r}")
        await ws.send_str(orjson.dumps({"type": "auth", "access_token": self._token}).decode())
        answer = await self._receive_json(ws)
        if answer.get("type") == "auth_invalid":
            raise AuthenticationFailed(
                f"Home Assistant rejected the access token: {answer.get('message', '')}."
                " Not retrying (Home Assistant bans clients that retry bad tokens);"
                " fix HOMEIQ_HA_TOKEN and restart."
            )
        if answer.get("type") != "auth_ok":
            raise ProtocolError(f"expected auth_ok, got {answer.get('type')!r}")
        conn.ha_version = answer.get("ha_version")

    async def _receive_json(self, ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
        msg = await ws.receive(timeout=self.heartbeat_timeout_s)
        if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            raise SourceUnavailable(f"connection ended during auth ({msg.type.name})")
        try:
            data = orjson.loads(msg.data)
        except orjson.JSONDecodeError as exc:
            raise ProtocolError(f"non-JSON frame during auth: {exc}") from exc
        if not isinstance(data, dict):
            raise ProtocolError("auth message is not an object")
        return data

    async def _subscribe(self, conn: HAConnection) -> None:
        await conn.command({"type": "supported_features", "features": {"coalesce_messages": 1}})
        self._registry_subscriptions = {}
        self._state_subscription = None
        for event_type in REGISTRY_EVENTS:
            try:
                sub, _ = await conn.request({"type": "subscribe_events", "event_type": event_type})
            except ProtocolError as exc:  # older HA has no floor registry: not fatal
                log.info("no %s subscription: %s", event_type, exc)
                continue
            self._registry_subscriptions[sub] = event_type
        # Registries first, then state changes: every event gets today's placement.
        if self.on_connected is not None:
            await self.on_connected(conn)
        # Events can arrive in the same frame as, and before, this result: the reader
        # routes them by event_type until the id is known.
        sub, _ = await conn.request({"type": "subscribe_events", "event_type": "state_changed"})
        self._state_subscription = sub
        # From here on every state change reaches the queue: whatever happened before
        # (since the last stored event) is backfill's to fetch.
        if self.on_subscribed is not None:
            self.on_subscribed()
        # Then the state snapshot: states read now and the stream overlap, so no change
        # falls between them.
        if self.on_streaming is not None:
            await self.on_streaming(conn)

    async def _heartbeat(self, conn: HAConnection) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await conn.command({"type": "ping"}, wait_s=self.heartbeat_timeout_s)
            except SourceUnavailable as exc:
                raise SourceUnavailable(f"heartbeat failed: {exc}") from exc

    async def _read(self, conn: HAConnection) -> None:
        async for msg in conn.ws:
            if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                break
            raw: str | bytes = msg.data
            if _only_events(raw):
                # The fast path: a frame of state changes goes to the writer unparsed.
                await self.queue.offer(Incoming(raw, weight=_count_events(raw)))
                continue
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                await self._reject("invalid_json", str(exc), raw)
                continue
            for message in parsed if isinstance(parsed, list) else (parsed,):
                await self._dispatch(conn, message)
        raise SourceUnavailable(f"websocket closed ({conn.ws.close_code})")

    async def _dispatch(self, conn: HAConnection, message: Any) -> None:
        if not isinstance(message, dict):
            await self._reject("not_an_object", f"message is {type(message).__name__}", message)
            return
        kind = message.get("type")
        if kind == "event":
            sub = message.get("id")
            event_type = _event_type(message)
            if sub == self._state_subscription or event_type == "state_changed":
                await self.queue.offer(Incoming(message))
            elif (type(sub) is int and sub in self._registry_subscriptions) or (
                isinstance(event_type, str) and event_type in REGISTRY_EVENTS
            ):
                if self.on_registry_event is not None:
                    self.on_registry_event(str(event_type))
            else:
                detail = f"event for subscription {describe(sub)}"
                await self._reject("unexpected_event", detail, message)
        elif kind in ("result", "pong"):
            if not conn.resolve(message):  # an answer to nothing we asked: keep it
                detail = f"{kind} for id {describe(message.get('id'))}"
                await self._reject("unexpected_result", detail, message)
        else:
            await self._reject("unknown_message", f"message type {describe(kind)}", message)

    async def _reject(self, reason: str, detail: str, payload: Any) -> None:
        await self.queue.offer(dead_letter(reason, detail, payload))


def _only_events(frame: str | bytes) -> bool:
    """True when a frame can only hold subscription events for the writer.

    A substring test, deliberately conservative: any frame that might hold a command
    result, a pong or a registry event is parsed here instead, so a false "no" only
    costs time, and a "yes" is always right (the writer dead-letters anything else).
    """
    if isinstance(frame, bytes):
        return b'"result"' not in frame and b'"pong"' not in frame and b"_registry_" not in frame
    return '"result"' not in frame and '"pong"' not in frame and "_registry_" not in frame


def _count_events(frame: str | bytes) -> int:
    """Messages in a frame, for the queue's bound (an estimate is enough there)."""
    marker: Any = b'"event_type"' if isinstance(frame, bytes) else '"event_type"'
    return max(1, frame.count(marker))


def _event_type(message: dict[str, Any]) -> Any:
    event = message.get("event")
    return event.get("event_type") if isinstance(event, dict) else None
