"""Data quality, measured continuously: per entity, per domain and overall, kept as a
daily history in metadata.db (docs/quality.md).

- ``measures``: per-entity counters, the stale check, flags and the score formula
- ``report``: the report built from them (live and offline alike)
- ``history``: the daily rows in metadata.db
- ``tracker``: :class:`QualityTracker`, the follower of stored batches
"""

from __future__ import annotations

from homeiq.maintenance.quality.report import EntityQuality, GroupQuality, QualityReport
from homeiq.maintenance.quality.tracker import QualityTracker, no_exclusions

__all__ = ["EntityQuality", "GroupQuality", "QualityReport", "QualityTracker", "no_exclusions"]
