"""Hooks for tests: pause and burst the stream, cut connections, inject frames, wait."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from homeiq.ha.simulator.connection import Raw, RawBinary
from homeiq.ha.simulator.core import MSG_FMT
from homeiq.ha.simulator.stream import Stream


class Hooks(Stream):
    """What tests use to steer the simulator and provoke what a real HA rarely does."""

    def pause(self) -> None:
        """Stop the generated stream (hooks still emit)."""
        self._running.clear()

    def resume(self) -> None:
        """Resume the generated stream at the configured rate, without catching up."""
        self._running.set()

    def set_token(self, token: str) -> None:
        """Change the accepted token; open connections stay authenticated."""
        self.token = token

    def burst(self, n: int) -> int:
        """Emit exactly ``n`` generated events right now (not counted against ``count``)."""
        made = self._generate(n, n)
        self._after_batch()
        return made

    def drop_connections(self) -> int:
        """Abruptly close every client connection (no close frame); returns how many."""
        conns = list(self._conns)
        for conn in conns:
            conn.abort()
            self._forget(conn)
        self._stats.dropped_connections += len(conns)
        return len(conns)

    def inject_raw(self, frames: Iterable[str | bytes], *, binary: bool = False) -> int:
        """Send frames verbatim to every authenticated client; returns clients reached.

        They go out as TEXT frames, or as BINARY frames with ``binary`` (which a real HA
        never sends).
        """
        kind = RawBinary if binary else Raw
        payloads = [kind(f.encode() if isinstance(f, str) else f) for f in frames]
        reached = 0
        for conn in self._conns:
            if conn.authed and not conn.closing:
                for frame in payloads:
                    conn.queue.append(frame)
                conn.raw_pending += len(payloads)
                conn.wake.set()
                reached += 1
        self._stats.injected_frames += reached * len(payloads)
        return reached

    def inject_event(
        self, event: Mapping[str, Any] | bytes, *, event_type: str = "state_changed"
    ) -> int:
        """Send an ``event`` object to that event type's subscribers, unrecorded; returns sends."""
        body = event if isinstance(event, bytes) else orjson.dumps(event)
        targets = self._targets.get(event_type) or self._targets.get("*", [])
        for conn, sid in targets:
            conn.push(MSG_FMT % (body, sid))
        self._stats.injected_frames += len(targets)
        return len(targets)

    def fake_state_changed(
        self,
        entity_id: str,
        state: str,
        attributes: Mapping[str, Any] | None = None,
        *,
        last_updated: str | None = None,
        old_state: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A well-formed state_changed ``event`` object (for :meth:`inject_event`), unrecorded."""
        us = self._clock.now_us()
        when = last_updated or self._clock.iso(us).decode()
        ctx = {
            "id": self._ulid.make(us // 1000, self._next_fake_ctx()),
            "parent_id": None,
            "user_id": None,
        }
        new = {
            "entity_id": entity_id,
            "state": state,
            "attributes": dict(attributes or {}),
            "last_changed": when,
            "last_updated": when,
            "context": ctx,
        }
        return {
            "event_type": "state_changed",
            "data": {"entity_id": entity_id, "old_state": old_state, "new_state": new},
            "origin": "LOCAL",
            "time_fired": when,
            "context": ctx,
        }

    async def wait_emitted(self, n: int, timeout: float) -> None:  # noqa: ASYNC109
        """Wait until at least ``n`` state_changed were emitted; TimeoutError otherwise."""
        if len(self.emitted) >= n:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (n, fut)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(fut, timeout)
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    async def wait_finished(self, timeout: float) -> None:  # noqa: ASYNC109
        """Wait until ``count`` events were generated."""
        await asyncio.wait_for(self._finished.wait(), timeout)
