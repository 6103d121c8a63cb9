"""Which entities a rule is about: domains, entity ids, entity globs and device classes.

The vocabulary of Home Assistant's recorder ``include``/``exclude``, shared by every rule
HomeIQ takes (the ingest filter, retention overrides, cleanup rules), so each validates
and matches the same way. Validation raises ValueError with a message a user can act on;
the settings models turn it into a startup error naming the setting.

A domain must be one Home Assistant's entities use (a typo such as ``sensr`` would
otherwise match nothing, silently). An entity of a custom component's own domain can
still be named by a glob (``mydomain.*``), which is checked for shape only.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

# Home Assistant 2024.3's entity platforms (homeassistant.const.Platform) and the
# integrations that own entities of their own domain.
_PLATFORMS = (
    "air_quality alarm_control_panel binary_sensor button calendar camera climate cover"
    " date datetime device_tracker event fan geo_location humidifier image"
    " image_processing lawn_mower light lock mailbox media_player notify number remote"
    " scene select sensor siren stt switch text time todo tts update vacuum valve"
    " wake_word water_heater weather"
)
_ENTITY_INTEGRATIONS = (
    "alert automation counter group input_boolean input_button input_datetime"
    " input_number input_select input_text person plant proximity schedule script sun"
    " timer zone"
)
KNOWN_DOMAINS = frozenset((_PLATFORMS + " " + _ENTITY_INTEGRATIONS).split())

_NAME = re.compile(r"[a-z0-9_]+")
_ENTITY_ID = re.compile(r"[a-z0-9_]+\.[a-z0-9_]+")
# What may appear in an entity glob: entity id characters and fnmatch's * ? [ ] !
_GLOB = re.compile(r"[a-z0-9_.*?\[\]!\-]+")


def check_domain(name: str) -> str:
    """``name`` when it is a domain Home Assistant's entities use; ValueError otherwise."""
    if name in KNOWN_DOMAINS:
        return name
    hint = difflib.get_close_matches(name, sorted(KNOWN_DOMAINS), n=1)
    suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
    raise ValueError(
        f"unknown domain {name!r}{suggestion}; a custom component's domain can be named"
        f" by a glob such as '{name}.*'"
    )


def check_entity_id(entity_id: str) -> str:
    """``entity_id`` when it has Home Assistant's shape (``domain.object_id``, lower case)."""
    if not _ENTITY_ID.fullmatch(entity_id):
        raise ValueError(
            f"{entity_id!r} is not an entity id (domain.object_id: lower-case letters,"
            " digits and _)"
        )
    return entity_id


def check_glob(pattern: str) -> str:
    """``pattern`` when it is a usable entity glob (``sensor.*_power``); ValueError
    otherwise: empty, characters no entity id has, or an unclosed ``[``."""
    if not pattern:
        raise ValueError("an entity glob cannot be empty")
    if not _GLOB.fullmatch(pattern):
        raise ValueError(
            f"entity glob {pattern!r} has characters no entity id has (use lower-case"
            " letters, digits, _ and . with the wildcards * ? [...])"
        )
    depth = 0
    for char in pattern:
        if char == "[":
            if depth:
                raise ValueError(f"entity glob {pattern!r} nests '[' inside '[...]'")
            depth = 1
        elif char == "]" and depth:
            depth = 0
    if depth:
        raise ValueError(f"entity glob {pattern!r} has a '[' that is never closed")
    return pattern


def check_device_class(name: str) -> str:
    """``name`` when it has the shape of a device class (``power``, ``temperature``)."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a device class (lower-case letters, digits, _)")
    return name


@dataclass(frozen=True, slots=False)
class EntitySelector:
    """Entities named by domain, id, glob or device class: one matching is enough.

    Build it from validated names (the ``check_*`` functions; :meth:`of` runs them). An
    empty selector matches nothing. ``device_classes`` can only match where the
    device class is known (the event's attributes, or the registry).
    """

    domains: frozenset[str] = frozenset()
    entity_ids: frozenset[str] = frozenset()
    entity_globs: tuple[str, ...] = ()
    device_classes: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        *,
        domains: Iterable[str] = (),
        entity_ids: Iterable[str] = (),
        entity_globs: Iterable[str] = (),
        device_classes: Iterable[str] = (),
    ) -> EntitySelector:
        """A selector from names, each checked (ValueError names the first bad one)."""
        return cls(
            frozenset(check_domain(d) for d in domains),
            frozenset(check_entity_id(e) for e in entity_ids),
            tuple(dict.fromkeys(check_glob(g) for g in entity_globs)),
            frozenset(check_device_class(c) for c in device_classes),
        )

    @cached_property
    def _glob(self) -> re.Pattern[str] | None:
        if not self.entity_globs:
            return None
        return re.compile("|".join(fnmatch.translate(g) for g in self.entity_globs))

    @property
    def empty(self) -> bool:
        """True when it names nothing (and so matches nothing)."""
        return not (self.domains or self.entity_ids or self.entity_globs or self.device_classes)

    def matches(self, entity_id: str, device_class: str | None = None) -> bool:
        """True when the entity is named by any part of the selector."""
        if entity_id in self.entity_ids:
            return True
        if self.domains and entity_id.partition(".")[0] in self.domains:
            return True
        if device_class is not None and device_class in self.device_classes:
            return True
        glob = self._glob
        return glob is not None and glob.match(entity_id) is not None

    def describe(self) -> str:
        """The selector as a person would write it: ``domain sensor, glob sensor.*_power``."""
        parts = [f"domain {d}" for d in sorted(self.domains)]
        parts += [f"entity {e}" for e in sorted(self.entity_ids)]
        parts += [f"glob {g}" for g in self.entity_globs]
        parts += [f"device class {c}" for c in sorted(self.device_classes)]
        return ", ".join(parts) or "nothing"
