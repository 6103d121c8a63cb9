"""Cleanup of stored events: one-off (``homeiq cleanup``) and saved rules on the schedule,
every run recorded in metadata.db, an interrupted run resumed; and the provenance that
tells the simulator's entities from a real home's.

The lead's lifecycle scheduler calls :func:`run_saved_rules` once a day with the open
sink's eraser (``registry.backend(settings).eraser(sink)``) and the metadata store.
"""

from homeiq.maintenance.cleanup.history import CleanupHistory, CleanupRun
from homeiq.maintenance.cleanup.provenance import Provenance
from homeiq.maintenance.cleanup.runner import (
    CleanupRequest,
    count_by_entity,
    execute,
    plan,
    resume_interrupted,
    run_saved_rules,
)

__all__ = [
    "CleanupHistory",
    "CleanupRequest",
    "CleanupRun",
    "Provenance",
    "count_by_entity",
    "execute",
    "plan",
    "resume_interrupted",
    "run_saved_rules",
]
