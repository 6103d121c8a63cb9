"""HomeIQ's one exception tree.

Library errors (aiohttp, sqlite3, pydantic) are caught at the module that calls the
library and re-raised as one of these, ``raise ... from exc``, so callers only ever see
this tree::

    HomeIQError
    ├── ConfigError                 bad setting; startup fails naming it
    ├── TransientError              worth retrying with backoff
    │   ├── SourceUnavailable       Home Assistant unreachable, connection dropped
    │   └── SinkUnavailable         store unreachable or busy
    └── PermanentError              retrying cannot help
        ├── AuthenticationFailed    token rejected (never retried: HA bans IPs)
        ├── ProtocolError           Home Assistant said something we cannot use
        ├── InvalidEvent            one message failed validation (dead-lettered)
        ├── SinkRejected            the store refused a batch for good
        └── IncompatibleSchema      a database is newer than this code
"""

from __future__ import annotations


class HomeIQError(Exception):
    """Base of every error HomeIQ raises on purpose."""


class ConfigError(HomeIQError):
    """A setting is missing or invalid; the message names it."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting


class TransientError(HomeIQError):
    """A failure that may go away: retry with backoff and jitter."""


class SourceUnavailable(TransientError):
    """Home Assistant cannot be reached or dropped the connection."""


class SinkUnavailable(TransientError):
    """The store cannot take writes right now."""


class PermanentError(HomeIQError):
    """A failure retrying cannot fix."""


class AuthenticationFailed(PermanentError):
    """Home Assistant rejected the access token."""


class ProtocolError(PermanentError):
    """Home Assistant answered in a way we cannot interpret."""


class InvalidEvent(PermanentError):
    """A message failed validation; ``reason`` is a short stable code for metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class SinkRejected(PermanentError):
    """The store refused a batch and would refuse it again."""


class IncompatibleSchema(PermanentError):
    """A database was written by a newer HomeIQ; reading it could misinterpret rows."""
