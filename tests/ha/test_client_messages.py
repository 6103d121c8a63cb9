"""What the HA client says when it cannot connect: the next attempt's delay and number,
and the cause in one line, without aiohttp's ``ssl:default`` noise."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket

import pytest

from homeiq.ha.client import HAClient
from homeiq.observability.metrics import Metrics
from homeiq.pipeline.queue import EventQueue

RETRY = re.compile(
    r"^Home Assistant: cannot connect to 127\.0\.0\.1:(\d+): connection refused;"
    r" reconnecting in (\d+\.\d) s \(attempt (\d+)\)$"
)


def _closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_refused_connection_says_when_the_next_attempt_is(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = _closed_port()
    metrics = Metrics()
    client = HAClient(
        f"http://127.0.0.1:{port}",
        "token",
        EventQueue(10, metrics),
        metrics,
        reconnect_min_s=0.01,
        reconnect_max_s=0.04,
    )
    caplog.set_level(logging.WARNING, logger="homeiq.ha.client")
    task = asyncio.create_task(client.run())
    try:
        for _ in range(500):
            if sum(1 for r in caplog.records if "reconnecting" in r.getMessage()) >= 4:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    lines = [r.getMessage() for r in caplog.records if r.name == "homeiq.ha.client"]
    assert len(lines) >= 4, lines
    matches = [RETRY.match(line) for line in lines]
    assert all(matches), lines
    assert not any("ssl:default" in line or "Errno" in line for line in lines)
    attempts = [int(m.group(3)) for m in matches if m]
    assert attempts[:4] == [1, 2, 3, 4]
    delays = [float(m.group(2)) for m in matches if m]
    # Backoff doubles from 0.01 s to the 0.04 s cap, jittered down to half.
    assert all(0.0 <= d <= 0.04 for d in delays)
    assert {int(m.group(1)) for m in matches if m} == {port}
