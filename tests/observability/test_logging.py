"""Structured logging: JSON lines keep extra fields; secrets never reach a log line."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from homeiq.errors import AuthenticationFailed
from homeiq.observability.logging import JsonFormatter, RedactSecrets, setup_logging, stop_task

SECRET = "llat-0123456789abcdef"


def make_record(
    msg: str,
    *args: object,
    level: int = logging.INFO,
    extra: dict[str, object] | None = None,
    exc_info: bool = False,
) -> logging.LogRecord:
    logger = logging.getLogger("homeiq.test")
    info = sys.exc_info() if exc_info else None
    return logger.makeRecord("homeiq.test", level, __file__, 42, msg, args, info, extra=extra or {})


def _per_phase(handler: logging.Handler) -> bool:
    # pytest adds and removes a capture handler around each test phase.
    return type(handler).__name__ == "LogCaptureHandler"


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """Undo what setup_logging does to the root logger (and aiohttp.access)."""
    root = logging.getLogger()
    access = logging.getLogger("aiohttp.access")
    handlers, level, access_level = root.handlers[:], root.level, access.level
    yield root
    # Put back the session-wide handlers; keep the current phase's capture handlers for
    # pytest to remove, and drop the one setup_logging installed.
    root.handlers[:] = [h for h in handlers if not _per_phase(h)] + [
        h for h in root.handlers if _per_phase(h)
    ]
    root.setLevel(level)
    access.setLevel(access_level)
    assert not [h for h in root.handlers if h not in handlers and not _per_phase(h)]


# -- JsonFormatter --------------------------------------------------------------------------


def test_json_line_has_standard_fields_and_extras() -> None:
    record = make_record(
        "stored %d events for %s",
        12,
        "sensor.temp",
        level=logging.WARNING,
        extra={"entity_id": "sensor.temp", "batch": 12, "ratio": 0.5, "tags": ["a", "b"]},
    )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = orjson.loads(line)
    assert parsed["level"] == "WARNING"
    assert parsed["logger"] == "homeiq.test"
    assert parsed["message"] == "stored 12 events for sensor.temp"
    assert parsed["entity_id"] == "sensor.temp"
    assert parsed["batch"] == 12
    assert parsed["ratio"] == 0.5
    assert parsed["tags"] == ["a", "b"]
    # The time parses, with its offset.
    assert datetime.strptime(parsed["time"], "%Y-%m-%dT%H:%M:%S%z").tzinfo is not None
    # LogRecord internals are not dumped.
    for internal in ("args", "msg", "levelno", "pathname", "lineno", "exc_info", "thread"):
        assert internal not in parsed
    assert "exc" not in parsed


def test_json_line_with_unserializable_extra_uses_str() -> None:
    record = make_record("x", extra={"path": Path("/data/events.db"), "ids": {3}, "none": None})
    parsed = orjson.loads(JsonFormatter().format(record))
    assert parsed["path"] == "/data/events.db"
    assert parsed["ids"] == "{3}"
    assert parsed["none"] is None


def test_json_line_includes_the_exception() -> None:
    try:
        raise ValueError("kaput")
    except ValueError:
        record = make_record("write failed", level=logging.ERROR, exc_info=True)
    parsed = orjson.loads(JsonFormatter().format(record))
    assert parsed["message"] == "write failed"
    assert "Traceback" in parsed["exc"]
    assert "ValueError: kaput" in parsed["exc"]


def test_json_line_keeps_unicode() -> None:
    parsed = orjson.loads(JsonFormatter().format(make_record("Zürich ☀ %s", "🌡️")))
    assert parsed["message"] == "Zürich ☀ 🌡️"


# -- RedactSecrets ----------------------------------------------------------------------------


def test_secret_removed_from_message_and_args() -> None:
    redact = RedactSecrets([SECRET])
    in_msg = make_record(f"auth with {SECRET} failed")
    in_args = make_record("auth with %s failed (%d)", SECRET, 401)
    assert redact.filter(in_msg) is True
    assert redact.filter(in_args) is True
    for record in (in_msg, in_args):
        assert record.getMessage().startswith("auth with <redacted> failed")
        assert SECRET not in record.getMessage()
        assert SECRET not in str(record.msg)
        assert not record.args or SECRET not in str(record.args)
    assert in_args.getMessage() == "auth with <redacted> failed (401)"


def test_secret_inside_a_longer_arg_is_removed() -> None:
    record = make_record("headers: %r", {"Authorization": f"Bearer {SECRET}"})
    RedactSecrets([SECRET]).filter(record)
    assert record.getMessage() == "headers: {'Authorization': 'Bearer <redacted>'}"


def test_every_secret_every_occurrence() -> None:
    other = "second-secret-value"
    record = make_record("%s %s %s", SECRET, other, SECRET)
    RedactSecrets([SECRET, other]).filter(record)
    assert record.getMessage() == "<redacted> <redacted> <redacted>"


def test_clean_record_is_untouched() -> None:
    record = make_record("stored %d events", 5)
    assert RedactSecrets([SECRET]).filter(record) is True
    assert record.msg == "stored %d events"
    assert record.args == (5,)


def test_short_or_empty_secrets_are_ignored() -> None:
    redact = RedactSecrets(["", "abc", SECRET])
    assert redact.secrets == [SECRET]
    record = make_record("abc is not a secret worth hiding")
    redact.filter(record)
    assert record.getMessage() == "abc is not a secret worth hiding"


def test_no_secrets_never_drops() -> None:
    record = make_record("hello %s", "world")
    assert RedactSecrets([]).filter(record) is True
    assert record.getMessage() == "hello world"


def test_secret_in_extra_field_is_redacted() -> None:
    record = make_record("connecting", extra={"url": f"ws://ha:8123/?token={SECRET}"})
    RedactSecrets([SECRET]).filter(record)
    assert SECRET not in JsonFormatter().format(record)


def test_secret_in_exception_is_redacted() -> None:
    try:
        raise RuntimeError(f"auth payload rejected: {SECRET}")
    except RuntimeError:
        record = make_record("auth failed", level=logging.ERROR, exc_info=True)
    RedactSecrets([SECRET]).filter(record)
    assert SECRET not in JsonFormatter().format(record)


# -- setup_logging --------------------------------------------------------------------------


def test_setup_logging_json_and_redacted(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("INFO", "json", [SECRET])
    log = logging.getLogger("homeiq.anything")
    log.debug("hidden below INFO")
    log.info("token is %s", SECRET, extra={"attempt": 2})
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    parsed = orjson.loads(lines[0])
    assert parsed["message"] == "token is <redacted>"
    assert parsed["attempt"] == 2
    assert parsed["logger"] == "homeiq.anything"
    assert root_logger.level == logging.INFO
    assert len(root_logger.handlers) == 1
    assert logging.getLogger("aiohttp.access").level == logging.WARNING


def test_setup_logging_text(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("WARNING", "text", [SECRET])
    log = logging.getLogger("homeiq.text")
    log.info("not shown")
    log.warning("leaked? %s", SECRET)
    err = capsys.readouterr().err
    assert "not shown" not in err
    assert "WARNING homeiq.text: leaked? <redacted>" in err
    assert SECRET not in err


def test_setup_logging_replaces_previous_handlers(root_logger: logging.Logger) -> None:
    setup_logging("INFO", "text")
    setup_logging("DEBUG", "json")
    assert len(root_logger.handlers) == 1
    assert isinstance(root_logger.handlers[0].formatter, JsonFormatter)
    assert root_logger.level == logging.DEBUG


# -- stopping background tasks ----------------------------------------------------------------

STOP_LOG = logging.getLogger("homeiq.test.stop")


async def test_stop_task_logs_the_failure_a_task_ended_with(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def failing() -> None:
        raise OSError("disk gone")

    task = asyncio.create_task(failing(), name="backups")
    await asyncio.sleep(0)  # it runs and fails before anyone stops it
    with caplog.at_level(logging.ERROR, logger=STOP_LOG.name):
        await stop_task(task, STOP_LOG)  # does not raise: stopping goes on
    (record,) = caplog.records
    assert record.getMessage() == "backups had failed: disk gone"
    assert record.exc_info is not None and isinstance(record.exc_info[1], OSError)


async def test_stop_task_logs_a_failure_while_cancelling(caplog: pytest.LogCaptureFixture) -> None:
    started = asyncio.Event()

    async def cleanup_fails() -> None:
        try:
            started.set()
            await asyncio.Event().wait()
        finally:
            raise RuntimeError("cleanup failed")

    task = asyncio.create_task(cleanup_fails(), name="drain")
    await started.wait()
    with caplog.at_level(logging.ERROR, logger=STOP_LOG.name):
        await stop_task(task, STOP_LOG)
    assert [r.getMessage() for r in caplog.records] == ["drain had failed: cleanup failed"]


async def test_stop_task_logs_homeiqs_own_errors_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def rejected() -> None:
        raise AuthenticationFailed("Home Assistant rejected the access token")

    task = asyncio.create_task(rejected(), name="ha-client")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger=STOP_LOG.name):
        await stop_task(task, STOP_LOG)
    (record,) = caplog.records
    assert record.getMessage() == "ha-client had failed: Home Assistant rejected the access token"
    assert record.exc_info is None


async def test_stop_task_is_quiet_for_a_plain_cancel_and_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    task = asyncio.create_task(asyncio.Event().wait(), name="idle")
    await asyncio.sleep(0)
    with caplog.at_level(logging.DEBUG, logger=STOP_LOG.name):
        await stop_task(task, STOP_LOG)
        await stop_task(None, STOP_LOG)
    assert task.cancelled()
    assert caplog.records == []


async def test_stop_task_does_not_swallow_its_callers_own_cancellation() -> None:
    running, cleaning = asyncio.Event(), asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            running.set()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cleaning.set()
            await asyncio.Event().wait()  # cleanup that only a second cancel ends
            raise

    task = asyncio.create_task(slow_to_stop(), name="slow")
    await running.wait()
    stopper = asyncio.create_task(stop_task(task, STOP_LOG))
    await cleaning.wait()
    stopper.cancel()  # whoever runs the stop is itself cancelled: that must propagate
    with pytest.raises(asyncio.CancelledError):
        await stopper
    assert task.cancelled()
