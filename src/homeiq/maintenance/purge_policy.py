"""InfluxDB expiring raw events itself (``HOMEIQ_RETENTION_INFLUXDB_MANAGE=true``).

Deleting by time makes InfluxDB write tombstones and rewrite the shards they touch;
a retention policy (v1) or bucket retention (v2) instead drops whole shard groups once
they are older than the duration: no rewrite at all. HomeIQ sets the duration to the
longest raw keep of the settings (the default or an override) plus
:data:`MARGIN_DAYS`; the entities kept that long are left to InfluxDB, the others
(overrides with a shorter keep) are still deleted by time.

Never too early: InfluxDB drops a group only when *all* of it is older than the
duration, so an event lives at least ``keep + margin`` days; the rollups fold events
within minutes of their arrival (and the daily purge runs ``fold_before`` for these
entities too), long before that.
"""

from __future__ import annotations

import logging

from homeiq.settings.retention import RetentionSettings
from homeiq.sinks.base import RawRetention

log = logging.getLogger(__name__)

MARGIN_DAYS = 2


def longest_raw_keep(settings: RetentionSettings) -> int | None:
    """The longest raw keep in days over the default and every override; None: forever."""
    keeps = [settings.raw_days, *(o.raw_days for o in settings.overrides if o.raw_days)]
    if "forever" in keeps:
        return None
    return max(int(k) for k in keeps if k is not None)


class RawPolicy:
    """Sets the store's own expiry of raw events from the retention settings."""

    def __init__(self, retention: RawRetention, settings: RetentionSettings) -> None:
        self.retention = retention
        self.settings = settings
        self.keep = longest_raw_keep(settings)

    def covers(self, entity_id: str) -> bool:
        """True when InfluxDB's expiry, not a DELETE, removes this entity's old events."""
        keep = self.settings.keeps_for(entity_id)["raw"]
        return keep == ("forever" if self.keep is None else self.keep)

    async def apply(self, *, dry_run: bool) -> str:
        """Set the expiry (a dry run only says what it would be); the note for the report."""
        days = None if self.keep is None else self.keep + MARGIN_DAYS
        wanted = "forever" if days is None else f"{days}d"
        if dry_run:
            return f"{await self.retention.raw_retention()}; would be set to {wanted}"
        now = await self.retention.set_raw_retention(days)
        log.info("InfluxDB now expires raw events itself: %s", now)
        return now
