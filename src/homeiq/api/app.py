"""The API application factory.

:func:`create_app` builds the FastAPI app over a hosting process (the runtime): routers
from :mod:`homeiq.api.routes`, the edge middleware (request id, size and rate limits,
security headers, latency, last-resort 500), CORS only for configured origins, and the
handlers that give every error the one JSON shape.

Secure by default, checked at build time: every route outside :data:`PUBLIC_PATHS`
must depend on :func:`~homeiq.api.auth.require`, or the app is not built. The OpenAPI
schema (served at ``/api/v1/openapi.json``, itself behind a read key) documents every
response, errors included, and marks each operation's scope as ``x-required-scope``.
"""

from __future__ import annotations

from collections import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from types import UnionType
from typing import Annotated, Any, Union, cast, get_args, get_origin

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.middleware import Middleware
from fastapi.routing import APIRoute, iter_route_contexts
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from homeiq.api.auth import admit, key_in_headers, require, required_scope
from homeiq.api.context import ApiHost
from homeiq.api.errors import ApiError, JSONBody, http_error, validation_error
from homeiq.api.failures import homeiq_error
from homeiq.api.metrics import ApiMetrics
from homeiq.api.middleware import REQUEST_ID_HEADER, EdgeMiddleware
from homeiq.api.ratelimit import RateLimiter
from homeiq.api.routes import ROUTERS
from homeiq.api.scopes import Scope
from homeiq.errors import HomeIQError
from homeiq.settings import Settings

API_PREFIX = "/api/v1"
OPENAPI_PATH = f"{API_PREFIX}/openapi.json"
PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})
SCOPE_EXTENSION = "x-required-scope"

DESCRIPTION = """\
HomeIQ's HTTP API: the registry, health, metrics and administration.

Every endpoint but `/healthz` and `/readyz` needs an API key, sent as
`Authorization: Bearer KEY` or `X-API-Key: KEY`. Keys carry scopes that nest:
`admin` includes `write`, which includes `read`. Rate limits apply per key and per
client address; every response says where it stands in `RateLimit-Limit`,
`RateLimit-Remaining` and `RateLimit-Reset`, and a 429 adds `Retry-After`.

Every error is JSON: `{"error": {"code", "message", "request_id"}}`; the request id is
also the `X-Request-ID` response header and appears in the server's log.

Times are ISO 8601 with a UTC offset (`2026-12-01T00:00:00Z`, `...T12:00:00+01:00`). In
a URL write `+` as `%2B`; a `+` sent as is arrives as a space, and a space before a
trailing `HH:MM` is read as the `+` it was. Every answer that returns rows is bounded:
lists carry a `next_cursor` to pass back as `cursor` for the next page.
"""

RATE_LIMIT_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After")


def _accepts_many(annotation: Any) -> bool:
    """True for a list-like parameter type (``list[str] | None`` included)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _accepts_many(get_args(annotation)[0])
    if origin in (Union, UnionType):
        return any(_accepts_many(arg) for arg in get_args(annotation))
    return origin in (list, tuple, set, frozenset, abc.Sequence)


def _single_valued(route: APIRoute) -> frozenset[str]:
    """Names of the route's query parameters that take one value (a short walk)."""
    names: set[str] = set()
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        pending += dependant.dependencies
        names.update(
            field.alias
            for field in dependant.query_params
            if not _accepts_many(field.field_info.annotation)
        )
    return frozenset(names)


async def single_query_values(request: Request) -> None:
    """Refuse a one-value query parameter given several times (``?floor=a&floor=b``):
    FastAPI would silently keep the last, and an ambiguous query deserves a 422."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    for name in _single_valued(route):
        count = len(request.query_params.getlist(name))
        if count > 1:
            raise ApiError(
                422, f"query.{name}: given {count} times, takes one value", code="validation_error"
            )


def _version() -> str:
    try:
        return version("homeiq")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0"


def create_app(host: ApiHost, *, routers: Sequence[APIRouter] = ROUTERS) -> FastAPI:
    """The API over ``host`` (a :class:`homeiq.runtime.Runtime`)."""
    app = build_app(host.settings, host.metrics.registry, routers=routers)
    app.state.host = host
    return app


def build_app(
    settings: Settings, registry: CollectorRegistry, *, routers: Sequence[APIRouter] = ROUTERS
) -> FastAPI:
    """The app without a host: enough for its OpenAPI schema (docs), not for requests."""
    metrics = ApiMetrics.of(registry)
    limiter = RateLimiter.from_settings(settings, metrics)
    middleware = []
    if settings.api.cors_origins:
        # Outside the edge, so refusals it makes (413, 429) carry CORS headers too and
        # a browser can read them.
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.api.cors_origins,
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["Authorization", "X-API-Key", "Content-Type", REQUEST_ID_HEADER],
                expose_headers=[REQUEST_ID_HEADER, *RATE_LIMIT_HEADERS],
                allow_credentials=False,  # keys travel in headers, never in cookies
            )
        )
    middleware.append(
        Middleware(
            EdgeMiddleware,
            limiter=limiter,
            metrics=metrics,
            max_body_bytes=settings.api.max_body_bytes,
            max_query_bytes=settings.api.max_query_bytes,
        )
    )
    app = FastAPI(
        title="HomeIQ API",
        version=_version(),
        description=DESCRIPTION,
        # Served below, behind a key; no Swagger UI: it loads scripts from a CDN.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        default_response_class=JSONBody,
        middleware=middleware,
        exception_handlers={
            StarletteHTTPException: _http_error_after_auth,
            RequestValidationError: _validation_error_after_auth,
            HomeIQError: homeiq_error,
        },
        # No redirect from /path/ to /path: Starlette builds its Location from the
        # client's Host header, which anyone can forge. A wrong path is a 404.
        redirect_slashes=False,
        generate_unique_id_function=lambda route: route.name,
        dependencies=[Depends(single_query_values)],
    )
    app.state.limiter = limiter
    for router in routers:
        app.include_router(router)
    _serve_openapi(app)
    _check_scopes(app)
    app.openapi = _openapi_with_scopes(app)  # type: ignore[method-assign]  # FastAPI's hook
    return app


def _serve_openapi(app: FastAPI) -> None:
    @app.get(OPENAPI_PATH, include_in_schema=False, dependencies=[Depends(require("read"))])
    async def openapi() -> JSONBody:
        return JSONBody(app.openapi())


async def _refused_before_parsing(request: Request) -> Response | None:
    """The 401/403/429 a request gets before its body is judged, else None.

    FastAPI reads and parses a JSON body before it runs any dependency, so a malformed
    body (400, 422) would otherwise be judged before the key: a caller without a valid
    key must learn nothing about the route but that it needs one."""
    route = request.scope.get("route")
    scope = _scope_of(route.dependant) if isinstance(route, APIRoute) else None
    if scope is not None and getattr(request.state, "api_key", None) is None:
        try:
            await admit(request, key_in_headers(request), cast(Scope, scope))
        except ApiError as refused:
            return await http_error(request, refused)
    return None


async def _validation_error_after_auth(request: Request, exc: Exception) -> Response:
    """A 422 only for a caller who may use the route."""
    return await _refused_before_parsing(request) or await validation_error(request, exc)


async def _http_error_after_auth(request: Request, exc: Exception) -> Response:
    """A 400 (a body that cannot be read) only for a caller who may use the route; other
    HTTP errors as they are."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and not isinstance(exc, ApiError):
        refused = await _refused_before_parsing(request)
        if refused is not None:
            return refused
    return await http_error(request, exc)


def _scope_of(dependant: Dependant) -> str | None:
    for dependency in dependant.dependencies:
        found = required_scope(dependency.call) or _scope_of(dependency)
        if found is not None:
            return found
    return None


@dataclass(slots=True, frozen=True)
class RouteInfo:
    """One endpoint as mounted: its path, methods and the scope its key needs."""

    path: str
    methods: frozenset[str]
    scope: str | None
    in_schema: bool


def routes_of(app: FastAPI) -> list[RouteInfo]:
    """Every endpoint of ``app``, routers flattened (FastAPI keeps included routers as
    nodes of ``app.routes``); a route that is not a FastAPI route raises."""
    found = []
    for context in iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute):
            raise RuntimeError(f"{context.path} is not an API route: it would bypass auth")
        dependant = context.dependant
        found.append(
            RouteInfo(
                path=str(context.path),
                methods=frozenset(context.methods or ()),
                scope=_scope_of(dependant) if dependant is not None else None,
                in_schema=bool(context.include_in_schema),
            )
        )
    return found


def _check_scopes(app: FastAPI) -> None:
    """Refuse to build an app with a route that needs no key (but the public ones)."""
    for route in routes_of(app):
        if route.scope is None and route.path not in PUBLIC_PATHS:
            raise RuntimeError(f"route {route.path} has no require(scope) dependency")


def _openapi_with_scopes(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """``app.openapi`` that marks each operation with the scope its key needs."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for route in routes_of(app):
                if not route.in_schema or route.scope is None:
                    continue
                for method in route.methods:
                    operation = schema["paths"][route.path][method.lower()]
                    operation[SCOPE_EXTENSION] = route.scope
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def openapi_schema() -> dict[str, Any]:
    """The API's OpenAPI document, independent of any configuration (for docs)."""
    return build_app(Settings.model_construct(), CollectorRegistry()).openapi()
