"""The retention settings (``HOMEIQ_RETENTION_*``): how long each tier is kept, per-entity
overrides, and when and how the daily purge runs.

Tiers, finest first: ``raw`` (the events), ``five_minute``, ``hourly`` and ``daily``
rollups. A keep period is a whole number of days or ``forever``; a coarser tier is never
kept shorter than a finer one, since it is what answers once the finer one is gone.

Overrides are a list (TOML ``[[retention.overrides]]``, the environment a JSON list);
each names entities by domain or entity glob (:mod:`homeiq.selectors`) and sets the keep
of any tiers, e.g. ``{"entities": ["sensor.*_power"], "raw_days": 30}``. The first
override naming an entity is the one that applies to it; a tier it does not set keeps
the default. Every rule is checked at startup, the error naming the setting.
"""

from __future__ import annotations

import itertools
from functools import cached_property
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from homeiq.errors import ConfigError
from homeiq.selectors import EntitySelector
from homeiq.settings.checks import check_schedule, env_name

Keep = int | Literal["forever"]
TIERS = ("raw", "five_minute", "hourly", "daily")
DAY_US = 86_400_000_000
CHUNK_ROWS_MIN = 100
CHUNK_ROWS_MAX = 100_000


def keep_days(value: Any) -> Any:
    """A keep period as written: ``forever`` (any case), or days (an int or its text)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "forever":
            return "forever"
        if text.lstrip("-").isdigit():
            value = int(text)
        else:
            raise ValueError(f"expected a number of days or forever, not {value!r}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a number of days or forever, not {value!r}")
    if value < 1:
        raise ValueError(f"a keep period is at least 1 day (or forever), not {value}")
    return value


def keep_us(keep: Keep) -> int | None:
    """A keep period in microseconds; None for forever."""
    return None if keep == "forever" else keep * DAY_US


def _longer(a: Keep, b: Keep) -> bool:
    """True when ``a`` keeps longer than ``b``."""
    if a == "forever":
        return b != "forever"
    return b != "forever" and a > b


def tier_order_problem(keeps: dict[str, Keep]) -> tuple[str, str] | None:
    """(the tier, why) when these keeps are out of order: a coarser tier kept shorter
    than a finer one."""
    for finer, coarser in itertools.pairwise(TIERS):
        if _longer(keeps[finer], keeps[coarser]):
            return coarser, (
                f"{coarser} is kept {keeps[coarser]} days, shorter than the finer {finer}"
                f" ({keeps[finer]}); a coarser tier must outlive the finer ones"
            )
    return None


class RetentionOverride(BaseModel):
    """Keep periods for some entities: those of ``domains`` or matching ``entities``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    domains: list[str] = Field(default_factory=list)
    entities: list[str] = Field(default_factory=list)
    raw_days: Keep | None = None
    five_minute_days: Keep | None = None
    hourly_days: Keep | None = None
    daily_days: Keep | None = None

    @field_validator("raw_days", "five_minute_days", "hourly_days", "daily_days", mode="before")
    @classmethod
    def _keep(cls, value: Any) -> Any:
        return None if value is None else keep_days(value)

    @model_validator(mode="after")
    def _check(self) -> RetentionOverride:
        if not (self.domains or self.entities):
            raise ValueError("names no entities: give domains or entities (globs)")
        if all(getattr(self, f"{t}_days") is None for t in TIERS):
            raise ValueError("sets no keep period (raw_days, five_minute_days, ...)")
        self.selector  # noqa: B018 (checks every domain and glob now, at startup)
        return self

    @cached_property
    def selector(self) -> EntitySelector:
        """The entities this override is about (ValueError for a bad domain or glob)."""
        return EntitySelector.of(domains=self.domains, entity_globs=self.entities)

    def describe(self) -> str:
        """The override as a person would write it."""
        return self.selector.describe()


class RetentionSettings(BaseModel):
    """Retention; ``HOMEIQ_RETENTION_`` + upper-cased field name."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)

    raw_days: Keep = Field(
        default=365,
        description=(
            "Days raw events are kept, or `forever`. ~80 bytes an event in SQLite: a home at"
            " ~8 changes/s stores ~20 GB a year (see docs/retention.md)."
        ),
    )
    five_minute_days: Keep = Field(
        default=730,
        description="Days 5-minute rollups are kept, or `forever` (at least as long as raw).",
    )
    hourly_days: Keep = Field(
        default="forever",
        description="Days hourly rollups are kept, or `forever` (at least as long as 5-minute).",
    )
    daily_days: Keep = Field(
        default="forever",
        description="Days daily rollups are kept, or `forever` (at least as long as hourly).",
    )
    overrides: list[RetentionOverride] = Field(
        default_factory=list,
        description=(
            "Keep periods for some entities: a list of {domains, entities (globs), raw_days,"
            " five_minute_days, hourly_days, daily_days}; TOML [[retention.overrides]], the"
            " environment a JSON list. The first override naming an entity applies."
        ),
    )
    schedule: str = Field(
        default="04:15",
        description=(
            "Daily time (HH:MM, local time) of the purge, or `off` (`homeiq purge` still"
            " works by hand)."
        ),
    )
    chunk_rows: int = Field(
        default=5000,
        ge=CHUNK_ROWS_MIN,
        le=CHUNK_ROWS_MAX,
        description=(
            "Rows deleted per transaction: ingest waits for one chunk at most (~10 ms at"
            " 5000 rows in SQLite)."
        ),
    )
    influxdb_manage: bool = Field(
        default=False,
        description=(
            "With the InfluxDB store, set the database's retention policy (v1) or the bucket's"
            " retention (v2) to the raw keep plus a margin, instead of deleting by time."
        ),
    )

    @field_validator("raw_days", "five_minute_days", "hourly_days", "daily_days", mode="before")
    @classmethod
    def _keep(cls, value: Any) -> Any:
        return keep_days(value)

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        return check_schedule(value)

    @field_validator("overrides", mode="before")
    @classmethod
    def _parse_overrides(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = orjson.loads(value) if value.strip() else []
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"not a JSON list of overrides: {exc}") from None
        if not isinstance(value, list):
            raise ValueError("expected a list of overrides")
        parsed = []
        for number, item in enumerate(value, 1):
            if isinstance(item, RetentionOverride):
                parsed.append(item)
                continue
            try:
                parsed.append(RetentionOverride.model_validate(item))
            except ValidationError as exc:
                # Said here, so the error names HOMEIQ_RETENTION_OVERRIDES and the override.
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                message = str(first["msg"]).removeprefix("Value error, ")
                raise ValueError(
                    f"override {number}: {where + ': ' if where else ''}{message}"
                ) from None
        return parsed

    @model_validator(mode="after")
    def _check_order(self) -> RetentionSettings:
        problem = tier_order_problem(self.keeps())
        if problem is not None:
            raise ConfigError(env_name("retention", f"{problem[0]}_days"), problem[1])
        for number, override in enumerate(self.overrides, 1):
            problem = tier_order_problem(self.keeps(override))
            if problem is not None:
                raise ConfigError(
                    env_name("retention", "overrides"),
                    f"override {number} ({override.describe()}): {problem[1]}",
                )
        return self

    def keeps(self, override: RetentionOverride | None = None) -> dict[str, Keep]:
        """Keep period by tier: the override's where it sets one, else the default."""
        keeps: dict[str, Keep] = {}
        for tier in TIERS:
            own = None if override is None else getattr(override, f"{tier}_days")
            keeps[tier] = own if own is not None else getattr(self, f"{tier}_days")
        return keeps

    def keeps_for(self, entity_id: str) -> dict[str, Keep]:
        """Keep period by tier for one entity: its first matching override, else defaults."""
        for override in self.overrides:
            if override.selector.matches(entity_id):
                return self.keeps(override)
        return self.keeps()
