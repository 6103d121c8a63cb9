"""API keys: creation, storage by hash, the scope model and the ``require`` dependency.

A key is ``hiq_`` + 43 URL-safe characters (32 random bytes); the prefix makes leaked
keys easy to recognize (secret scanners, logs). Only its SHA-256 is stored. A fast hash
is the right one here: slow hashes (bcrypt, argon2) protect low-entropy passwords
against offline guessing, but no hash speed makes 2^256 guesses feasible, and a
deterministic fast hash lets each request find its key with one indexed lookup: no
per-key comparison loop and no lookup by a prefix of the key that could leak timing.

Scopes nest: ``admin`` includes ``write``, which includes ``read``. Every route but
``/healthz`` and ``/readyz`` depends on :func:`require`; :func:`homeiq.api.app.create_app`
refuses to build an app with a route that does not.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from homeiq.api.context import host_of
from homeiq.api.errors import ApiError
from homeiq.api.ratelimit import RateLimiter, remember
from homeiq.api.scopes import SCOPES, Scope, granted
from homeiq.errors import ConfigError
from homeiq.metadata.store import MetadataStore, StoredApiKey
from homeiq.model import now_us

log = logging.getLogger(__name__)

KEY_PREFIX = "hiq_"
KEY_RANDOM_BYTES = 32
ADMIN_KEY_FILE = "admin.key"
# last_used_at is written at most this often per key: not a database write per request.
TOUCH_INTERVAL_US = 60 * 1_000_000
# A longer credential cannot be one of ours; refuse it before hashing anything.
MAX_KEY_CHARS = 128

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="`Authorization: Bearer hiq_...` with an API key.",
)
_api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="apiKey",
    description="`X-API-Key: hiq_...`, the same key in its own header.",
)


def new_key() -> str:
    """A fresh random API key."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)


def hash_key(key: str) -> str:
    """The stored form of a key: SHA-256, hex."""
    return hashlib.sha256(key.encode()).hexdigest()


# Characters a key name may not hold: the C0 and C1 controls and DEL (newline, ESC,
# NUL...), the line and paragraph separators, and the invisible format characters of
# the BMP (bidi overrides, zero-width spaces; Unicode category Cf). A name is logged
# and printed by `keys list`: none of these may forge a log line or move a terminal's
# cursor. One pattern, so the API's schema (which clients and fuzzers read) says
# exactly what is refused; it also asks for one character that is not a space.
_REFUSED = (
    "\\u0000-\\u001f\\u007f-\\u009f\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890-\\u0891"
    "\\u08e2\\u180e\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff\\ufff9-\\ufffb"
)
KEY_NAME_PATTERN = f"^[^{_REFUSED}]*[^{_REFUSED}\\s][^{_REFUSED}]*$"
KEY_NAME_MAX = 100
_KEY_NAME = re.compile(KEY_NAME_PATTERN)


def check_key_name(name: str) -> str:
    """``name`` stripped, if it is 1 to 100 characters without control characters;
    ValueError otherwise."""
    name = name.strip()
    if not name or len(name) > KEY_NAME_MAX:
        raise ValueError(f"a key needs a name of 1 to {KEY_NAME_MAX} characters")
    if _KEY_NAME.fullmatch(name) is None:
        raise ValueError("a key name may not hold control characters (newline, ESC, NUL...)")
    return name


def create_key(
    metadata: MetadataStore, name: str, scopes: Sequence[str]
) -> tuple[str, StoredApiKey]:
    """Create and store a key; returns the key itself (shown once, never stored) and its row."""
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValueError(f"scopes must be among {', '.join(SCOPES)}, not {unknown or 'none'}")
    name = check_key_name(name)
    ordered = [s for s in SCOPES if s in scopes]
    key = new_key()
    stored = metadata.add_api_key(
        name=name, scopes=ordered, key_hash=hash_key(key), created_at=now_us()
    )
    log.info("created API key %d (%s) with scopes %s", stored.id, name, " ".join(ordered))
    return key, stored


def ensure_admin_key(metadata: MetadataStore, data_dir: Path) -> Path | None:
    """On first start (no key was ever created), create an admin key and write it to
    ``admin.key`` (mode 0600) in the data directory; returns that path, else None.
    ConfigError naming the data directory when the file cannot be written.

    The file comes first: if writing it fails no key exists, and the next start tries
    again; a key whose only copy was never written would lock the operator out.
    """
    if metadata.api_key_count():
        return None
    key = new_key()
    path = data_dir / ADMIN_KEY_FILE
    # O_CREAT with 0600 from the start: the key is never readable by others, not even
    # between creating the file and a chmod. fchmod covers a file left by an earlier run.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, (key + "\n").encode())
        finally:
            os.close(fd)
    except OSError as exc:
        raise ConfigError(
            "HOMEIQ_DATA_DIR", f"cannot write the admin key to {path}: {exc.strerror}"
        ) from exc
    stored = metadata.add_api_key(
        name="admin (first start)", scopes=["admin"], key_hash=hash_key(key), created_at=now_us()
    )
    log.info(
        "created the first API key (id %d, scope admin) and wrote it to %s (mode 0600):"
        " copy it somewhere safe and delete the file",
        stored.id,
        path.resolve(),
    )
    return path


def _presented(bearer: HTTPAuthorizationCredentials | None, header: str | None) -> str | None:
    if bearer is not None and bearer.credentials:
        return bearer.credentials.strip()
    if header:
        return header.strip()
    return None


async def authenticate(request: Request, key: str | None) -> StoredApiKey:
    """The stored key a request presented; ApiError 401 when absent, unknown or revoked."""
    if not key:
        raise _unauthorized("an API key is required (Authorization: Bearer KEY or X-API-Key)")
    # One message for unknown and revoked keys: the answer must not tell them apart.
    if not key.startswith(KEY_PREFIX) or len(key) > MAX_KEY_CHARS:
        raise _unauthorized("invalid or revoked API key")
    metadata = host_of(request).metadata
    stored = await asyncio.to_thread(metadata.api_key_by_hash, hash_key(key))
    if stored is None or stored.revoked:
        raise _unauthorized("invalid or revoked API key")
    now = now_us()
    if stored.last_used_at is None or now - stored.last_used_at >= TOUCH_INTERVAL_US:
        await asyncio.to_thread(metadata.touch_api_key, stored.id, now)
    return stored


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, message, headers={"WWW-Authenticate": "Bearer"})


Requirement = Callable[..., Awaitable[StoredApiKey]]


async def admit(request: Request, key: str | None, scope: Scope) -> StoredApiKey:
    """The stored key if it grants ``scope`` and is within its rate limit, else ApiError:
    401 without a valid key, 403 when its scopes fall short, 429 past its limit."""
    stored = await authenticate(request, key)
    if scope not in granted(stored.scopes):
        raise ApiError(403, f"this key lacks the {scope} scope")
    limiter: RateLimiter = request.app.state.limiter
    verdict = limiter.check_key(stored.id, stored.scopes)
    remember(request.scope.setdefault("state", {}), verdict)
    if not verdict.allowed:
        raise ApiError(
            429,
            "rate limit of this API key exceeded",
            headers={"Retry-After": verdict.retry_after()},
        )
    request.state.api_key = stored
    return stored


def key_in_headers(request: Request) -> str | None:
    """The key a request presents, read as the :func:`require` dependency reads it."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.headers.get("x-api-key", "").strip() or None


def require(scope: Scope) -> Requirement:
    """A dependency admitting requests whose key grants ``scope``; returns that key.

    401 without a valid key, 403 when its scopes fall short, 429 past the key's rate
    limit. Use it on a router (``dependencies=[Depends(require("read"))]``) or as a
    parameter (``key: Annotated[StoredApiKey, Depends(require("admin"))]``).
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def requirement(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        header: Annotated[str | None, Depends(_api_key_header)],
    ) -> StoredApiKey:
        return await admit(request, _presented(bearer, header), scope)

    requirement.required_scope = scope  # type: ignore[attr-defined]  # read by create_app
    return requirement


def required_scope(call: object) -> str | None:
    """The scope a dependency made by :func:`require` demands, else None."""
    found = getattr(call, "required_scope", None)
    return found if isinstance(found, str) else None
