"""Which kind of Home Assistant each entity came from: a real one, or HomeIQ's simulator.

Records keep their source (live, backfill, import, snapshot) and nothing else; a test
run against ``homeiq simulate`` stores ``live`` rows like any home. So HomeIQ asks each
Home Assistant it connects to for ``get_config``: the simulator says
``"homeiq_simulator": true`` there, a real Home Assistant never does. Every entity a
stored batch holds is then remembered in metadata.db (``entity_provenance``) under that
origin, once per entity and origin. ``homeiq cleanup --source simulator`` deletes the
events of the entities seen *only* from a simulator.

Limits: an entity stored before this table existed (or while the origin was not yet
known, e.g. the spool drained at start before the first connect) has no provenance
until it is stored again; an entity id that a real home and the simulator share counts
as real (it is never selected), so real data is never taken for test data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from homeiq.errors import HomeIQError, ProtocolError, SourceUnavailable
from homeiq.metadata.store import MetadataStore
from homeiq.model import EventRecord, now_us

log = logging.getLogger(__name__)

SIMULATOR = "simulator"
HOME_ASSISTANT = "home_assistant"
# The key the simulator adds to its get_config answer (ha/simulator/core.py).
SIMULATOR_MARK = "homeiq_simulator"


def origin_of(config: Any) -> str:
    """The origin a ``get_config`` answer says: the simulator marks itself."""
    if isinstance(config, dict) and config.get(SIMULATOR_MARK) is True:
        return SIMULATOR
    return HOME_ASSISTANT


class Provenance:
    """Remembers, per entity, the kinds of Home Assistant its stored events came from."""

    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata
        self.origin: str | None = None  # unknown until the first connect answers
        self._recorded: set[tuple[str, str]] = set()
        self._pending: set[tuple[str, str]] = set()
        self._task: asyncio.Task[None] | None = None

    async def on_connected(self, conn: Any) -> None:
        """Ask the Home Assistant just connected to what it is (the HA client calls this
        at every connect, before subscribing to state changes)."""
        try:
            config = await conn.command({"type": "get_config"})
        except (ProtocolError, SourceUnavailable) as exc:
            log.warning("cannot tell whether Home Assistant is a simulator: %s", exc)
            return
        origin = origin_of(config)
        if origin != self.origin:
            log.info("events from now on are recorded as coming from %s", origin)
        self.origin = origin

    def stored(self, records: Sequence[EventRecord]) -> None:
        """A follower of stored batches: note each new (entity, origin), saved in the
        background (a handful per entity and process, never per event)."""
        origin = self.origin
        if origin is None:
            return
        recorded = self._recorded
        for record in records:
            key = (record.entity_id, origin)
            if key not in recorded:
                recorded.add(key)
                self._pending.add(key)
        if self._pending and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._save(), name="provenance")

    async def _save(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, set()
            try:
                await asyncio.to_thread(self.record, batch)
            except HomeIQError as exc:  # metadata.db full or locked: noted again next time
                self._recorded.difference_update(batch)
                log.warning("cannot record where %d entities came from: %s", len(batch), exc)
                return

    async def close(self) -> None:
        """Save what is pending (called at stop, before metadata.db closes)."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        if self._pending:
            await self._save()

    def record(self, pairs: set[tuple[str, str]] | Sequence[tuple[str, str]]) -> None:
        """Remember (entity_id, origin) pairs (already known ones are kept as they were)."""
        at = now_us()
        with self.metadata._writing() as conn:  # the store's lock and error mapping
            conn.executemany(
                "INSERT OR IGNORE INTO entity_provenance (entity_id, origin, first_seen)"
                " VALUES (?, ?, ?)",
                [(entity_id, origin, at) for entity_id, origin in pairs],
            )

    def simulator_only(self) -> set[str]:
        """Entities seen from a simulator and never from a real Home Assistant."""
        with self.metadata._reading() as conn:
            rows = conn.execute(
                "SELECT entity_id FROM entity_provenance WHERE origin = ? EXCEPT"
                " SELECT entity_id FROM entity_provenance WHERE origin = ?",
                (SIMULATOR, HOME_ASSISTANT),
            ).fetchall()
        return {str(r[0]) for r in rows}
