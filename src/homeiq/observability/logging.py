"""Structured logging: text for people, one JSON object a line for machines.

Secrets never reach a log line: a filter replaces any configured secret value wherever
it appears in a formatted record, whatever code logged it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterable
from typing import Any

import orjson

from homeiq.errors import HomeIQError

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with any ``extra=`` fields kept."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a JSON line."""
        payload: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            payload["exc"] = record.exc_text
        return orjson.dumps(payload, default=str).decode()


class RedactSecrets(logging.Filter):
    """Replace secret values in log records with ``<redacted>``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub the message, string ``extra=`` fields and exception text; never drops."""
        if not self.secrets:
            return True
        message = record.getMessage()
        redacted = self._scrub(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self._scrub(value))
        if record.exc_info:
            # Format the traceback once, scrubbed; formatters reuse exc_text.
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = self._scrub(text), None
        elif record.exc_text:
            record.exc_text = self._scrub(record.exc_text)
        return True

    def _scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "<redacted>")
        return text


def setup_logging(level: str, fmt: str, secrets: Iterable[str] = ()) -> None:
    """Configure the root logger once for the process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactSecrets(secrets))
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log would print every request at INFO; keep it for debugging.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _awaiting(task: asyncio.Task[Any]) -> str:
    """Where a suspended task waits, every coroutine down the ``await`` chain (a task's
    own stack shows only its outermost frame while it is suspended)."""
    lines = []
    coro: Any = task.get_coro()
    for _ in range(50):
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        if frame is None:
            lines.append(f"  awaiting {coro!r}")
            break
        lines.append(f"  {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
        if coro is None:
            break
    return "\n".join(lines)


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait for it to end. Its own cancellation is expected and
    ignored; a cancellation of the caller goes on. (``suppress(CancelledError)`` around
    the wait would swallow that too, and a stopped caller would carry on: a client
    cancelled at this moment went back to reconnecting, and its stop never returned.)"""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


async def stop_task(
    task: asyncio.Task[Any] | None, logger: logging.Logger, *, within_s: float | None = None
) -> None:
    """Cancel a background task and wait for it to end. A failure it had ended with is
    logged with its exception (never swallowed), and stopping goes on: a caller stopping
    several components must reach them all. HomeIQ's own errors say what happened in
    their message; a traceback is logged only for anything else (a bug).

    With ``within_s``, a task still running that long after its cancellation is left
    behind with an error naming where it is stuck, so that stopping still ends."""
    if task is None:
        return
    task.cancel()
    if within_s is not None:
        await asyncio.wait({task}, timeout=within_s)
        if not task.done():
            where = _awaiting(task)
            logger.error(
                "%s did not stop within %g s of being cancelled; left running at:\n%s",
                task.get_name(),
                within_s,
                where,
            )
            return
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # the caller itself is being cancelled, not only the task
    except HomeIQError as exc:
        logger.error("%s had failed: %s", task.get_name(), exc)
    except Exception as exc:
        logger.error("%s had failed: %s", task.get_name(), exc, exc_info=exc)
