"""Liveness, readiness, per-component health and Prometheus metrics.

``/healthz`` and ``/readyz`` are for orchestrators and need no key; ``/api/v1/health``
and ``/metrics`` tell more (versions, sizes) and need a read key.

Overall health: ``down`` when new events cannot be kept (the store refuses writes and
the spool is 90% full), ``degraded`` when any part is impaired but nothing is lost (store
down and events spooling, Home Assistant disconnected, queue full), else ``ok``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from homeiq.api.auth import require
from homeiq.api.context import ApiHost, Host
from homeiq.api.errors import ErrorDetail, JSONBody, error_responses, request_id_of
from homeiq.errors import HomeIQError
from homeiq.pipeline.breaker import BreakerState
from homeiq.pipeline.normalize import format_time_us

log = logging.getLogger(__name__)

Status = Literal["ok", "degraded", "down", "disabled"]
READ_TIMEOUT_S = 2.0  # a health answer must not hang on a slow store
# A spool this full is about to drop (or refuse) batches: counted as down.
SPOOL_FULL_RATIO = 0.9

public = APIRouter(tags=["health"])
protected = APIRouter(
    tags=["health"],
    dependencies=[Depends(require("read"))],
    responses=error_responses(401, 403, 413, 414, 422, 429, 500),
)


class Liveness(BaseModel):
    """The process serves requests."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Ready to do its job: the store takes writes and events flow (or backfill runs)."""

    status: Literal["ready"] = "ready"
    reasons: list[str] = Field(default_factory=list, description="Empty when ready.")


class NotReady(BaseModel):
    """Not ready, and why (also in the one error shape)."""

    status: Literal["not_ready"] = "not_ready"
    reasons: list[str]
    error: ErrorDetail


class HAHealth(BaseModel):
    """The Home Assistant connection."""

    status: Status
    configured: bool = Field(description="False in a process without a Home Assistant source.")
    connected: bool
    version: str | None = Field(description="Home Assistant's version, once connected.")


class SinkHealth(BaseModel):
    """The event store and its circuit breaker."""

    status: Status
    name: str = Field(description="sqlite or influxdb.")
    breaker: Literal["closed", "open", "half_open"]
    consecutive_failures: int
    retry_in_s: float = Field(description="Until the next probe write while open.")


class SpoolHealth(BaseModel):
    """The on-disk spool holding batches while the store is down."""

    status: Status
    events: int
    batches: int
    bytes: int
    capacity_bytes: int


class QueueHealth(BaseModel):
    """The queue between the Home Assistant reader and the writer."""

    status: Status
    depth: int
    capacity: int


class BackfillHealth(BaseModel):
    """Refilling gaps from Home Assistant's history."""

    status: Status
    enabled: bool
    pending_gaps: int


class AlertOut(BaseModel):
    """An alert raised and not yet cleared."""

    name: str = Field(description="Rule name, e.g. `store_down`, `backup_failed` (docs/alerts.md).")
    message: str
    raised_at: str = Field(description="ISO 8601.")


class ResourcesOut(BaseModel):
    """What HomeIQ costs the machine: files and memory now; CPU and event rates over the
    last sampling interval (HOMEIQ_ALERT_EVALUATE_EVERY_S), None before two samples."""

    cpu_percent: float | None = Field(
        description="HomeIQ and its writer process since the previous sample, % of every core."
    )
    rss_bytes: int | None = Field(description="Resident memory, the writer process included.")
    processes: int | None = Field(description="HomeIQ's process and its children.")
    files: dict[str, int] = Field(description="Bytes of each database file in the data dir.")
    data_bytes: int = Field(description="All of them together.")
    disk_free_bytes: int = Field(description="Free space of the data dir's file system.")
    disk_total_bytes: int
    events_in_per_s: float | None = Field(description="Received since the previous sample.")
    events_out_per_s: float | None = Field(description="Stored since the previous sample.")


class BackupHealth(BaseModel):
    """Scheduled backups."""

    status: Status
    enabled: bool
    schedule: str = Field(description="Why the schedule is on or off.")
    next_run: str | None = Field(description="Next scheduled backup (ISO 8601, local time).")
    last_success: str | None = Field(description="Last archive that reached a target.")


class Health(BaseModel):
    """Every component's status and the overall verdict."""

    status: Literal["ok", "degraded", "down"]
    ha: HAHealth
    sink: SinkHealth
    spool: SpoolHealth
    queue: QueueHealth
    backfill: BackfillHealth
    backup: BackupHealth
    alerts: list[AlertOut] = Field(description="Active alerts, oldest first.")
    resources: ResourcesOut
    dead_letters: int = Field(description="Messages kept in the dead-letter table.")
    last_event_time: str | None = Field(description="Newest stored event (ISO 8601).")


@public.get("/healthz", summary="Liveness")
async def healthz() -> Liveness:
    """Always 200 while the process serves requests (not rate-limited)."""
    return Liveness()


@public.get(
    "/readyz",
    summary="Readiness",
    response_model=Readiness,
    responses={
        503: {"model": NotReady, "description": "Not ready; `reasons` says why."},
        **error_responses(414, 429, 500),
    },
)
async def readyz(request: Request, host: Host) -> Any:
    """200 when the store takes writes and Home Assistant is connected (or a backfill
    is catching up); 503 with the reasons otherwise."""
    reasons = await asyncio.to_thread(_not_ready_reasons, host)
    if not reasons:
        return Readiness()
    body = NotReady(
        reasons=reasons,
        error=ErrorDetail(
            code="not_ready",
            message="not ready: " + "; ".join(reasons),
            request_id=request_id_of(request),
        ),
    )
    return JSONBody(body.model_dump(), status_code=503)


def _not_ready_reasons(host: ApiHost) -> list[str]:
    reasons = []
    if not host.writing:
        reasons.append("the writer is not running")
    state = host.breaker.state
    if state is not BreakerState.CLOSED:
        reasons.append(
            f"the {host.breaker.name} store is unreachable (breaker {state.name.lower()})"
        )
    client = host.client
    if client is not None and not client.connected.is_set():
        backfilling = host.gaps is not None and bool(host.metadata.gaps())
        if not backfilling:
            reasons.append("Home Assistant is not connected")
    return reasons


@protected.get("/api/v1/health", summary="Component health")
async def health(host: Host) -> Health:
    """Each component's status; `degraded` (not `down`) while nothing is being lost."""
    gaps, dead = await asyncio.to_thread(
        lambda: (len(host.metadata.gaps()), sum(host.metadata.dead_letter_counts().values()))
    )
    client = host.client
    connected = client is not None and client.connected.is_set()
    connection = client.connection if client is not None else None
    ha = HAHealth(
        status="disabled" if client is None else ("ok" if connected else "down"),
        configured=client is not None,
        connected=connected,
        version=connection.ha_version if connected and connection is not None else None,
    )
    breaker = host.breaker
    sink = SinkHealth(
        status="ok" if breaker.state is BreakerState.CLOSED else "down",
        name=breaker.name,
        breaker=breaker.state.name.lower(),  # type: ignore[arg-type]  # the enum's names
        consecutive_failures=breaker.consecutive_failures,
        retry_in_s=round(breaker.retry_in(), 3),
    )
    spool = host.spool
    spool_full = spool.bytes >= SPOOL_FULL_RATIO * spool.max_bytes
    spool_health = SpoolHealth(
        status="down" if spool_full else ("ok" if spool.empty else "degraded"),
        events=spool.events,
        batches=spool.batches,
        bytes=spool.bytes,
        capacity_bytes=spool.max_bytes,
    )
    queue = host.queue
    queue_health = QueueHealth(
        status="degraded" if queue.qsize() >= queue.max_events else "ok",
        depth=queue.qsize(),
        capacity=queue.max_events,
    )
    backfill = BackfillHealth(
        status="ok" if host.gaps is not None else "disabled",
        enabled=host.gaps is not None,
        pending_gaps=gaps,
    )
    backup = await asyncio.to_thread(_backup_health, host)
    parts = (
        ha.status,
        sink.status,
        spool_health.status,
        queue_health.status,
        backfill.status,
        backup.status,
    )
    overall: Literal["ok", "degraded", "down"] = "ok"
    if sink.status == "down" and spool_full:
        overall = "down"  # new events can be neither written nor spooled
    elif any(p in ("degraded", "down") for p in parts):
        overall = "degraded"
    return Health(
        status=overall,
        ha=ha,
        sink=sink,
        spool=spool_health,
        queue=queue_health,
        backfill=backfill,
        backup=backup,
        alerts=[
            AlertOut(name=a.name, message=a.message, raised_at=format_time_us(a.raised_at))
            for a in host.alerts.active()
        ],
        resources=await asyncio.to_thread(_resources, host),
        dead_letters=dead,
        last_event_time=await _last_event_time(host),
    )


def _resources(host: ApiHost) -> ResourcesOut:
    watch = host.resources
    # Files and memory as they are now; CPU and rates over the alert loop's last interval.
    sample = watch.read()
    process, rates, cpu = sample.process, watch.events_per_s(), watch.cpu_percent()
    return ResourcesOut(
        cpu_percent=None if cpu is None else round(cpu, 2),
        rss_bytes=None if process is None else process.rss_bytes,
        processes=None if process is None else process.processes,
        files=sample.disk.files,
        data_bytes=sample.disk.data_bytes,
        disk_free_bytes=sample.disk.free_bytes,
        disk_total_bytes=sample.disk.total_bytes,
        events_in_per_s=None if rates is None else round(rates[0], 3),
        events_out_per_s=None if rates is None else round(rates[1], 3),
    )


def _backup_health(host: ApiHost) -> BackupHealth:
    status = host.backup_scheduler.status()
    backup_alerts = [a for a in host.alerts.active() if a.name.startswith("backup")]
    state: Status = "disabled"
    if status.enabled:
        state = "degraded" if backup_alerts else "ok"
    return BackupHealth(
        status=state,
        enabled=status.enabled,
        schedule=status.reason,
        next_run=None if status.next_run is None else status.next_run.isoformat(),
        last_success=None
        if status.last_success_us is None
        else format_time_us(status.last_success_us),
    )


async def _last_event_time(host: ApiHost) -> str | None:
    # The gauge is set by every write of this process; after a restart with nothing
    # new written yet, ask the store.
    seconds = host.metrics.value("homeiq_last_event_timestamp_seconds")
    if seconds > 0:
        return format_time_us(int(seconds * 1_000_000))
    try:
        newest = await asyncio.wait_for(host.reader.last_event_time(), READ_TIMEOUT_S)
    except (HomeIQError, TimeoutError, RuntimeError) as exc:
        log.warning("health: cannot read the newest event time: %s", exc)
        return None
    return None if newest is None else format_time_us(newest)


@protected.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(host: Host) -> Response:
    """Every HomeIQ metric in Prometheus text format (ingest counters, queue and spool
    gauges, API latency, rate-limit refusals). Needs a read key: configure the scraper
    with `authorization: {credentials: KEY}`."""
    return Response(generate_latest(host.metrics.registry), media_type=CONTENT_TYPE_LATEST)
