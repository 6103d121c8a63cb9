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
# The retention settings whose keep period purges each tier (settings/retention.py).
DEFAULT_SETTINGS = {
    p: f"HOMEIQ_RETENTION_{name}_DAYS, or a retention override naming the entity"
    for p, name in (("5m", "FIVE_MINUTE"), ("1h", "HOURLY"), ("1d", "DAILY"))
}


@dataclass(frozen=True, slots=True)
class StatisticsLimits:
    """How the answer names the keep period of a purged tier: ``settings`` maps a period
    to the setting whose keep period purged it (default: the retention group's). What
    was purged, and from when, is recorded in rollups.db by the purge itself, so a
    changed keep period never makes statistics refuse data that is still there."""

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
    from the rollups: never from the events. A stored bucket saved before its end (the
    entity's last) has the rest of its time credited, up to ``min(its end, end, now)``,
    to the state its last event left, as quiet buckets are. Raises
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
    stored = [complete(b, last) for b in store.buckets(period, entity_id, first, end)]
    carried = store.before(period, entity_id, first)
    return Statistics(
        entity_id, period, list(fill(stored, carried, entity_id, seconds, first, last))
    )
