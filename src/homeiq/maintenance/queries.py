"""Statistics answered from the stored tiers (5m, 1h, 1d), never from the raw events,
and what they say where the retention purged a tier.

Raw events may be purged (365 days by default): the tiers keep what they said, so
statistics over that range answer the same numbers as before. A tier itself may be
purged too (5-minute buckets after 2 years by default): its buckets are gone, so a
request for that tier over that range is refused by :class:`RangePurged`, naming the
keep period and the coarser tier that still answers, rather than answering quiet
buckets that would look like an entity that never changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from homeiq.errors import RangePurged
from homeiq.maintenance.rollups import PERIODS, Bucket, RollupStore, align, complete, fill
from homeiq.pipeline.normalize import format_time_us

STAT_PERIODS = PERIODS
COARSER = {"5m": "1h", "1h": "1d"}
DEFAULT_SETTINGS = {
    "5m": "the 5-minute tier's keep period (settings group retention)",
    "1h": "the hourly tier's keep period (settings group retention)",
    "1d": "the daily tier's keep period (settings group retention)",
}


@dataclass(frozen=True, slots=True)
class StatisticsLimits:
    """How the answer names the keep period of a purged tier: ``settings`` maps a period
    to the setting (e.g. ``HOMEIQ_RETENTION_FIVE_MINUTE_DAYS``) whose keep period purged
    it. What was purged, and from when, is recorded in rollups.db by the purge itself."""

    settings: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_SETTINGS))


@dataclass(frozen=True, slots=True)
class Statistics:
    """Buckets of one entity over a range, quiet ones included."""

    entity_id: str
    period: str
    buckets: list[Bucket]


def statistics(
    store: RollupStore,
    entity_id: str,
    period: str,
    start: int,
    end: int,
    *,
    now: int,
    limits: StatisticsLimits | None = None,
) -> Statistics:
    """Buckets of ``period`` (5m, 1h or 1d; days are UTC days) over ``[start, end)``
    from the rollups: never from the events. Each stored bucket's time is credited up
    to ``min(its end, now)`` (the open one is saved as far as it was then). Raises
    :class:`~homeiq.errors.RangePurged` when the tier's buckets of the range were purged."""
    if period not in STAT_PERIODS:
        raise ValueError(f"period must be one of {', '.join(STAT_PERIODS)}")
    seconds = PERIODS[period]
    first = align(start, seconds)
    purged = store.tier_purged_before(period, entity_id)
    if purged is not None and first < purged and first < end:
        settings = (limits or StatisticsLimits()).settings
        raise RangePurged(
            period,
            entity_id,
            purged,
            f"{period} buckets of {entity_id} are kept from {format_time_us(purged)}"
            f" ({settings.get(period, DEFAULT_SETTINGS[period])}); start there"
            + (f", or ask for period={COARSER[period]}" if period in COARSER else ""),
        )
    last = min(end, now)
    stored = [complete(b, now) for b in store.buckets(period, entity_id, first, end)]
    carried = store.before(period, entity_id, first)
    return Statistics(
        entity_id, period, list(fill(stored, carried, entity_id, seconds, first, last))
    )
