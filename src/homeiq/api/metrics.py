"""The API's own metrics, registered in the hosting process's registry so ``/metrics``
exports them with the pipeline's."""

from __future__ import annotations

import weakref

from prometheus_client import CollectorRegistry, Counter, Histogram

# Request latency buckets: a local SQLite query answers in milliseconds, a remote
# InfluxDB in tens to hundreds.
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, ApiMetrics] = weakref.WeakKeyDictionary()


class ApiMetrics:
    """Request latency per route template and status; rate-limit rejections per kind."""

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

    @classmethod
    def of(cls, registry: CollectorRegistry) -> ApiMetrics:
        """The API metrics in ``registry``, created once (an app built twice shares them)."""
        found = _by_registry.get(registry)
        if found is None:
            found = _by_registry[registry] = cls(registry)
        return found
