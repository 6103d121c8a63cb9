"""The API's routers, in the order they are mounted.

A new data router goes in its own module here and into :data:`ROUTERS`; it declares
its scope with ``dependencies=[Depends(require("read"))]`` (``create_app`` refuses a
router route without one) and gets the stores through the dependencies of
:mod:`homeiq.api.context` (``Reader``, ``Metadata``, ``RegistryDep``, ``Host``).
"""

from __future__ import annotations

from fastapi import APIRouter

from homeiq.api.routes import (
    admin,
    alerts,
    backups,
    events,
    health,
    quality,
    registry,
    statistics,
)

ROUTERS: tuple[APIRouter, ...] = (
    health.public,
    health.protected,
    registry.router,
    events.router,
    statistics.router,
    admin.router,
    statistics.admin,
    backups.router,
    quality.router,
    alerts.router,
)

__all__ = ["ROUTERS"]
