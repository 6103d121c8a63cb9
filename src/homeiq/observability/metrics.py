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
        # metadata.db refused dead letters (a full disk): kept in memory and retried.
        self.dead_letters_pending = Gauge(
            "homeiq_dead_letters_pending",
            "Dead letters waiting in memory to be written to metadata.db (its last write failed)",
            registry=r,
        )
        self.dead_letter_write_failures = Counter(
            "homeiq_dead_letter_write_failures",
            "Failed writes of dead letters to metadata.db (retried with the next ones)",
            registry=r,
        )
        self.dead_letters_lost = Counter(
            "homeiq_dead_letters_lost",
            "Dead letters that could never be written to metadata.db (logged as errors)",
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
        # Outage handling: the spool, the circuit breaker, backfill and data quality.
        self.spool_bytes = Gauge(
            "homeiq_spool_bytes", "Bytes of batches waiting in the on-disk spool", registry=r
        )
        self.spool_events = Gauge(
            "homeiq_spool_events", "Events waiting in the on-disk spool", registry=r
        )
        self.spool_capacity_bytes = Gauge(
            "homeiq_spool_capacity_bytes", "Bound of the on-disk spool (bytes)", registry=r
        )
        self.spool_dropped_events = Counter(
            "homeiq_spool_dropped_events",
            "Events the full spool could not keep, by policy (refilled by backfill if it can)",
            ["policy"],
            registry=r,
        )
        self.breaker_state = Gauge(
            "homeiq_sink_breaker_state",
            "Circuit breaker of each sink: 0 closed, 1 open, 2 half-open",
            ["sink"],
            registry=r,
        )
        self.breaker_opens = Counter(
            "homeiq_sink_breaker_opens",
            "Times a sink's circuit breaker opened",
            ["sink"],
            registry=r,
        )
        self.backfill_events = Counter(
            "homeiq_backfill_events",
            "Events fetched from Home Assistant's history, by outcome (stored, present, invalid)",
            ["outcome"],
            registry=r,
        )
        self.backfill_runs = Counter(
            "homeiq_backfill_runs",
            "Backfill runs, by outcome (ok, failed)",
            ["outcome"],
            registry=r,
        )
        self.quality_events = Counter(
            "homeiq_quality_events",
            "Data-quality events recorded (gaps beyond history, spool drops), by kind",
            ["kind"],
            registry=r,
        )

        self.backup_runs = Counter(
            "homeiq_backup_runs",
            "Backup copies written to a target, by target and outcome (ok, failed)",
            ["target", "outcome"],
            registry=r,
        )
        self.backup_last_success = Gauge(
            "homeiq_backup_last_success_timestamp_seconds",
            "When the last backup reached the target (Unix time)",
            ["target"],
            registry=r,
        )
        self.backup_last_duration = Gauge(
            "homeiq_backup_last_duration_seconds",
            "How long the last backup to the target took, snapshot to verified upload",
            ["target"],
            registry=r,
        )
        self.backup_last_size = Gauge(
            "homeiq_backup_last_size_bytes",
            "Size of the last archive written to the target",
            ["target"],
            registry=r,
        )
        self.backup_verifies = Counter(
            "homeiq_backup_verifies",
            "Archive verifications (decrypt, checksums, test restore), by outcome",
            ["outcome"],
            registry=r,
        )
        # -- alerts and resource watch (maintenance/alerts, observability/resources) --
        self.alerts_active = Gauge(
            "homeiq_alerts_active",
            "1 while the alert fires, by rule name (a closed set: docs/alerts.md)",
            ["alert"],
            registry=r,
        )
        # -- include/exclude at ingest and cleanup (pipeline/filter.py, maintenance/cleanup)
        self.events_excluded = Counter(
            "homeiq_events_excluded",
            "Events the ingest rules left out (counted, never stored), by domain",
            ["domain"],
            registry=r,
        )
        self.cleanup_deleted = Counter(
            "homeiq_cleanup_deleted_events",
            "Stored events deleted by cleanup runs (CLI and saved rules), by who ran them",
            ["by"],
            registry=r,
        )
        # Retention (#11): the purge.
        self.purge_rows = Counter(
            "homeiq_purge_rows",
            "Rows the retention purge deleted, by tier (raw, 5m, 1h, 1d)",
            ["tier"],
            registry=r,
        )
        self.purge_runs = Counter(
            "homeiq_purge_runs",
            "Retention purges, by outcome (ok, failed)",
            ["outcome"],
            registry=r,
        )
        self.purge_last_success = Gauge(
            "homeiq_purge_last_success_timestamp_seconds",
            "When the last retention purge finished (Unix time)",
            registry=r,
        )

        # Data quality (homeiq.maintenance.quality): per domain ("all" overall, domains
        # Home Assistant does not list are "other"), never per entity.
        self.quality_score = Gauge(
            "homeiq_quality_score",
            "Data-quality score of today's events (0-100), overall (domain=all) and per domain",
            ["domain"],
            registry=r,
        )
        self.quality_completeness = Gauge(
            "homeiq_quality_completeness_ratio",
            "Share of today's events carrying a critical field (context_id, device_id,"
            " area_id) among entities the registry gives it",
            ["domain", "field"],
            registry=r,
        )
        self.quality_unavailable = Gauge(
            "homeiq_quality_unavailable_ratio",
            "Share of today's events whose state is unavailable or unknown",
            ["domain"],
            registry=r,
        )
        self.quality_stale_entities = Gauge(
            "homeiq_quality_stale_entities",
            "Entities silent for far longer than their usual interval",
            ["domain"],
            registry=r,
        )
        self.quality_open_gaps = Gauge(
            "homeiq_quality_open_gaps",
            "Spans the store may be missing that backfill has not refilled yet",
            registry=r,
        )
        self.alert_notifications = Counter(
            "homeiq_alert_notifications",
            "Alert state changes delivered, by status (firing, resolved)",
            ["status"],
            registry=r,
        )
        self.process_cpu = Gauge(
            "homeiq_process_cpu_percent",
            "CPU of HomeIQ and its writer process since the last sample, % of every core",
            registry=r,
        )
        self.process_rss = Gauge(
            "homeiq_process_resident_memory_bytes",
            "Resident memory of HomeIQ and its writer process",
            registry=r,
        )
        self.data_file_bytes = Gauge(
            "homeiq_data_file_bytes",
            "Size of each database file in the data directory (0 when absent)",
            ["file"],
            registry=r,
        )
        self.disk_free = Gauge(
            "homeiq_disk_free_bytes", "Free space of the data directory's file system", registry=r
        )
        self.disk_total = Gauge(
            "homeiq_disk_total_bytes", "Size of the data directory's file system", registry=r
        )
        self.events_in_rate = Gauge(
            "homeiq_events_in_per_second",
            "Events received from the source per second, since the last sample",
            registry=r,
        )
        self.events_out_rate = Gauge(
            "homeiq_events_out_per_second",
            "Events newly stored per second, since the last sample",
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
