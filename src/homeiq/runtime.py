"""Process wiring: one asyncio process hosting the Home Assistant client, the writer and
the stores, started and stopped in the order that loses nothing.

Stop order matters: first the source (no new events), then the writer drains the queue
and the batch in flight, then the stores close. The drain has a deadline
(``HOMEIQ_SHUTDOWN_DEADLINE_S``); anything it could not write is reported, not hidden.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from homeiq.errors import ConfigError
from homeiq.ha.client import HAClient
from homeiq.ha.sync import RegistrySync
from homeiq.metadata.registry import Registry
from homeiq.metadata.store import MetadataStore
from homeiq.observability.metrics import Metrics
from homeiq.pipeline.normalize import Normalizer
from homeiq.pipeline.queue import EventQueue
from homeiq.pipeline.writer import Writer
from homeiq.settings import Settings
from homeiq.sinks.sqlite import SQLiteSink

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class LiveStats:
    """A snapshot of the counters for the demo line and ``status``."""

    received: int
    stored: int
    duplicates: int
    rejected: int
    entities: int
    queue_depth: int
    ha_connected: bool


def ha_source(settings: Settings) -> tuple[str, str]:
    """Home Assistant's URL and token from the settings; ConfigError naming what is missing."""
    if settings.ha_url is None:
        raise ConfigError("HOMEIQ_HA_URL", "is required to connect to Home Assistant")
    if settings.ha_token is None:
        raise ConfigError("HOMEIQ_HA_TOKEN", "is required (or HOMEIQ_HA_TOKEN_FILE naming a file)")
    return settings.ha_url, settings.ha_token.get_secret_value()


class Runtime:
    """Owns every long-lived component of one HomeIQ process."""

    def __init__(self, settings: Settings, *, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        try:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                "HOMEIQ_DATA_DIR", f"cannot create {settings.data_dir}: {exc.strerror}"
            ) from exc
        self.metadata = MetadataStore.in_dir(settings.data_dir)
        # Enrich with the last known registry until Home Assistant answers.
        self.registry = Registry(self.metadata.load_registry())
        self.sink = SQLiteSink(settings.data_dir, writer=settings.sqlite_writer)
        self.queue = EventQueue(settings.queue_max_events, self.metrics)
        self.normalizer = Normalizer(
            placement_of=self.registry.placement_of,
            attributes_max_bytes=settings.attributes_max_bytes,
            future_tolerance_s=settings.future_tolerance_s,
        )
        self.writer = Writer(
            self.queue,
            self.sink,
            self.metadata,
            self.normalizer,
            self.metrics,
            batch_max_events=settings.batch_max_events,
            batch_max_age_s=settings.batch_max_age_s,
        )
        self.sync = RegistrySync(self.metadata, self.registry)
        self.client: HAClient | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._client_task: asyncio.Task[None] | None = None

    def connect_to(self, url: str, token: str) -> None:
        """Configure the Home Assistant source (before :meth:`start`)."""
        s = self.settings
        self.client = HAClient(
            url,
            token,
            self.queue,
            self.metrics,
            on_connected=self.sync.on_connected,
            on_registry_event=self.sync.on_registry_event,
            reconnect_min_s=s.ha_reconnect_min_s,
            reconnect_max_s=s.ha_reconnect_max_s,
            heartbeat_s=s.ha_heartbeat_s,
            heartbeat_timeout_s=s.ha_heartbeat_timeout_s,
        )

    def connect_from_settings(self) -> None:
        """Configure the source from ``HOMEIQ_HA_URL`` and ``HOMEIQ_HA_TOKEN``."""
        self.connect_to(*ha_source(self.settings))

    async def start(self) -> None:
        """Open the store, then start the writer and the source."""
        await self.sink.open()
        self._writer_task = asyncio.create_task(self.writer.run(), name="writer")
        if self.client is not None:
            self._client_task = asyncio.create_task(self.client.run(), name="ha-client")

    async def wait(self) -> None:
        """Return when a component stops on its own (auth rejected, writer crash)."""
        tasks = [t for t in (self._writer_task, self._client_task) if t is not None]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()

    async def stop(self) -> None:
        """Stop the source, drain the queue within the deadline, close the stores."""
        if self._client_task is not None:
            self._client_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._client_task
        await self.sync.close()
        self.writer.stop()
        if self._writer_task is not None:
            try:
                await asyncio.wait_for(
                    asyncio.shield(self._writer_task), self.settings.shutdown_deadline_s
                )
            except TimeoutError:
                log.error(
                    "shutdown deadline (%.0fs) passed with %d events still queued; they were"
                    " not written (raise HOMEIQ_SHUTDOWN_DEADLINE_S)",
                    self.settings.shutdown_deadline_s,
                    self.queue.qsize(),
                )
                self._writer_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._writer_task
        await self.sink.close()
        self.metadata.close()

    def stats(self) -> LiveStats:
        """Counters as they are now."""
        m = self.metrics
        return LiveStats(
            received=int(m.value("homeiq_events_received_total")),
            stored=int(m.value("homeiq_events_stored_total")),
            duplicates=int(m.value("homeiq_events_duplicate_total")),
            rejected=int(m.rejected_total()),
            entities=len(self.writer.entities_seen),
            queue_depth=self.queue.qsize(),
            ha_connected=self.client is not None and self.client.connected.is_set(),
        )
