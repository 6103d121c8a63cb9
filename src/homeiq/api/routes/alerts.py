"""Alerts (read scope): what fires now, every rule and whether it is on, and the
history of firings and resolves, newest first, a page at a time."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from homeiq.api.auth import require
from homeiq.api.context import Host
from homeiq.api.errors import error_responses
from homeiq.maintenance.alerts import HistoryEntry
from homeiq.pipeline.normalize import format_time_us
from homeiq.settings.alert import ALERT_NAMES

router = APIRouter(
    prefix="/api/v1/alerts",
    tags=["alerts"],
    dependencies=[Depends(require("read"))],
    responses=error_responses(401, 403, 413, 414, 422, 429, 500),
)

MAX_ID = 2**63 - 1
AlertName = Literal[ALERT_NAMES]  # type: ignore[valid-type]  # a closed set, from settings


class ActiveAlert(BaseModel):
    """An alert firing now."""

    name: str = Field(description="The rule's name, e.g. `store_down`, `backup_failed`.")
    message: str = Field(description="What is wrong, as of the last evaluation.")
    fired_at: str = Field(description="When it fired (ISO 8601).")


class RuleOut(BaseModel):
    """A rule and whether it is evaluated."""

    name: str
    enabled: bool = Field(description="False when listed in HOMEIQ_ALERT_DISABLED.")
    kind: Literal["evaluated", "reported"] = Field(
        description="`evaluated` from signals on a schedule; `reported` by the backups."
    )
    for_s: float | None = Field(description="How long the condition must hold to fire.")


class HistoryOut(BaseModel):
    """One firing or resolve."""

    id: int
    alert: str
    status: Literal["firing", "resolved"]
    message: str
    at: str = Field(description="ISO 8601.")


class AlertsPage(BaseModel):
    """Active alerts, the rules, and one page of the history (newest first)."""

    active: list[ActiveAlert]
    rules: list[RuleOut]
    history: list[HistoryOut]
    next_cursor: int | None = Field(description="Pass as `cursor` for the next page.")


@router.get("", summary="Alerts and their history")
async def alerts(
    host: Host,
    alert: Annotated[AlertName | None, Query(description="Only this alert's history.")] = None,
    cursor: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="`next_cursor` of a page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AlertsPage:
    """What fires now, every rule, and the history of firings and resolves."""
    engine = host.alerts
    page: list[HistoryEntry] = []
    if engine.history is not None:
        history = engine.history
        page = await asyncio.to_thread(
            lambda: history.page(alert=alert, before_id=cursor, limit=limit)
        )
    evaluated = {rule.name: rule.for_s for rule in engine.rules}
    settings = engine.settings
    return AlertsPage(
        active=[
            ActiveAlert(name=a.name, message=a.message, fired_at=format_time_us(a.raised_at))
            for a in engine.active()
        ],
        rules=[
            RuleOut(
                name=name,
                enabled=settings.enabled(name),
                kind="reported" if name.startswith("backup_") else "evaluated",
                for_s=evaluated.get(name),
            )
            for name in ALERT_NAMES
        ],
        history=[
            HistoryOut(
                id=e.id, alert=e.alert, status=e.status, message=e.message, at=format_time_us(e.at)
            )
            for e in page
        ],
        next_cursor=page[-1].id if len(page) == limit else None,
    )
