"""The API's one error shape, ``{"error": {"code", "message", "request_id"}}``, for every
failure: our own, Starlette's (404, 405), FastAPI's validation (422) and the middleware's
(413, 414, 429, 500). No stack trace ever reaches a response body.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

log = logging.getLogger(__name__)

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    414: "uri_too_long",
    422: "validation_error",
    429: "rate_limited",
    431: "headers_too_large",
    500: "internal_error",
    502: "bad_gateway",
    503: "unavailable",
}

DESCRIPTIONS = {
    400: "Malformed request body (not UTF-8 text, say).",
    401: "No API key, or an invalid or revoked one (`WWW-Authenticate: Bearer`).",
    403: "The key lacks the scope this endpoint needs.",
    404: "No such resource.",
    409: "The request conflicts with the current state.",
    413: "Request body larger than `HOMEIQ_API_MAX_BODY_BYTES`.",
    414: "Query string longer than `HOMEIQ_API_MAX_QUERY_BYTES`.",
    422: "Invalid parameters or body.",
    429: "Rate limit exceeded; `Retry-After` says when to try again.",
    431: "Request line and headers larger than 16 KiB.",
    500: "Unexpected server error (logged with the request id).",
    502: "The event store refused the query (its message says why).",
    503: (
        "Temporarily unavailable: the event store (`store_unavailable`), Home Assistant"
        " (`home_assistant_unavailable`) or a backup target (`backup_target_unavailable`)."
    ),
}


class JSONBody(JSONResponse):
    """JSON rendered by orjson (bodies without a response model, and every error)."""

    def render(self, content: Any) -> bytes:
        """Serialize ``content``."""
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class ErrorDetail(BaseModel):
    """What went wrong."""

    code: str = Field(description="Stable machine-readable code, e.g. `not_found`.")
    message: str = Field(description="Human-readable explanation.")
    request_id: str = Field(description="The request's `X-Request-ID` (also in the logs).")


class ErrorBody(BaseModel):
    """Every error response."""

    error: ErrorDetail


class ApiError(HTTPException):
    """An error with its status, code and message; one handler renders it.

    A FastAPI ``HTTPException``, so it also passes through FastAPI's body reading as is
    (which turns any other exception raised there into a 400).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, message, dict(headers) if headers else None)
        self.code = code or CODES.get(status, "error")
        self.message = message


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting these error statuses."""
    return {
        status: {"model": ErrorBody, "description": DESCRIPTIONS.get(status, "Error.")}
        for status in statuses
    }


def request_id_of(request: Request) -> str:
    """The request id the edge middleware assigned (or a fresh one outside it)."""
    found = getattr(request.state, "request_id", None)
    return found if isinstance(found, str) else secrets.token_hex(16)


def error_body(code: str, message: str, request_id: str) -> dict[str, Any]:
    """The error document."""
    return {"error": {"code": code, "message": message, "request_id": request_id}}


def error_response(
    status: int,
    message: str,
    request_id: str,
    *,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An error response in the one shape."""
    body = error_body(code or CODES.get(status, "error"), message, request_id)
    return JSONBody(body, status_code=status, headers=dict(headers) if headers else None)


async def http_error(request: Request, exc: Exception) -> Response:
    """Render ApiError and Starlette's HTTPException (404, 405...), keeping their headers."""
    assert isinstance(exc, StarletteHTTPException)
    code = exc.code if isinstance(exc, ApiError) else None
    message = exc.message if isinstance(exc, ApiError) else str(exc.detail)
    if exc.status_code == 404 and not isinstance(exc, ApiError):
        message = f"no route {request.url.path}"
    headers = dict(exc.headers or {})
    if exc.status_code == 405 and not isinstance(exc, ApiError):
        message = f"{request.method} is not allowed on {request.url.path}"
        headers["Allow"] = _allowed(request)
    return error_response(
        exc.status_code, message, request_id_of(request), code=code, headers=headers
    )


def _allowed(request: Request) -> str:
    """Every method the path answers (Starlette's Allow names the first route's only)."""
    methods: set[str] = set()
    for context in iter_route_contexts(request.app.routes):
        regex = getattr(context, "path_regex", None)
        if regex is not None and regex.match(request.url.path):
            methods |= set(context.methods or ())
    return ", ".join(sorted(methods))


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "request"


async def validation_error(request: Request, exc: Exception) -> Response:
    """Render FastAPI's 422: where and what, never the rejected input itself."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    parts = [f"{_where(tuple(e.get('loc', ())))}: {e.get('msg', 'invalid')}" for e in errors[:5]]
    if len(errors) > 5:
        parts.append(f"and {len(errors) - 5} more")
    message = "; ".join(parts)[:1000] or "invalid request"
    return error_response(422, message, request_id_of(request))
