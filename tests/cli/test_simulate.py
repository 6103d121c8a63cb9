"""``homeiq simulate`` as a user runs it: a real process serving the simulated Home
Assistant on the host, port and token given, streaming ``--count`` events, and stopping
on Ctrl-C with exit 0 and no traceback."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys

import aiohttp

TOKEN = "simulate-test-token-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def auth(session: aiohttp.ClientSession, url: str, token: str) -> str:
    async with session.ws_connect(url) as ws:
        assert (await ws.receive_json())["type"] == "auth_required"
        await ws.send_json({"type": "auth", "access_token": token})
        kind: str = (await ws.receive_json())["type"]
        return kind


async def test_simulate_serves_on_the_given_port_with_the_given_token() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMEIQ_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "homeiq.cli", "simulate", "--host", "127.0.0.1",
        "--port", str(port), "--token", TOKEN, "--rate", "0", "--count", "5", "--seed", "7",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    try:
        seen = b""
        while b"simulator ready" not in seen:  # its log line says where it listens
            line = await asyncio.wait_for(proc.stderr.readline(), 60)
            assert line, f"simulate exited early: {seen.decode()}"
            seen += line
        assert f"ws://127.0.0.1:{port}/api/websocket".encode() in seen
        url = f"http://127.0.0.1:{port}/api/websocket"
        async with aiohttp.ClientSession() as session:
            assert await auth(session, url, "wrong-token-0123456789") == "auth_invalid"
            async with session.ws_connect(url) as ws:
                await ws.receive_json()
                await ws.send_json({"type": "auth", "access_token": TOKEN})
                assert (await ws.receive_json())["type"] == "auth_ok"
                await ws.send_json(
                    {"id": 1, "type": "subscribe_events", "event_type": "state_changed"}
                )
                events = []
                while len(events) < 5:
                    message = await asyncio.wait_for(ws.receive_json(), 30)
                    if message.get("type") == "event":
                        events.append(message["event"])
        assert all(e["event_type"] == "state_changed" for e in events)
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    assert b"Traceback" not in seen + err
