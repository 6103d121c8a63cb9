"""The baseline: each entity's current state, recorded at every (re)connect where the
store lacks it, and the state at the start of a history range.

HomeIQ stores the changes it sees. An entity that has not changed since HomeIQ started
has no rows, so a history range has no state at its start for it (Home Assistant's own
history answers the state at the start, then the changes). So after every connect,
once the ``state_changed`` subscription is up (nothing falls between the states read
and the stream), :class:`StateSnapshot` reads ``get_states`` and records each entity
whose stored last row is missing, or older than the state and in another state, as a
``Source.SNAPSHOT`` record: time = the state's ``last_updated`` (the idempotency key),
context from the state object, no previous state or duration (unknown). The records
go through the queue like live events: normalized, enriched, written, spooled in an
outage.

Why the comparison, and why it waits:

* Never a duplicate of a stored row. InfluxDB overwrites the fields of a point written
  again at the same time and tags, so the snapshot compares with the store's last row of
  each entity (``EventReader.last_states``) and skips a state whose ``last_updated`` is
  not newer than it.
* The comparison waits until the spool is drained (the store's last row is what was
  really received) and, with backfill on, until this connect's gap was fetched: a
  backfill row carries the previous state and duration, a snapshot of the same change
  would not, and on SQLite the row written first wins.
* Left open: a change that happened a few ms before ``get_states`` and is still between
  the queue and the store when the comparison reads it. Both records then share a key:
  SQLite keeps the first written (the live one, queued earlier); InfluxDB merges the
  fields, so the live row keeps its previous state and duration but reads as
  ``source=snapshot``.
* The store is unreachable at the comparison: tried again every ``retry_s``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from homeiq.errors import InvalidEvent, ProtocolError, TransientError
from homeiq.ha.client import HAConnection
from homeiq.model import EventRecord, Source
from homeiq.observability.logging import cancel_and_wait
from homeiq.pipeline.normalize import parse_time_us
from homeiq.pipeline.queue import EventQueue, Incoming
from homeiq.sinks.base import EventReader

log = logging.getLogger(__name__)

RETRY_S = 30.0
Wait = Callable[[], Awaitable[None]]


def _time_of(state: Any) -> tuple[str, int] | None:
    """(entity_id, last_updated µs) of a ``get_states`` item; None when it has neither."""
    if not isinstance(state, dict) or not isinstance(state.get("entity_id"), str):
        return None
    try:
        return state["entity_id"], parse_time_us(state.get("last_updated"), "last_updated")
    except InvalidEvent:
        return None


def missing_states(states: Any, stored: Mapping[str, EventRecord]) -> list[dict[str, Any]]:
    """The ``get_states`` items the store lacks: no row for the entity, or a last row
    older than the state and in another state (a change HomeIQ did not see)."""
    missing = []
    for state in states if isinstance(states, list) else ():
        key = _time_of(state)
        if key is None:
            continue  # nothing to key it by: not a state HomeIQ could store
        last = stored.get(key[0])
        if last is None or (last.time < key[1] and last.state != state.get("state")):
            missing.append(state)
    return missing


def snapshot_message(state: dict[str, Any]) -> dict[str, Any]:
    """A ``get_states`` item as the ``state_changed`` message the writer normalizes:
    no old state, so no previous state or duration."""
    data = {"entity_id": state["entity_id"], "old_state": None, "new_state": state}
    return {"type": "event", "event": {"event_type": "state_changed", "data": data}}


class StateSnapshot:
    """Records the baseline at every connect (see the module docstring)."""

    def __init__(
        self,
        reader: EventReader,
        queue: EventQueue,
        store_ready: Wait,
        *,
        backfill_idle: Wait | None = None,
        retry_s: float = RETRY_S,
    ) -> None:
        self.reader = reader
        self.queue = queue
        self.store_ready = store_ready
        self.backfill_idle = backfill_idle
        self.retry_s = retry_s
        self.taken = 0  # snapshots compared and queued (tests wait on it)
        self.recorded = 0  # states queued as snapshot records, in all
        self._task: asyncio.Task[None] | None = None

    async def on_subscribed(self, conn: HAConnection) -> None:
        """Read Home Assistant's states now; compare and queue them in the background
        (the HA client calls this once ``state_changed`` is subscribed)."""
        try:
            states = await conn.command({"type": "get_states"})
        except ProtocolError as exc:  # the next connect tries again
            log.warning("no state snapshot at this connect: %s", exc)
            return
        await self._cancel()
        self._task = asyncio.create_task(self._record(states), name="state-snapshot")

    async def _record(self, states: Any) -> None:
        while True:
            await self.store_ready()
            if self.backfill_idle is not None:
                await self.backfill_idle()
            try:
                missing = await self.missing(states)
                break
            except TransientError as exc:
                log.warning(
                    "state snapshot: store unavailable (%s), retrying in %.0f s", exc, self.retry_s
                )
                await asyncio.sleep(self.retry_s)
        for state in missing:
            await self.queue.offer(Incoming(snapshot_message(state), Source.SNAPSHOT))
        self.taken += 1
        self.recorded += len(missing)
        log.info(
            "state snapshot: %d of %d entities recorded as baseline",
            len(missing),
            len(states) if isinstance(states, list) else 0,
        )

    async def missing(self, states: Any) -> list[dict[str, Any]]:
        """The states of ``states`` the store lacks (:func:`missing_states`)."""
        ids = [key[0] for key in map(_time_of, states if isinstance(states, list) else ()) if key]
        return missing_states(states, await self.reader.last_states(ids))

    async def _cancel(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def close(self) -> None:
        """Stop a snapshot still waiting (the next start takes a new one)."""
        await self._cancel()


def with_start_states(
    rows: Mapping[str, Sequence[EventRecord]], starts: Mapping[str, EventRecord]
) -> dict[str, list[EventRecord]]:
    """Each entity's rows of a range with its state at the range start first.

    ``starts`` is ``EventReader.last_states(ids, before=start)``: the last row before the
    start, kept at its real time (not moved to the start; its time says since when the
    state held), exactly as ``history_many(include_start_state=True)`` answers.
    """
    return {e: [starts[e], *rs] if e in starts else list(rs) for e, rs in rows.items()}
