"""Prometheus metrics, one registry per running HomeIQ (tests get a fresh one each)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """Every counter and gauge HomeIQ exports; names carry units and roles."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_received = Counter(
            "homeiq_events_received", "state_changed messages taken from the source", registry=r
        )
        self.events_stored = Counter(
            "homeiq_events_stored", "Events newly written to the store", registry=r
        )
        self.events_duplicate = Counter(
            "homeiq_events_duplicate",
            "Events the store already held (same entity_id and time)",
            registry=r,
        )
        self.events_rejected = Counter(
            "homeiq_events_rejected",
            "Messages dead-lettered, by reason",
            ["reason"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "homeiq_queue_depth", "Messages waiting between reader and writer", registry=r
        )
        self.queue_capacity = Gauge(
            "homeiq_queue_capacity", "Bound of the reader-writer queue", registry=r
        )
        self.queue_full = Counter(
            "homeiq_queue_full",
            "Times the reader found the queue full and had to wait",
            registry=r,
        )
        self.batch_seconds = Histogram(
            "homeiq_batch_write_seconds",
            "Time to write one batch to the store",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.batch_size = Histogram(
            "homeiq_batch_events",
            "Events per written batch",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
            registry=r,
        )
        self.sink_errors = Counter(
            "homeiq_sink_errors",
            "Failed batch writes, by kind (transient, permanent)",
            ["kind"],
            registry=r,
        )
        self.ha_connected = Gauge(
            "homeiq_ha_connected", "1 while the Home Assistant connection is up", registry=r
        )
        self.ha_connects = Counter(
            "homeiq_ha_connects", "Successful Home Assistant connections", registry=r
        )
        self.ha_disconnects = Counter(
            "homeiq_ha_disconnects",
            "Home Assistant connections lost, by reason",
            ["reason"],
            registry=r,
        )
        self.last_event_time = Gauge(
            "homeiq_last_event_timestamp_seconds",
            "Time (Unix seconds) of the newest stored event",
            registry=r,
        )

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Current value of a sample (``name`` as exported, e.g. ``..._total``); 0 if unset."""
        found = self.registry.get_sample_value(name, labels or {})
        return 0.0 if found is None else found

    def rejected_total(self) -> float:
        """All dead-lettered messages, every reason."""
        total = 0.0
        for metric in self.registry.collect():
            if metric.name == "homeiq_events_rejected":
                total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
        return total
