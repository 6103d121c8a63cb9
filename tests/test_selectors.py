"""Entity selectors: validation messages, and matching as Home Assistant's recorder does."""

from __future__ import annotations

import fnmatch

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homeiq.selectors import (
    KNOWN_DOMAINS,
    EntitySelector,
    check_device_class,
    check_domain,
    check_entity_id,
    check_glob,
)

names = st.from_regex(r"[a-z0-9_]{1,12}", fullmatch=True)
entity_ids = st.builds(lambda d, o: f"{d}.{o}", st.sampled_from(sorted(KNOWN_DOMAINS)), names)


def test_a_misspelled_domain_is_refused_with_a_suggestion() -> None:
    with pytest.raises(ValueError, match=r"unknown domain 'sensr' \(did you mean 'sensor'\?\)"):
        check_domain("sensr")
    assert check_domain("binary_sensor") == "binary_sensor"


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("", "cannot be empty"),
        ("Sensor.*", "characters no entity id has"),
        ("sensor.[ab", "never closed"),
        ("sensor.[a[b]]", "nests"),
        ("sensor power", "characters no entity id has"),
    ],
)
def test_bad_globs_say_what_is_wrong(pattern: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_glob(pattern)


def test_entity_ids_and_device_classes_are_checked() -> None:
    assert check_entity_id("sensor.kitchen_power") == "sensor.kitchen_power"
    for bad in ("sensor", "Sensor.x", "sensor.x.y", "sensor.*"):
        with pytest.raises(ValueError, match="not an entity id"):
            check_entity_id(bad)
    with pytest.raises(ValueError, match="not a device class"):
        check_device_class("Power")


def test_of_checks_every_name() -> None:
    with pytest.raises(ValueError, match="unknown domain 'lite'"):
        EntitySelector.of(domains=["light", "lite"])


def test_any_part_matching_is_enough() -> None:
    s = EntitySelector.of(
        domains=["light"],
        entity_ids=["switch.kettle"],
        entity_globs=["sensor.*_power"],
        device_classes=["energy"],
    )
    assert s.matches("light.hall")
    assert s.matches("switch.kettle")
    assert not s.matches("switch.lamp")
    assert s.matches("sensor.oven_power")
    assert not s.matches("sensor.oven_power_factor")
    assert s.matches("sensor.meter", "energy")
    assert not s.matches("sensor.meter", "power")
    assert not s.matches("sensor.meter")
    assert s.describe() == (
        "domain light, entity switch.kettle, glob sensor.*_power, device class energy"
    )


def test_an_empty_selector_matches_nothing() -> None:
    s = EntitySelector()
    assert s.empty
    assert not s.matches("sensor.x", "power")
    assert s.describe() == "nothing"


@given(entity_ids, st.lists(st.from_regex(r"[a-z_.*?]{1,10}", fullmatch=True), max_size=4))
def test_globs_match_as_fnmatch_does(entity_id: str, globs: list[str]) -> None:
    s = EntitySelector.of(entity_globs=globs)
    assert s.matches(entity_id) == any(fnmatch.fnmatchcase(entity_id, g) for g in globs)


@given(entity_ids, st.sets(st.sampled_from(sorted(KNOWN_DOMAINS)), max_size=5))
def test_domains_match_the_part_before_the_dot(entity_id: str, domains: set[str]) -> None:
    s = EntitySelector.of(domains=domains)
    assert s.matches(entity_id) == (entity_id.split(".")[0] in domains)
