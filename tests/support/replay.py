"""A WebSocket server that replays the session recorded on a real Home Assistant 2024.3.3.

It answers the client's commands with the results HA gave (by command type), then sends
every recorded inbound event frame in order, keeping HA's framing (objects and coalesced
arrays). Event messages are re-addressed to the client's own subscription ids; recorded
results inside arrays keep their shape but get ids the client never used.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ha-2024.3.3"
SESSION = FIXTURES / "ws-session.jsonl"
TOKEN = "replay-token"


def load_session() -> list[dict[str, Any]]:
    """Every line of the recorded session."""
    with SESSION.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def recorded_state_changes() -> list[dict[str, Any]]:
    """Every state_changed message Home Assistant sent in the recorded session, in order."""
    messages = []
    for line in load_session():
        if line["dir"] != "in":
            continue
        frame = line["frame"]
        for message in frame if isinstance(frame, list) else [frame]:
            if message.get("type") == "event" and message["event"]["event_type"] == "state_changed":
                messages.append(message)
    return messages


class ReplayServer:
    """Serve the recorded session to one client at a time."""

    def __init__(self) -> None:
        lines = load_session()
        types_by_id: dict[int, str] = {}
        self.results: dict[str, Any] = {}
        self.stream: list[Any] = []
        for line in lines:
            frame = line["frame"]
            if line["dir"] == "out":
                if "id" in frame:
                    types_by_id[frame["id"]] = frame["type"]
                continue
            messages = frame if isinstance(frame, list) else [frame]
            if any(m.get("type") == "event" for m in messages):
                self.stream.append(frame)
            elif frame.get("type") == "result":
                kind = types_by_id.get(frame["id"], "")
                self.results.setdefault(kind, frame.get("result"))
        self.frames_sent = 0
        self.commands: list[dict[str, Any]] = []
        self.done = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """Base URL for the client."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_get("/api/websocket", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Close the server."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        await ws.send_json({"type": "auth_required", "ha_version": "2024.3.3"})
        auth = await ws.receive_json()
        if auth.get("access_token") != TOKEN:
            await ws.send_json({"type": "auth_invalid", "message": "Invalid access token"})
            await ws.close()
            return ws
        await ws.send_json({"type": "auth_ok", "ha_version": "2024.3.3"})
        subscriptions: dict[str, int] = {}
        streamer: asyncio.Task[None] | None = None
        async for msg in ws:
            if msg.type != WSMsgType.TEXT and msg.type != WSMsgType.BINARY:
                break
            command = json.loads(msg.data)
            self.commands.append(command)
            kind, cid = command["type"], command["id"]
            if kind == "ping":
                await ws.send_json({"id": cid, "type": "pong"})
                continue
            result = None
            if kind == "subscribe_events":
                subscriptions[command["event_type"]] = cid
            elif kind in self.results:
                result = self.results[kind]
            else:
                await ws.send_json(
                    {
                        "id": cid,
                        "type": "result",
                        "success": False,
                        "error": {"code": "unknown_command", "message": "Unknown command."},
                    }
                )
                continue
            await ws.send_json({"id": cid, "type": "result", "success": True, "result": result})
            if kind == "subscribe_events" and command["event_type"] == "state_changed":
                streamer = asyncio.create_task(self._stream(ws, subscriptions))
        if streamer is not None:
            streamer.cancel()
        return ws

    async def _stream(self, ws: web.WebSocketResponse, subscriptions: dict[str, int]) -> None:
        unused_id = 1_000_000
        for frame in self.stream:
            messages = frame if isinstance(frame, list) else [frame]
            out = []
            for message in messages:
                message = dict(message)
                if message.get("type") == "event":
                    event_type = message["event"]["event_type"]
                    message["id"] = subscriptions.get(event_type, unused_id)
                else:
                    unused_id += 1
                    message["id"] = unused_id
                out.append(message)
            await ws.send_str(
                json.dumps(out if isinstance(frame, list) else out[0], ensure_ascii=False)
            )
            self.frames_sent += 1
        self.done.set()
