"""Which spans to backfill, and when.

A span of live events can be missing for three reasons: HomeIQ was not running (a
stop, a crash, ``kill -9``), the Home Assistant connection was down, or the outage
spool was full and dropped events. Each becomes a :class:`~homeiq.model.Gap` in
metadata.db (so a crash during backfill does not forget it), and :class:`GapFiller`
fetches the gaps from Home Assistant's history once it is safe to:

* after the ``state_changed`` subscription is up (from then on live events flow), and
  a few seconds later, because Home Assistant's recorder commits about once a second:
  a change made just before the subscription is in its history only after that;
* once the store is reachable and the spool drained, so backfill compares against
  what is really stored and never races spooled live rows.

A connect gap runs from the durable watermark (minus ``backfill_overlap_s``: rows that
are already stored are skipped, so the overlap costs a query, not duplicates) to a few
seconds after the subscription (clocks of two machines drift).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from homeiq.errors import AuthenticationFailed, ProtocolError, TransientError
from homeiq.metadata.store import MetadataStore
from homeiq.model import Gap, now_us
from homeiq.pipeline.writer import Watermark

log = logging.getLogger(__name__)

SETTLE_S = 3.0  # HA's recorder commit interval is 1 s; allow for it and clock drift
RETRY_S = 30.0  # a failed backfill (HA unreachable) is tried again this much later

Fill = Callable[[int, int], Awaitable[object]]


def merge(gaps: list[Gap]) -> list[tuple[int, int, list[int]]]:
    """Overlapping or touching gaps as (start, end, ids), oldest first."""
    merged: list[tuple[int, int, list[int]]] = []
    for gap in sorted(gaps, key=lambda g: (g.start_us, g.end_us)):
        ids = [gap.id] if gap.id is not None else []
        if merged and gap.start_us <= merged[-1][1]:
            start, end, known = merged[-1]
            merged[-1] = (start, max(end, gap.end_us), known + ids)
        else:
            merged.append((gap.start_us, gap.end_us, ids))
    return merged


class GapFiller:
    """Records gaps at each subscription and fills them from Home Assistant's history."""

    def __init__(
        self,
        metadata: MetadataStore,
        fill: Fill,
        *,
        watermark: Watermark,
        store_ready: Callable[[], Awaitable[None]],
        overlap_s: float,
        settle_s: float = SETTLE_S,
    ) -> None:
        self.metadata = metadata
        self.fill = fill
        self.watermark = watermark
        self.store_ready = store_ready
        self.overlap_us = int(overlap_s * 1_000_000)
        self.settle_s = settle_s
        self.runs = 0  # completed passes over the gaps (tests wait on it)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def on_subscribed(self) -> None:
        """The live stream is up again: record the gap since the watermark, then fill."""
        now = now_us()
        since = self.watermark.value
        if since is None:
            # First connection of a new data directory: nothing to catch up on, but a
            # crash before the first batch is stored must still leave a starting point.
            self.watermark.seed(now)
        else:
            start = since - self.overlap_us
            end = now + int(self.settle_s * 1_000_000)
            self.metadata.add_gap(Gap(start, end, "disconnected", now))
        self.wake()

    def wake(self) -> None:
        """Fill whatever gaps are recorded (spool drops included)."""
        self._idle.clear()
        self._wake.set()

    async def wait_idle(self) -> None:
        """Return once every recorded gap had its turn (tests, shutdown)."""
        await self._idle.wait()

    async def run(self) -> None:
        """Fill gaps each time :meth:`wake` is called; returns if the token is refused."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self.settle_s)
            await self.store_ready()
            try:
                done = await self._fill_all()
            except AuthenticationFailed as exc:
                log.error("backfill stopped: %s", exc)
                self._idle.set()
                return
            self.runs += 1
            if done:
                self._idle.set()
            else:
                asyncio.get_running_loop().call_later(RETRY_S, self.wake)
                self._idle.set()

    async def _fill_all(self) -> bool:
        gaps = await asyncio.to_thread(self.metadata.gaps)
        for start, end, ids in merge(gaps):
            try:
                await self.fill(start, end)
            except (TransientError, ProtocolError) as exc:
                log.warning("backfill of a gap failed, retrying in %.0fs: %s", RETRY_S, exc)
                return False
            for gap_id in ids:
                await asyncio.to_thread(self.metadata.remove_gap, gap_id)
        return True
