"""What is stored at all (``HOMEIQ_INGEST_*``): include and exclude rules, as Home
Assistant's recorder takes them (domains, entity ids, entity globs) plus device classes.

Every name is checked by :mod:`homeiq.selectors` (a domain Home Assistant does not have,
a glob no entity id can match, a malformed entity id): a bad value stops startup naming
its variable. How the two lists combine is :mod:`homeiq.pipeline.filter`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from homeiq.selectors import (
    EntitySelector,
    check_device_class,
    check_domain,
    check_entity_id,
    check_glob,
)
from homeiq.settings.checks import split_list

_DOMAINS = "domains"
_ENTITIES = "entities"
_GLOBS = "entity_globs"
_CLASSES = "device_classes"


def _checked(values: list[str], check: Callable[[str], str]) -> list[str]:
    return [check(value.strip()) for value in values]


class IngestSettings(BaseModel):
    """Include/exclude at ingest; ``HOMEIQ_INGEST_`` + upper-cased field name. Lists are
    comma-separated or JSON in the environment, lists in TOML (``[ingest]``)."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)

    include_domains: list[str] = Field(
        default_factory=list,
        description=(
            "Domains to store (sensor, light...). With any include set, only what is"
            " included is stored."
        ),
    )
    include_entities: list[str] = Field(
        default_factory=list,
        description=(
            "Entity ids to store; an included id is stored even when a broader exclude names it."
        ),
    )
    include_entity_globs: list[str] = Field(
        default_factory=list,
        description="Entity id globs to store (sensor.*_power; * ? [...] as fnmatch).",
    )
    include_device_classes: list[str] = Field(
        default_factory=list,
        description=(
            "Device classes to store (power, temperature), as the event's device_class"
            " attribute says."
        ),
    )
    exclude_domains: list[str] = Field(
        default_factory=list, description="Domains never stored (events counted, not kept)."
    )
    exclude_entities: list[str] = Field(
        default_factory=list, description="Entity ids never stored."
    )
    exclude_entity_globs: list[str] = Field(
        default_factory=list, description="Entity id globs never stored (sensor.*_rssi)."
    )
    exclude_device_classes: list[str] = Field(
        default_factory=list,
        description=(
            "Device classes never stored (signal_strength...), from the event's attributes."
        ),
    )

    @field_validator("*", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("include_domains", "exclude_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        return _checked(value, check_domain)

    @field_validator("include_entities", "exclude_entities")
    @classmethod
    def _entities(cls, value: list[str]) -> list[str]:
        return _checked(value, check_entity_id)

    @field_validator("include_entity_globs", "exclude_entity_globs")
    @classmethod
    def _globs(cls, value: list[str]) -> list[str]:
        return _checked(value, check_glob)

    @field_validator("include_device_classes", "exclude_device_classes")
    @classmethod
    def _classes(cls, value: list[str]) -> list[str]:
        return _checked(value, check_device_class)

    @property
    def include(self) -> EntitySelector:
        """What the include lists name (empty: no include rule)."""
        return self._selector("include")

    @property
    def exclude(self) -> EntitySelector:
        """What the exclude lists name (empty: no exclude rule)."""
        return self._selector("exclude")

    @property
    def active(self) -> bool:
        """True when any rule is set (else every event is stored, unfiltered)."""
        return not (self.include.empty and self.exclude.empty)

    def _selector(self, side: str) -> EntitySelector:
        return EntitySelector.of(
            domains=getattr(self, f"{side}_{_DOMAINS}"),
            entity_ids=getattr(self, f"{side}_{_ENTITIES}"),
            entity_globs=getattr(self, f"{side}_{_GLOBS}"),
            device_classes=getattr(self, f"{side}_{_CLASSES}"),
        )
