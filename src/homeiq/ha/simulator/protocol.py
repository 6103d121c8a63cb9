"""The WebSocket API: authentication, commands, subscriptions and the frame writer.

One writer task per connection joins up to ``COALESCE_MAX`` queued messages into one
JSON array frame and awaits the socket, which is the flow control.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import Callable
from typing import Any, Final

import orjson
from aiohttp import WSMsgType, web

from homeiq.ha.simulator.behaviour import set_light
from homeiq.ha.simulator.connection import CLOSE_TIMEOUT_S, QUEUE_LOW, Conn, Raw, RawBinary
from homeiq.ha.simulator.core import HA_VERSION
from homeiq.ha.simulator.stream import Stream
from homeiq.observability.logging import cancel_and_wait

COALESCE_MAX: Final = 200  # messages per array frame
AUTH_TIMEOUT_S: Final = 10.0  # HA closes a connection that does not authenticate in time


class WebSocketAPI(Stream):
    """HA's ``/api/websocket``, validated and answered the way HA 2024.3.3 does."""

    # Set by Simulator.__init__.
    compress: bool
    _handlers: set[asyncio.Task[Any]]

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=55.0, compress=self.compress, timeout=CLOSE_TIMEOUT_S)
        await ws.prepare(request)
        conn = Conn(ws, request)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        self._conns.add(conn)
        self._stats.connections_total += 1
        try:
            await ws.send_frame(
                b'{"type":"auth_required","ha_version":"%b"}' % HA_VERSION.encode(), WSMsgType.TEXT
            )
            if not await self._authenticate(conn):
                return ws
            conn.writer = asyncio.create_task(
                self._write_loop(conn), name="homeiq-simulator-writer"
            )
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT or conn.closing:
                    break
                try:
                    data = orjson.loads(msg.data)
                except orjson.JSONDecodeError:
                    # HA disconnects on a frame that is not JSON.
                    break
                for item in data if isinstance(data, list) else (data,):
                    self._handle(conn, item)
        except ConnectionError:
            pass
        finally:
            self._forget(conn)
            if conn.writer is not None:
                await cancel_and_wait(conn.writer)
            if not ws.closed:
                with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
                    await ws.close()
            if task is not None:
                self._handlers.discard(task)
        return ws

    async def _authenticate(self, conn: Conn) -> bool:
        ws = conn.ws
        try:
            msg = await ws.receive(timeout=AUTH_TIMEOUT_S)
        except TimeoutError:
            await ws.close()
            return False
        if msg.type is not WSMsgType.TEXT:
            return False
        try:
            data = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            data = None
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(data, dict) or data.get("type") != "auth" or not isinstance(token, str):
            reply: dict[str, Any] = {
                "type": "auth_invalid",
                "message": "Auth message incorrectly formatted: "
                "required key not provided @ data['access_token']",
            }
            ok = False
        elif self.reject_tokens or not hmac.compare_digest(token.encode(), self.token.encode()):
            reply, ok = {"type": "auth_invalid", "message": "Invalid access"}, False
        else:
            reply, ok = {"type": "auth_ok", "ha_version": HA_VERSION}, True
        await ws.send_frame(orjson.dumps(reply), WSMsgType.TEXT)
        if ok:
            self._stats.auth_ok += 1
            conn.authed = True
        else:
            self._stats.auth_invalid += 1
            await ws.close()
        return ok

    async def _write_loop(self, conn: Conn) -> None:
        queue = conn.queue
        ws = conn.ws
        stats = self._stats
        text = WSMsgType.TEXT
        pop = queue.popleft
        try:
            while not conn.closing:
                if not queue:
                    conn.drained.set()
                    conn.wake.clear()
                    await conn.wake.wait()
                    continue
                opcode = text
                if conn.raw_pending:
                    frame, n = self._take_mixed(conn)
                    if type(frame) is RawBinary:
                        frame, opcode = bytes(frame), WSMsgType.BINARY
                elif conn.coalesce and len(queue) > 1:
                    n = min(len(queue), COALESCE_MAX)
                    frame = b"[" + b",".join([pop() for _ in range(n)]) + b"]"
                else:
                    frame, n = pop(), 1
                await ws.send_frame(frame, opcode)
                stats.frames_sent += 1
                stats.messages_sent += n
                stats.bytes_sent += len(frame)
                if len(queue) <= QUEUE_LOW:
                    conn.drained.set()
        except (ConnectionError, RuntimeError):
            conn.abort()
        finally:
            conn.drained.set()

    def _take_mixed(self, conn: Conn) -> tuple[bytes, int]:
        """Next frame when injected raw frames are queued: they go out alone, in order."""
        queue = conn.queue
        first = queue.popleft()
        if isinstance(first, Raw):
            conn.raw_pending -= 1
            return (first if type(first) is RawBinary else bytes(first)), 0
        if not conn.coalesce or not queue:
            return first, 1
        batch = [first]
        while queue and len(batch) < COALESCE_MAX and not isinstance(queue[0], Raw):
            batch.append(queue.popleft())
        return (b"[" + b",".join(batch) + b"]" if len(batch) > 1 else first), len(batch)

    def _result(self, conn: Conn, msg_id: int, result: Any) -> None:
        conn.push(orjson.dumps({"id": msg_id, "type": "result", "success": True, "result": result}))

    def _error(self, conn: Conn, msg_id: Any, code: str, message: str) -> None:
        conn.push(
            orjson.dumps(
                {
                    "id": msg_id,
                    "type": "result",
                    "success": False,
                    "error": {"code": code, "message": message},
                }
            )
        )

    def _handle(self, conn: Conn, msg: Any) -> None:
        """One command, validated the way HA's ``ActiveConnection.async_handle`` does."""
        if (
            type(msg) is not dict
            or type(cur_id := msg.get("id")) is not int
            or not cur_id
            or type(kind := msg.get("type")) is not str
            or not kind
        ):
            msg_id = msg.get("id") if isinstance(msg, dict) else 0
            self._error(conn, msg_id, "invalid_format", "Message incorrectly formatted.")
            return
        if cur_id <= conn.last_id:
            self._error(conn, cur_id, "id_reuse", "Identifier values have to increase.")
            return
        handler = self._commands.get(kind)
        if handler is None:
            # HA leaves last_id alone for unknown commands.
            self._error(conn, cur_id, "unknown_command", "Unknown command.")
            return
        conn.last_id = cur_id
        try:
            handler(self, conn, cur_id, msg)
        except (KeyError, TypeError, ValueError) as exc:
            self._error(conn, cur_id, "invalid_format", f"{type(exc).__name__}: {exc}")

    def _cmd_supported_features(self, conn: Conn, msg_id: int, msg: dict[str, Any]) -> None:
        features = msg.get("features")
        if not isinstance(features, dict):
            raise ValueError("features must be a dict")
        self._result(conn, msg_id, None)
        conn.coalesce = bool(features.get("coalesce_messages"))

    def _cmd_subscribe_events(self, conn: Conn, msg_id: int, msg: dict[str, Any]) -> None:
        event_type = msg.get("event_type", "*")
        if not isinstance(event_type, str):
            raise ValueError("event_type must be a string")
        conn.subs[msg_id] = event_type
        self._rebuild_targets()
        self._result(conn, msg_id, None)

    def _cmd_unsubscribe_events(self, conn: Conn, msg_id: int, msg: dict[str, Any]) -> None:
        sub = msg.get("subscription")
        if type(sub) is not int or sub not in conn.subs:
            self._error(conn, msg_id, "not_found", "Subscription not found.")
            return
        del conn.subs[sub]
        self._rebuild_targets()
        self._result(conn, msg_id, None)

    def _cmd_get_states(self, conn: Conn, msg_id: int, msg: dict[str, Any]) -> None:
        states = [orjson.Fragment(e.state_json) for e in self._entities if e.state_json is not None]
        self._result(conn, msg_id, states)

    def _cmd_ping(self, conn: Conn, msg_id: int, msg: dict[str, Any]) -> None:
        conn.push(b'{"id":%d,"type":"pong"}' % msg_id)

    def _cmd_get_config(self, conn: Conn, msg_id: int, msg: dict[str, Any]) -> None:
        self._result(conn, msg_id, self._config())

    def _cmd_devices(self, conn: Conn, msg_id: int, msg: dict[str, Any]) -> None:
        self._result(conn, msg_id, [d.entry() for d in self.home.devices])

    def _cmd_entities(self, conn: Conn, msg_id: int, msg: dict[str, Any]) -> None:
        self._result(conn, msg_id, [e.registry_entry() for e in self._entities if e.registered])

    def _cmd_areas(self, conn: Conn, msg_id: int, msg: dict[str, Any]) -> None:
        self._result(conn, msg_id, [a.entry() for a in self.home.areas])

    def _cmd_floors(self, conn: Conn, msg_id: int, msg: dict[str, Any]) -> None:
        self._result(conn, msg_id, [f.entry() for f in self.home.floors])

    def _cmd_labels(self, conn: Conn, msg_id: int, msg: dict[str, Any]) -> None:
        self._result(conn, msg_id, [])

    def _cmd_call_service(self, conn: Conn, msg_id: int, msg: dict[str, Any]) -> None:
        """``turn_on``/``turn_off``/``toggle`` and ``automation.trigger``, with a user context."""
        domain, service = msg.get("domain"), msg.get("service")
        services = ("turn_on", "turn_off", "toggle")
        known = (domain in ("light", "switch", "input_boolean") and service in services) or (
            domain == "automation" and service == "trigger"
        )
        if not known:
            self._error(conn, msg_id, "not_found", f"Service {domain}.{service} not found.")
            return
        data = msg.get("service_data") or {}
        target = msg.get("target") or {}
        ids = data.get("entity_id") or target.get("entity_id") or []
        ids = [ids] if isinstance(ids, str) else list(ids)
        us = self._clock.now_us()
        owner = self._user_index(self.home.owner_user_id)
        cx, cx_json = ctx = self._new_ctx(us // 1000, user=owner)
        for entity_id in ids:
            ent = self._by_id.get(entity_id)
            if ent is None or ent.removed or ent.domain != domain:
                continue
            if domain == "automation":
                self._run_automation(ent, cx)
                continue
            prev = ent.state
            on = service == "turn_on" or (service == "toggle" and ent.state != "on")
            attrs_json: bytes | None = None
            if domain == "light" and "friendly_name" in ent.spec:
                bright = data.get("brightness", ent.attrs.get("brightness") or 255) if on else None
                attrs_json = set_light(ent, None if bright is None else int(bright), 0)
                if prev == ent.state and attrs_json == ent.attrs_json:
                    continue
            else:
                ent.state = "on" if on else "off"
                if prev == ent.state:
                    continue  # same state and attributes: HA fires no state_changed
            self._commit(ent, prev, attrs_json, ctx, self._clock.now_us())
        self._after_batch()
        self._result(conn, msg_id, {"context": orjson.loads(cx_json)})

    _commands: Final[dict[str, Callable[[WebSocketAPI, Conn, int, dict[str, Any]], None]]] = {
        "supported_features": _cmd_supported_features,
        "subscribe_events": _cmd_subscribe_events,
        "unsubscribe_events": _cmd_unsubscribe_events,
        "get_states": _cmd_get_states,
        "get_config": _cmd_get_config,
        "ping": _cmd_ping,
        "call_service": _cmd_call_service,
        "config/device_registry/list": _cmd_devices,
        "config/entity_registry/list": _cmd_entities,
        "config/area_registry/list": _cmd_areas,
        "config/floor_registry/list": _cmd_floors,
        "config/label_registry/list": _cmd_labels,
    }
