"""One WebSocket client connection: its send queue, subscriptions and writer task."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Final

from aiohttp import web

QUEUE_HIGH: Final = 2000  # rate=0 generation waits while a subscriber has this many queued
QUEUE_LOW: Final = 500  # ... and resumes once it is back down to this
CLOSE_TIMEOUT_S: Final = 1.0


class Raw(bytes):
    """A frame queued by :meth:`Simulator.inject_raw`: sent alone and verbatim."""


class RawBinary(Raw):
    """A :class:`Raw` frame sent as a BINARY frame (``inject_raw(..., binary=True)``)."""


class Conn:
    """One WebSocket client: its send queue, subscriptions and writer task."""

    __slots__ = (
        "authed",
        "closing",
        "coalesce",
        "drained",
        "last_id",
        "queue",
        "raw_pending",
        "request",
        "subs",
        "wake",
        "writer",
        "ws",
    )

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.request = request
        self.queue: deque[bytes] = deque()
        self.wake = asyncio.Event()
        self.drained = asyncio.Event()
        self.coalesce = False
        self.authed = False
        self.closing = False
        self.last_id = 0
        self.raw_pending = 0
        self.subs: dict[int, str] = {}
        self.writer: asyncio.Task[None] | None = None

    def push(self, msg: bytes) -> None:
        """Queue one message and wake the writer."""
        self.queue.append(msg)
        self.wake.set()

    def abort(self) -> None:
        """Cut the TCP connection without a close frame, like a crash or network loss."""
        self.closing = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        self.drained.set()
