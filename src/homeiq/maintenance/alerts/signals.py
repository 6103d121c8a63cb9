"""Gathering :class:`~homeiq.maintenance.alerts.rules.Signals` from a running process:
the Home Assistant client, the breaker, the spool and a fresh resource sample (the
data-quality score is added by the engine, on the event loop: the tracker is not ours to
read from a thread). The runtime satisfies :class:`SignalHost`; tests build one from
real parts too."""

from __future__ import annotations

import asyncio
from typing import Protocol

from homeiq.maintenance.alerts.rules import ERROR_RATE_MIN_EVENTS, GROWTH_WINDOW_S, Signals
from homeiq.observability.resources import ResourceWatch
from homeiq.pipeline.breaker import BreakerState, CircuitBreaker
from homeiq.pipeline.spool import Spool
from homeiq.settings.alert import AlertSettings


class ClientView(Protocol):
    """The Home Assistant client, as far as alerts need it."""

    @property
    def connected(self) -> asyncio.Event:
        """Set while subscribed to Home Assistant."""


class SignalHost(Protocol):
    """The parts of the process the signals come from (the runtime has them)."""

    @property
    def client(self) -> ClientView | None:
        """None when this process has no Home Assistant source."""

    @property
    def breaker(self) -> CircuitBreaker:
        """The event store's circuit breaker."""

    @property
    def spool(self) -> Spool:
        """The outage spool."""

    @property
    def resources(self) -> ResourceWatch:
        """The resource watch (sampled at each gathering)."""


class RuntimeSignals:
    """Callable: one :class:`Signals` snapshot of ``host`` (blocking: run it in a thread;
    it reads only plain attributes of the loop's objects)."""

    def __init__(self, host: SignalHost, settings: AlertSettings) -> None:
        self.host = host
        self.settings = settings

    def __call__(self) -> Signals:
        host, s = self.host, self.settings
        watch = host.resources
        sample = watch.sample()
        client = host.client
        process = sample.process
        return Signals(
            ha_configured=client is not None,
            ha_connected=client is not None and client.connected.is_set(),
            received_since_last=watch.received_since_previous(),
            store=host.breaker.name,
            breaker_open=host.breaker.state is not BreakerState.CLOSED,
            spool_bytes=host.spool.bytes,
            spool_max_bytes=host.spool.max_bytes,
            disk_free_percent=sample.disk.free_percent,
            disk_free_bytes=sample.disk.free_bytes if sample.disk.total_bytes else None,
            growth_bytes_per_s=watch.growth_bytes_per_s(GROWTH_WINDOW_S),
            rss_bytes=None if process is None else process.rss_bytes,
            cpu_percent=watch.cpu_percent(s.cpu_window_minutes * 60),
            error_rate=watch.error_rate(s.error_window_minutes * 60, ERROR_RATE_MIN_EVENTS),
        )
