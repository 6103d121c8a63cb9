"""What every HTTP client of HomeIQ (Home Assistant, InfluxDB, webhooks) says when a
connection fails: one short line, the same wording everywhere.

aiohttp's own text carries noise a user cannot act on ("ssl:default", "Connect call
failed ('127.0.0.1', 8123)"); the errno already says plainly what happened.
"""

from __future__ import annotations

import os

import aiohttp


def connection_error(exc: BaseException, url: str) -> str:
    """A failure to connect in one short line, without aiohttp's ``ssl:default`` noise:
    "cannot connect to 127.0.0.1:8123: connection refused"."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        error = exc.os_error
        # asyncio's strerror is "Connect call failed (...)": the errno says it plainly.
        cause = os.strerror(error.errno) if error.errno else str(error) or type(error).__name__
        return f"cannot connect to {exc.host}:{exc.port}: {cause[:1].lower()}{cause[1:]}"
    if isinstance(exc, TimeoutError):
        return f"no answer from {url} in time"
    text = str(exc) or type(exc).__name__
    return f"cannot reach {url}: {text}"
