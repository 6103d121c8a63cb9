"""Include / exclude at ingest: which events are stored at all.

The rules are Home Assistant's recorder filter (``homeassistant.helpers.entityfilter``,
documented under the recorder's "Configure filter"), with device classes added as one
more kind of name. Four kinds, from the most specific to the broadest: entity ids,
entity globs, device classes, domains. With ``I`` the include lists and ``E`` the
exclude lists:

1. no rule at all: every event is stored;
2. only includes: stored when ``I`` names the entity (any kind);
3. only excludes: stored unless ``E`` names it;
4. both, and ``I`` has a glob, a device class or a domain: the first of these decides —
   id in ``I`` (store), id in ``E`` (drop), glob in ``I`` (store), glob in ``E`` (drop),
   device class in ``I`` (store), device class in ``E`` (drop), domain in ``I`` (store),
   else drop. (An excluded domain changes nothing here, as in Home Assistant: what no
   include names is dropped anyway.)
5. both, ``I`` only ids, ``E`` has a glob, device class or domain: an entity ``E``
   names that way is stored only when its id is in ``I``; any other is stored unless its
   id is in ``E``;
6. both, only ids on each side: stored when its id is in ``I``.

Without device classes this is exactly Home Assistant 2024.3's filter. The device class
is the event's ``device_class`` attribute (Home Assistant writes the effective one, a
registry override included, into every state); an event without attributes (an
entity's removal) takes the last device class this process saw for that entity, and
an entity never seen with one has none: device-class rules do not name it, its id,
glob and domain rules still do. HomeIQ's registry copy holds no device classes.

Excluded events are counted per domain (:meth:`IngestFilter.counts` and the
``homeiq_events_excluded`` metric), never dead-lettered, never stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from homeiq.model import EventRecord
from homeiq.observability.metrics import Metrics
from homeiq.selectors import KNOWN_DOMAINS, EntitySelector
from homeiq.settings.ingest import IngestSettings

Rule = Callable[[str, str | None], bool]
# Decisions are remembered per (entity, device class): a home has a bounded number of
# both, but a stream of bad ids must not grow memory without end.
_DECISIONS_MAX = 100_000


def _part(selector: EntitySelector, kind: str) -> EntitySelector:
    """One kind of name of ``selector`` alone (its own matcher, not a second one)."""
    return EntitySelector(**{kind: getattr(selector, kind)})


def compile_rule(include: EntitySelector, exclude: EntitySelector) -> Rule:
    """``keep(entity_id, device_class)`` for the rules above (module docstring)."""
    has_include, has_exclude = not include.empty, not exclude.empty
    if not has_include and not has_exclude:  # case 1
        return lambda entity_id, device_class: True
    if not has_exclude:  # case 2
        return include.matches
    if not has_include:  # case 3
        return lambda entity_id, device_class: not exclude.matches(entity_id, device_class)
    in_ids, out_ids = include.entity_ids, exclude.entity_ids
    if include.entity_globs or include.device_classes or include.domains:  # case 4
        in_glob, out_glob = _part(include, "entity_globs"), _part(exclude, "entity_globs")
        in_class, out_class = include.device_classes, exclude.device_classes
        in_domains = include.domains

        def case4(entity_id: str, device_class: str | None) -> bool:
            if entity_id in in_ids:
                return True
            if entity_id in out_ids:
                return False
            if in_glob.matches(entity_id):
                return True
            if out_glob.matches(entity_id):
                return False
            if device_class is not None:
                if device_class in in_class:
                    return True
                if device_class in out_class:
                    return False
            return entity_id.partition(".")[0] in in_domains

        return case4
    broad = EntitySelector(
        domains=exclude.domains,
        entity_globs=exclude.entity_globs,
        device_classes=exclude.device_classes,
    )
    if not broad.empty:  # case 5

        def case5(entity_id: str, device_class: str | None) -> bool:
            if broad.matches(entity_id, device_class):
                return entity_id in in_ids
            return entity_id not in out_ids

        return case5
    return lambda entity_id, device_class: entity_id in in_ids  # case 6


def domain_label(entity_id: str) -> str:
    """The metric label of an entity: its domain when Home Assistant has it, else
    ``other`` (the label set stays closed whatever ids arrive)."""
    domain = entity_id.partition(".")[0]
    return domain if domain in KNOWN_DOMAINS else "other"


def device_class_of(message: Any) -> tuple[str, str | None, bool] | None:
    """(entity_id, device class, has a new state) of a ``state_changed`` message, read
    without normalizing it; None when it has no entity id to decide by."""
    try:
        data = message["event"]["data"]
        entity_id = data["entity_id"]
    except (KeyError, TypeError, IndexError):
        return None
    if not isinstance(entity_id, str):
        return None
    new_state = data.get("new_state") if isinstance(data, dict) else None
    if not isinstance(new_state, dict):
        return entity_id, None, False
    attributes = new_state.get("attributes")
    value = attributes.get("device_class") if isinstance(attributes, dict) else None
    return entity_id, value if isinstance(value, str) else None, True


class IngestFilter:
    """The ingest rules of the settings, applied by the writer to every event (live,
    snapshot and backfill alike), with the excluded counted per domain."""

    def __init__(
        self, include: EntitySelector, exclude: EntitySelector, metrics: Metrics | None = None
    ) -> None:
        self.include = include
        self.exclude = exclude
        self._rule = compile_rule(include, exclude)
        self._by_class = bool(include.device_classes or exclude.device_classes)
        self._decisions: dict[tuple[str, str | None], bool] = {}
        self._last_class: dict[str, str] = {}
        self._excluded: dict[str, int] = {}
        self._unpublished: dict[str, int] = {}
        self._metrics = metrics

    @classmethod
    def of(cls, settings: IngestSettings, metrics: Metrics | None = None) -> IngestFilter | None:
        """The filter of ``settings``; None when no rule is set (nothing to check)."""
        if not settings.active:
            return None
        return cls(settings.include, settings.exclude, metrics)

    def keep(self, entity_id: str, device_class: str | None = None) -> bool:
        """True when the rules store this entity's event (nothing counted)."""
        key = (entity_id, device_class)
        decided = self._decisions.get(key)
        if decided is None:
            if len(self._decisions) >= _DECISIONS_MAX:
                self._decisions.clear()
            decided = self._decisions[key] = self._rule(entity_id, device_class)
        return decided

    def admit(self, entity_id: str, device_class: str | None, has_state: bool = True) -> bool:
        """:meth:`keep`, counting the event when it is excluded. ``has_state`` False (a
        removal, no attributes): the entity's last seen device class decides."""
        if self._by_class:
            if has_state:
                if device_class is None:
                    self._last_class.pop(entity_id, None)
                elif self._last_class.get(entity_id) != device_class:
                    if len(self._last_class) >= _DECISIONS_MAX:
                        self._last_class.clear()
                    self._last_class[entity_id] = device_class
            else:
                device_class = self._last_class.get(entity_id)
        if self.keep(entity_id, device_class):
            return True
        label = domain_label(entity_id)
        self._unpublished[label] = self._unpublished.get(label, 0) + 1
        return False

    def admit_message(self, message: Any) -> bool:
        """Whether a raw ``state_changed`` message is stored (decided before the costly
        normalization); one without an entity id goes on, to be dead-lettered there."""
        found = device_class_of(message)
        if found is None:
            return True
        return self.admit(*found)

    def admit_records(self, records: Iterable[EventRecord]) -> list[EventRecord]:
        """The records the rules store (normalized ones: backfill), the rest counted."""
        return [r for r in records if self.admit(r.entity_id, r.device_class, r.state is not None)]

    def publish(self) -> None:
        """Add the exclusions counted since the last call to the metric and the totals.

        Once a batch, not per event: a prometheus increment takes a lock."""
        if not self._unpublished:
            return
        for label, count in self._unpublished.items():
            self._excluded[label] = self._excluded.get(label, 0) + count
            if self._metrics is not None:
                self._metrics.events_excluded.labels(label).inc(count)
        self._unpublished.clear()

    def counts(self) -> Mapping[str, int]:
        """Events excluded since start, by domain (``other`` for domains Home Assistant
        does not have): what data quality reports."""
        totals = dict(self._excluded)
        for label, count in self._unpublished.items():
            totals[label] = totals.get(label, 0) + count
        return totals

    def describe(self) -> str:
        """The rules in words, for the log line at start."""
        return f"include {self.include.describe()}; exclude {self.exclude.describe()}"
