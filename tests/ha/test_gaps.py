"""GapFiller: which spans it records at a subscription and how it fills them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from homeiq.errors import AuthenticationFailed, SourceUnavailable
from homeiq.ha.gaps import GapFiller, merge
from homeiq.metadata.store import MetadataStore
from homeiq.model import Gap
from homeiq.pipeline.writer import Watermark


def test_overlapping_and_touching_gaps_merge() -> None:
    gaps = [Gap(50, 60, "b", 0, 3), Gap(0, 10, "a", 0, 1), Gap(10, 20, "a", 0, 2)]
    assert merge(gaps) == [(0, 20, [1, 2]), (50, 60, [3])]


class Fills:
    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.spans: list[tuple[int, int]] = []

    async def __call__(self, start: int, end: int) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.spans.append((start, end))


async def ready() -> None:
    return None


def filler(metadata: MetadataStore, fills: Fills) -> GapFiller:
    return GapFiller(
        metadata,
        fills,
        watermark=Watermark(metadata),
        store_ready=ready,
        overlap_s=60,
        settle_s=0,
    )


async def run_once(gaps: GapFiller) -> None:
    task = asyncio.create_task(gaps.run())
    gaps.wake()
    await asyncio.wait_for(gaps.wait_idle(), 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_first_subscription_only_sets_the_watermark(tmp_path: Path) -> None:
    metadata = MetadataStore.in_dir(tmp_path)
    try:
        gaps = filler(metadata, Fills())
        gaps.on_subscribed()
        assert metadata.gaps() == []
        assert gaps.watermark.value is not None
        assert metadata.get(Watermark.KEY) == str(gaps.watermark.value)
    finally:
        metadata.close()


async def test_a_later_subscription_fills_from_the_watermark_minus_the_overlap(
    tmp_path: Path,
) -> None:
    metadata = MetadataStore.in_dir(tmp_path)
    try:
        metadata.put(Watermark.KEY, "1000000000")
        fills = Fills()
        gaps = filler(metadata, fills)
        gaps.on_subscribed()
        await run_once(gaps)
        ((start, end),) = fills.spans
        assert start == 1_000_000_000 - 60_000_000
        assert end > start
        assert metadata.gaps() == []  # filled, forgotten
    finally:
        metadata.close()


async def test_an_unreachable_home_assistant_keeps_the_gap_for_later(tmp_path: Path) -> None:
    metadata = MetadataStore.in_dir(tmp_path)
    try:
        metadata.add_gap(Gap(10, 20, "spool_full", 0))
        gaps = filler(metadata, Fills(SourceUnavailable("down")))
        await run_once(gaps)
        assert [(g.start_us, g.end_us) for g in metadata.gaps()] == [(10, 20)]
    finally:
        metadata.close()


async def test_a_refused_token_stops_backfill(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metadata = MetadataStore.in_dir(tmp_path)
    try:
        metadata.add_gap(Gap(10, 20, "disconnected", 0))
        gaps = filler(metadata, Fills(AuthenticationFailed("bad token")))
        task = asyncio.create_task(gaps.run())
        gaps.wake()
        await asyncio.wait_for(task, 5)  # returns: never retried
        assert "backfill stopped" in caplog.text
        assert len(metadata.gaps()) == 1
    finally:
        metadata.close()
