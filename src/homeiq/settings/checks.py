"""Checks and names every settings model shares: variable names, URLs, daily times, lists.

Pure functions of their arguments (no model here), so the sub-models and the sources
can use them without importing each other.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

ENV_PREFIX = "HOMEIQ_"
# Query parameters whose values are credentials in webhook and service URLs.
_SECRET_QUERY_KEYS = frozenset(
    {"token", "access_token", "key", "api_key", "apikey", "password", "secret", "sig",
     "signature", "auth"}
)  # fmt: skip


def env_name(*path: str) -> str:
    """The environment variable of a setting: ``("influxdb", "url")`` is
    ``HOMEIQ_INFLUXDB_URL``, ``("data_dir",)`` is ``HOMEIQ_DATA_DIR``."""
    return ENV_PREFIX + "_".join(path).upper()


def check_url(value: str, schemes: tuple[str, ...]) -> str:
    """``value`` when it is a URL of one of ``schemes`` with a host and a valid port;
    ValueError saying what is wrong otherwise."""
    names = [f"{s}://" for s in schemes]
    shown = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    try:
        parts = urlsplit(value)
        port = parts.port  # ValueError for a port that is not a number in 0-65535
    except ValueError:
        raise ValueError(
            f"{redact_url(value)!r} has a port that is not a number from 1 to 65535"
        ) from None
    if parts.scheme not in schemes:
        raise ValueError(f"must start with {shown}")
    if not parts.hostname:
        raise ValueError(f"{redact_url(value)!r} has no host name")
    if port == 0:
        raise ValueError(f"{redact_url(value)!r}: port 0 cannot be connected to")
    return value


def redact_url(url: str) -> str:
    """``url`` with the password of its user info and credential-like query values
    (``token``, ``access_token``, ``key``...) replaced by ``***``; other text as is."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, sep, _password = userinfo.partition(":")
        netloc = f"{user}:***@{host}" if sep else f"{userinfo}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_QUERY_KEYS for k, _ in pairs):
            query = urlencode(
                [(k, "***" if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs],
                safe="*",
            )
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def daily_time(text: str) -> tuple[int, int] | None:
    """(hour, minute) of ``HH:MM``; None when it is not one."""
    hour, sep, minute = text.partition(":")
    if not sep or not (hour.isdigit() and minute.isdigit()) or len(minute) != 2:
        return None
    h, m = int(hour), int(minute)
    return (h, m) if 0 <= h < 24 and 0 <= m < 60 else None


def split_list(value: Any) -> Any:
    """A list setting as given: comma-separated or a JSON list from the environment, a
    list from TOML or Python (returned as is, for pydantic to check)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"not a JSON list: {exc}") from None
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def check_schedule(value: str) -> str:
    """A daily time ``HH:MM`` or ``off`` (lower-cased, trimmed); ValueError otherwise."""
    value = value.strip().lower()
    if value != "off" and daily_time(value) is None:
        raise ValueError("expected a daily time HH:MM (24-hour, local time) or off")
    return value
