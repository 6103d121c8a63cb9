"""The edge of the API: one pure ASGI middleware that every request passes first.

It assigns the request id, refuses what is too large or too frequent before any route
runs, adds the security and rate-limit headers to every response, times the request per
route template, and turns an unhandled exception into a JSON 500 (logged here, with the
request id; the client sees no trace of it).

Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``: that one buffers through
anyio streams and would read a body before we could refuse it for its size.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from homeiq.api.errors import ApiError, error_response
from homeiq.api.metrics import ApiMetrics, method_label, route_label
from homeiq.api.ratelimit import RateLimiter, remember, remembered

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
# A client's request id is echoed and logged: accept only what cannot forge a log line.
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Resource-Policy": "same-origin",
}
# JSON and text need nothing loaded, framed or run; a future dashboard route serving
# HTML sets its own Content-Security-Policy, which is then left alone.
JSON_CSP = "default-src 'none'; frame-ancestors 'none'"

NOT_RATE_LIMITED = frozenset({"/healthz"})
# The request line and headers together, as h11 counts a request still arriving: one
# that arrives in a single write is not held to h11's limit, so it is checked here.
MAX_HEADER_BYTES = 16 * 1024


class BodyTooLarge(ApiError):
    """The body grew past the limit while being read (no Content-Length up front)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds {limit} bytes")


class EdgeMiddleware:
    """Request id, size limits, per-IP rate limit, headers, latency, last-resort 500."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: RateLimiter,
        metrics: ApiMetrics,
        max_body_bytes: int,
        max_query_bytes: int,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.max_query_bytes = max_query_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection scope."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state: dict[str, Any] = scope.setdefault("state", {})
        request_id = _request_id(scope)
        state["request_id"] = request_id
        status = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                headers.setdefault("Content-Security-Policy", JSON_CSP)
                window = remembered(state)
                if window is not None:
                    for name, value in window.headers().items():
                        headers[name] = value
            await send(message)

        try:
            refusal = self._refusal(scope, state)
            if refusal is not None:
                await refusal(scope, receive, send_with_headers)
                return
            await self.app(scope, self._limited(scope, receive), send_with_headers)
        except Exception:
            log.exception(
                "unhandled error in %s %s (request_id=%s)",
                method_label(scope.get("method")),
                route_label(scope.get("route")),
                request_id,
            )
            if response_started:
                raise  # too late for a clean answer: the server drops the connection
            answer = error_response(500, "internal server error", request_id)
            await answer(scope, receive, send_with_headers)
        finally:
            self.metrics.observe(
                scope.get("method"), scope.get("route"), status, time.perf_counter() - started
            )

    def _refusal(self, scope: Scope, state: dict[str, Any]) -> Any:
        """An error response for what is refused before routing, else None."""
        request_id = state["request_id"]
        if _head_bytes(scope) > MAX_HEADER_BYTES:
            return error_response(
                431, f"request line and headers exceed {MAX_HEADER_BYTES} bytes", request_id
            )
        if len(scope.get("query_string", b"")) > self.max_query_bytes:
            return error_response(
                414, f"query string exceeds {self.max_query_bytes} bytes", request_id
            )
        length = _content_length(scope)
        if length is not None and length > self.max_body_bytes:
            return error_response(
                413, f"request body exceeds {self.max_body_bytes} bytes", request_id
            )
        if scope.get("path") not in NOT_RATE_LIMITED:
            client = scope.get("client")
            verdict = self.limiter.check_ip(client[0] if client else "unknown")
            remember(state, verdict)
            if not verdict.allowed:
                return error_response(
                    429,
                    "rate limit of this client address exceeded",
                    request_id,
                    headers={"Retry-After": verdict.retry_after()},
                )
        return None

    def _limited(self, scope: Scope, receive: Receive) -> Receive:
        """``receive`` that stops a body (chunked, or lying about its length) at the limit."""
        limit = self.max_body_bytes
        seen = 0

        async def receive_limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        return receive_limited


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = bytes(value).decode("latin-1")
            if _SAFE_REQUEST_ID.fullmatch(text):
                return text
            break
    return secrets.token_hex(16)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _head_bytes(scope: Scope) -> int:
    """Bytes of the request line and headers as sent (give or take the separators)."""
    size = len(scope.get("raw_path") or b"") + len(scope.get("query_string", b"")) + 16
    for name, value in scope.get("headers", ()):
        size += len(name) + len(value) + 4
    return size
