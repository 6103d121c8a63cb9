"""Saved cleanup rules (``HOMEIQ_CLEANUP_RULES``): test data deleted on the daily schedule.

In TOML, one table per rule::

    [[cleanup.rules]]
    entities = ["sensor.test_*"]
    source = "simulator"
    older_than = "7d"

In the environment, the same list as JSON:
``HOMEIQ_CLEANUP_RULES='[{"entities": ["sensor.test_*"], "older_than": "7d"}]'``.
A bad rule stops startup naming ``HOMEIQ_CLEANUP_RULES`` and the rule's position.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
)

from homeiq.selectors import check_glob

# Where a rule's events came from: a record source, or "simulator" (the events of
# entities HomeIQ only ever saw from its own simulator: maintenance.cleanup.provenance).
SOURCES = ("live", "backfill", "import", "snapshot", "simulator")
CleanupSource = Literal["live", "backfill", "import", "snapshot", "simulator"]

_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_SPAN_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def span_seconds(text: str) -> float:
    """``45s``/``30m``/``12h``/``7d``/``2w`` in seconds (the CLI's ``--since`` spans);
    ValueError for anything else, zero and negative spans included."""
    match = _SPAN.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 7d, 12h, 30m or 2w")
    seconds = float(match[1]) * _SPAN_S[match[2]]
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    return seconds


class CleanupRule(BaseModel):
    """One saved rule: the events of these entities (ids or globs), optionally only of
    one source and only those older than a span, deleted on every scheduled run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entities: list[str] = Field(min_length=1, description="Entity ids or globs.")
    source: CleanupSource | None = Field(default=None, description="Only this source.")
    older_than: str | None = Field(default=None, description="Only events older than this.")
    name: str | None = Field(default=None, max_length=80, description="Shown in the history.")

    @field_validator("entities")
    @classmethod
    def _entities(cls, value: list[str]) -> list[str]:
        return [check_glob(item.strip()) for item in value]

    @field_validator("older_than")
    @classmethod
    def _older_than(cls, value: str | None) -> str | None:
        if value is not None:
            span_seconds(value)
        return value

    @property
    def older_than_s(self) -> float | None:
        """``older_than`` in seconds (None: any age)."""
        return None if self.older_than is None else span_seconds(self.older_than)

    def describe(self) -> str:
        """The rule as the history shows it: ``sensor.test_* source=simulator older_than=7d``."""
        parts = [" ".join(self.entities)]
        if self.source is not None:
            parts.append(f"source={self.source}")
        if self.older_than is not None:
            parts.append(f"older_than={self.older_than}")
        text = " ".join(parts)
        return f"{self.name}: {text}" if self.name else text


def _rule_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = [p for p in error["loc"]]
    position = next((p for p in where if isinstance(p, int)), None)
    field = ".".join(str(p) for p in where if isinstance(p, str))
    message = str(error["msg"]).removeprefix("Value error, ")
    rule = f"rule {position + 1}" if position is not None else "the rules"
    return f"{rule}{': ' + field if field else ''}: {message}"


class CleanupSettings(BaseModel):
    """Saved cleanup rules; ``HOMEIQ_CLEANUP_RULES`` (JSON) or ``[[cleanup.rules]]``."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)

    rules: list[CleanupRule] = Field(
        default_factory=list,
        description=(
            "Cleanup rules run daily with the retention purge, each deleting stored events:"
            " `entities` (ids or globs), optional `source` (live, backfill, import, snapshot"
            " or simulator) and `older_than` (7d, 12h...). A JSON list in the environment,"
            " `[[cleanup.rules]]` tables in TOML. Every run is in `homeiq cleanup --history`."
        ),
    )

    @field_validator("rules", mode="wrap")
    @classmethod
    def _rules(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if isinstance(value, str):
            try:
                value = orjson.loads(value) if value.strip() else []
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"not a JSON list of rules: {exc}") from None
        if isinstance(value, dict):  # one rule written as a table
            value = [value]
        try:
            return handler(value)
        except ValidationError as exc:
            # One sentence naming the rule, under this setting's own variable (pydantic
            # would name HOMEIQ_CLEANUP_RULES_ENTITIES, which no one can set).
            raise ValueError(_rule_problem(exc)) from None
