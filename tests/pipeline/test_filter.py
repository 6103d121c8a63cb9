"""The ingest filter: Home Assistant's recorder rules (its documentation's examples and a
reference reading of its case list), device classes, and the excluded counts."""

from __future__ import annotations

import fnmatch

from hypothesis import given, settings
from hypothesis import strategies as st

from homeiq.model import Source
from homeiq.observability.metrics import Metrics
from homeiq.pipeline.filter import IngestFilter, compile_rule
from homeiq.selectors import EntitySelector
from homeiq.settings.ingest import IngestSettings
from tests.support.influxdb import event


def rules(**lists: list[str]) -> IngestFilter:
    found = IngestFilter.of(IngestSettings(**lists), Metrics())
    assert found is not None
    return found


# -- Home Assistant's documented examples (recorder: "Configure filter") ----------------


def test_include_only_keeps_only_what_is_named() -> None:
    keep = rules(include_domains=["sensor", "switch", "media_player"]).keep
    assert keep("sensor.kitchen_temperature") and keep("media_player.tv")
    assert not keep("light.kitchen") and not keep("automation.wake_up")


def test_exclude_only_keeps_everything_else() -> None:
    keep = rules(
        exclude_domains=["automation", "update"],
        exclude_entity_globs=["sensor.sun*", "weather.*"],
        exclude_entities=["sun.sun", "sensor.last_boot", "sensor.date"],
    ).keep
    for dropped in ("automation.x", "update.core", "sensor.sunrise", "weather.home", "sun.sun"):
        assert not keep(dropped), dropped
    for kept in ("sensor.temperature", "light.hall", "sensor.last_boot_2"):
        assert keep(kept), kept


def test_include_a_domain_and_exclude_some_of_its_entities() -> None:
    keep = rules(
        include_domains=["sensor", "switch", "media_player"],
        exclude_entities=["sensor.last_boot", "sensor.date"],
    ).keep
    assert keep("sensor.temperature") and keep("switch.pump")
    assert not keep("sensor.last_boot") and not keep("sensor.date")
    assert not keep("light.hall")  # not included at all


def test_an_included_glob_beats_an_excluded_domain_and_an_included_id_beats_everything() -> None:
    keep = rules(
        include_domains=["binary_sensor"],
        include_entity_globs=["sensor.*_power"],
        include_entities=["sensor.kept_anyway"],
        exclude_domains=["sensor"],
        exclude_entity_globs=["binary_sensor.*_motion", "sensor.kept_*"],
        exclude_entities=["sensor.heater_power"],
    ).keep
    assert keep("sensor.oven_power")  # include glob
    assert not keep("sensor.heater_power")  # excluded id beats the include glob
    assert keep("sensor.kept_anyway")  # included id beats the exclude glob
    assert keep("binary_sensor.door") and not keep("binary_sensor.hall_motion")
    assert not keep("sensor.temperature") and not keep("light.hall")


def test_only_excluded_globs_and_an_included_id_case_5() -> None:
    keep = rules(
        include_entities=["sensor.wanted_rssi"],
        exclude_entity_globs=["sensor.*_rssi"],
        exclude_entities=["light.noisy"],
    ).keep
    assert keep("sensor.wanted_rssi") and not keep("sensor.other_rssi")
    assert keep("light.hall") and not keep("light.noisy")


# -- device classes -----------------------------------------------------------------------


def test_a_device_class_is_more_specific_than_a_domain() -> None:
    keep = rules(include_domains=["sensor"], exclude_device_classes=["signal_strength"]).keep
    assert keep("sensor.t", "temperature") and keep("sensor.t", None)
    assert not keep("sensor.wifi", "signal_strength")
    keep = rules(include_device_classes=["power"], exclude_domains=["switch"]).keep
    assert keep("switch.plug", "power") and not keep("switch.plug", None)


def test_a_removal_takes_the_device_class_last_seen() -> None:
    ingest = rules(exclude_device_classes=["signal_strength"])
    assert not ingest.admit("sensor.wifi", "signal_strength")
    assert not ingest.admit("sensor.wifi", None, has_state=False)  # removal: still excluded
    assert ingest.admit("sensor.other", None, has_state=False)  # never seen: no class


def test_exclusions_are_counted_per_domain_on_the_metric_and_in_counts() -> None:
    metrics = Metrics()
    ingest = IngestFilter.of(
        IngestSettings(exclude_domains=["light"], exclude_entity_globs=["custom.*"]), metrics
    )
    assert ingest is not None
    records = [event("light.a", 1), event("light.b", 2), event("sensor.t", 3)]
    records.append(event("custom.thing", 4, source=Source.BACKFILL))
    kept = ingest.admit_records(records)
    assert [r.entity_id for r in kept] == ["sensor.t"]
    assert ingest.counts() == {"light": 2, "other": 1}  # pending counts are included
    assert metrics.value("homeiq_events_excluded_total", {"domain": "light"}) == 0
    ingest.publish()
    assert metrics.value("homeiq_events_excluded_total", {"domain": "light"}) == 2
    assert metrics.value("homeiq_events_excluded_total", {"domain": "other"}) == 1
    assert ingest.counts() == {"light": 2, "other": 1}


def test_no_rules_means_no_filter() -> None:
    assert IngestFilter.of(IngestSettings()) is None


# -- a reference reading of the rules, against the compiled filter ----------------------

DOMAINS = ["sensor", "light", "switch"]
IDS = [f"{d}.{o}" for d in DOMAINS for o in ("a_power", "b_rssi", "c")]
GLOBS = ["sensor.*", "*_power", "light.?_*", "*_rssi", "switch.[ab]*"]
CLASSES = ["power", "signal_strength"]


def reference(
    include: dict[str, list[str]], exclude: dict[str, list[str]], entity_id: str, dc: str | None
) -> bool:
    """Home Assistant's case list, read literally (plus device classes between globs and
    domains), with fnmatch for globs."""
    domain = entity_id.split(".")[0]

    def named(side: dict[str, list[str]], kind: str) -> bool:
        if kind == "ids":
            return entity_id in side["ids"]
        if kind == "globs":
            return any(fnmatch.fnmatchcase(entity_id, g) for g in side["globs"])
        if kind == "classes":
            return dc is not None and dc in side["classes"]
        return domain in side["domains"]

    kinds = ("ids", "globs", "classes", "domains")
    has_in = any(include[k] for k in kinds)
    has_out = any(exclude[k] for k in kinds)
    if not has_in and not has_out:
        return True
    if not has_out:
        return any(named(include, k) for k in kinds)
    if not has_in:
        return not any(named(exclude, k) for k in kinds)
    if include["globs"] or include["classes"] or include["domains"]:
        for kind in ("ids", "globs", "classes"):
            if named(include, kind):
                return True
            if named(exclude, kind):
                return False
        return named(include, "domains")
    if not (exclude["globs"] or exclude["classes"] or exclude["domains"]):
        return entity_id in include["ids"]  # ids on both sides only
    if any(named(exclude, k) for k in ("globs", "classes", "domains")):
        return entity_id in include["ids"]
    return entity_id not in exclude["ids"]


def side() -> st.SearchStrategy[dict[str, list[str]]]:
    return st.fixed_dictionaries(
        {
            "ids": st.lists(st.sampled_from(IDS), max_size=3),
            "globs": st.lists(st.sampled_from(GLOBS), max_size=2),
            "classes": st.lists(st.sampled_from(CLASSES), max_size=1),
            "domains": st.lists(st.sampled_from(DOMAINS), max_size=2),
        }
    )


def selector(lists: dict[str, list[str]]) -> EntitySelector:
    return EntitySelector.of(
        domains=lists["domains"],
        entity_ids=lists["ids"],
        entity_globs=lists["globs"],
        device_classes=lists["classes"],
    )


@settings(max_examples=300, deadline=None)
@given(side(), side(), st.sampled_from(IDS), st.sampled_from([None, *CLASSES]))
def test_the_filter_agrees_with_the_reference_reading(
    include: dict[str, list[str]], exclude: dict[str, list[str]], entity_id: str, dc: str | None
) -> None:
    keep = compile_rule(selector(include), selector(exclude))
    assert keep(entity_id, dc) == reference(include, exclude, entity_id, dc)
