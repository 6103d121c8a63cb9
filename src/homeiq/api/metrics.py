"""The API's own metrics, registered in the hosting process's registry so ``/metrics``
exports them with the pipeline's.

Every label value comes from a closed set: a label taken from a request as sent (a
made-up method, a path) would be a new series per distinct value, and a client could
grow the registry, and every scrape, without bound. :func:`method_label` and
:func:`route_label` do the closing.
"""

from __future__ import annotations

import weakref
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

# Request latency buckets: a local SQLite query answers in milliseconds, a remote
# InfluxDB in tens to hundreds.
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# The methods of RFC 9110 and PATCH; anything else is counted as OTHER.
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
OTHER = "other"
UNMATCHED = "unmatched"

_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, ApiMetrics] = weakref.WeakKeyDictionary()


def method_label(method: object) -> str:
    """The request method if it is a known one, else ``other``."""
    return method if isinstance(method, str) and method in KNOWN_METHODS else OTHER


def route_label(route: Any) -> str:
    """The matched route's template (``/api/v1/trace/{context_id}``), else ``unmatched``:
    templates are the app's own, so their number is fixed when it is built."""
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


def status_label(status: int) -> str:
    """A status code as a label: a valid one as is, anything else ``other``."""
    return str(status) if 100 <= status <= 599 else OTHER


class ApiMetrics:
    """Request latency per method, route template and status; rate-limit rejections."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.request_seconds = Histogram(
            "homeiq_api_request_duration_seconds",
            "API request latency, by method, route template and status",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.rate_limited = Counter(
            "homeiq_api_rate_limited",
            "API requests refused with 429, by limit kind (ip, key)",
            ["kind"],
            registry=registry,
        )
        for kind in ("ip", "key"):
            self.rate_limited.labels(kind)  # export zeros: absence is not "none refused"

    def observe(self, method: object, route: Any, status: int, seconds: float) -> None:
        """Record one request's latency under closed-set labels only."""
        self.request_seconds.labels(
            method_label(method), route_label(route), status_label(status)
        ).observe(seconds)

    @classmethod
    def of(cls, registry: CollectorRegistry) -> ApiMetrics:
        """The API metrics in ``registry``, created once (an app built twice shares them)."""
        found = _by_registry.get(registry)
        if found is None:
            found = _by_registry[registry] = cls(registry)
        return found
