"""The quality tracker's measures, score, daily history and restarts, over a real
metadata.db and registry, on a clock the tests move."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from homeiq.maintenance.quality import QualityTracker
from homeiq.maintenance.quality.measures import STALE_FACTOR
from homeiq.metadata.registry import Registry
from homeiq.metadata.store import MetadataStore
from homeiq.model import Device, Entity, EventRecord, Gap, RegistrySnapshot, Source
from homeiq.observability.metrics import Metrics
from tests.support.clock import FakeClock

# Noon UTC on 2026-12-04, in seconds: far from midnight unless a test goes there.
NOON = 1_796_385_600.0
REGISTRY = RegistrySnapshot(
    devices=(Device("dev_multi", "Multisensor", "kitchen"),),
    entities=(
        Entity("sensor.kitchen_temperature", "dev_multi"),
        Entity("sensor.kitchen_humidity", "dev_multi"),
        Entity("sensor.house_power"),  # registered without device or area
    ),
)


class Parts:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = FakeClock(NOON)
        self.metadata = MetadataStore.in_dir(tmp_path)
        self.registry = Registry(REGISTRY)
        self.metrics = Metrics()
        self.excluded: dict[str, int] = {}
        self.tracker = self.make()

    def make(self, **overrides: object) -> QualityTracker:
        options: dict[str, object] = {"stale_min_s": 60.0, "min_events": 10} | overrides
        return QualityTracker(
            self.registry,
            self.metadata,
            self.metrics,
            excluded_counts=lambda: self.excluded,
            clock=self.now_us,
            **options,  # type: ignore[arg-type]
        )

    def now_us(self) -> int:
        return int(self.clock() * 1_000_000)

    def record(
        self,
        entity_id: str = "sensor.kitchen_temperature",
        *,
        ago_s: float = 0.0,
        state: str = "21.5",
        placed: bool = True,
        context: bool = True,
        source: Source = Source.LIVE,
    ) -> EventRecord:
        placement = self.registry.placement_of(entity_id)
        return EventRecord(
            entity_id,
            self.now_us() - int(ago_s * 1_000_000),
            state,
            context_id="01HX" if context else None,
            device_id=placement.device_id if placed else None,
            area_id=placement.area_id if placed else None,
            source=source,
        )

    def tick(self, entity_id: str, n: int, every_s: float, **kwargs: object) -> None:
        """``n`` live events, ``every_s`` apart, each stored as it happens."""
        for _ in range(n):
            self.clock.advance(every_s)
            self.tracker.stored([self.record(entity_id, **kwargs)])  # type: ignore[arg-type]


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    made = Parts(tmp_path)
    yield made
    made.metadata.close()


def test_completeness_is_judged_against_what_the_registry_has(parts: Parts) -> None:
    parts.tick("sensor.kitchen_temperature", 10, 1.0)
    parts.tick("sensor.kitchen_humidity", 5, 1.0)
    parts.tick("sensor.kitchen_humidity", 5, 1.0, placed=False)
    parts.tick("sensor.house_power", 10, 1.0, placed=False)
    parts.tick("sensor.unregistered", 4, 1.0, context=False)
    report = parts.tracker.report()
    humidity = report.entity("sensor.kitchen_humidity")
    assert humidity is not None
    assert humidity.completeness == {"context_id": 1.0, "device_id": 0.5, "area_id": 0.5}
    assert humidity.flags == ("missing_device", "missing_area")
    power = report.entity("sensor.house_power")
    assert power is not None
    assert power.completeness == {"context_id": 1.0, "device_id": None, "area_id": None}
    assert power.flags == ()
    unknown = report.entity("sensor.unregistered")
    assert unknown is not None and unknown.flags == ("missing_context",)
    # Overall: event-weighted over the entities expected to carry the field.
    assert report.overall.completeness["area_id"] == 15 / 20
    assert report.overall.completeness["context_id"] == 30 / 34


def test_late_and_out_of_order_count_live_events_only(parts: Parts) -> None:
    tracker = parts.tracker
    tracker.stored([parts.record(ago_s=1.0)])
    tracker.stored([parts.record(ago_s=120.0)])  # late, and older than the newest
    tracker.stored([parts.record(ago_s=30.0)])  # older than the newest, not late
    tracker.stored([parts.record(ago_s=7200.0, source=Source.BACKFILL)])
    tracker.stored([parts.record(ago_s=7000.0, source=Source.SNAPSHOT)])
    found = tracker.entity("sensor.kitchen_temperature")
    assert found is not None
    c = found.counts
    assert (c.events, c.live, c.backfilled, c.late, c.out_of_order) == (5, 3, 1, 1, 2)
    assert found.flags == ("late", "out_of_order")


def test_stale_means_silent_for_far_longer_than_usual_and_not_removed(parts: Parts) -> None:
    tracker = parts.tracker
    parts.tick("sensor.kitchen_temperature", 12, 10.0)
    usual = tracker.entity("sensor.kitchen_temperature")
    assert usual is not None and usual.usual_interval_s == pytest.approx(10.0)
    parts.clock.advance(STALE_FACTOR * 10.0 - 1)
    assert tracker.entity("sensor.kitchen_temperature").stale is False  # type: ignore[union-attr]
    parts.clock.advance(2)
    stale = tracker.entity("sensor.kitchen_temperature")
    assert stale is not None and stale.stale and stale.flags == ("stale",)
    # Back: one long gap is clipped, so the usual interval stays near 10 s.
    parts.tick("sensor.kitchen_temperature", 1, 0.0)
    back = tracker.entity("sensor.kitchen_temperature")
    assert back is not None and not back.stale and back.usual_interval_s < 30.0  # type: ignore[operator]
    # Removed by Home Assistant: silence is expected.
    parts.tick("sensor.kitchen_temperature", 1, 1.0, state=None)
    parts.clock.advance(10_000)
    assert tracker.entity("sensor.kitchen_temperature").stale is False  # type: ignore[union-attr]


def test_few_intervals_or_a_short_silence_are_never_stale(parts: Parts) -> None:
    parts.tick("sensor.kitchen_temperature", 5, 1.0)  # too few intervals to know
    parts.tick("sensor.kitchen_humidity", 12, 1.0)
    parts.clock.advance(59)  # 59 s: over 20 usual intervals, under the 60 s floor
    report = parts.tracker.report()
    assert [e.entity_id for e in report.entities if e.stale] == []
    parts.clock.advance(2)
    report = parts.tracker.report()
    assert [e.entity_id for e in report.entities if e.stale] == ["sensor.kitchen_humidity"]


def test_unavailable_share_and_the_score_formula(parts: Parts) -> None:
    parts.tick("sensor.kitchen_temperature", 5, 1.0)
    parts.tick("sensor.kitchen_temperature", 5, 1.0, state="unavailable")
    parts.tick("sensor.kitchen_humidity", 9, 1.0)
    parts.tick("sensor.kitchen_humidity", 1, 1.0, state="unknown")
    report = parts.tracker.report()
    flapping = report.entity("sensor.kitchen_temperature")
    fine = report.entity("sensor.kitchen_humidity")
    assert flapping is not None and fine is not None
    assert flapping.unavailable_share == 0.5
    assert flapping.flags == ("often_unavailable",)
    assert flapping.score == 100 - 25 * 0.5
    assert fine.flags == () and fine.score == 100 - 25 * 0.1
    assert report.overall.score == pytest.approx((87.5 + 97.5) / 2)


def test_no_overall_score_until_enough_events(parts: Parts) -> None:
    tracker = parts.make(min_events=100)
    assert tracker.score() is None
    for _ in range(99):
        parts.clock.advance(1)
        tracker.stored([parts.record()])
    assert tracker.score() is None
    tracker.stored([parts.record()])
    assert tracker.score() == 100.0


async def test_pipeline_counters_gaps_and_their_share_of_the_score(parts: Parts) -> None:
    parts.tick("sensor.kitchen_temperature", 96, 1.0)
    parts.metrics.events_duplicate.inc(3)
    parts.metrics.events_rejected.labels("invalid_json").inc(2)
    parts.metrics.events_rejected.labels("sink_rejected").inc(2)
    parts.excluded.update({"sensor": 7, "light": 2})
    hour_us = 3_600_000_000
    now = parts.now_us()
    parts.metadata.add_gap(Gap(now - 3 * hour_us, now - 2 * hour_us, "spool_full", now))
    parts.metadata.add_gap(Gap(now - 2 * DAY_US_TEST, now - DAY_US_TEST - hour_us, "x", now))
    report = parts.tracker.report(parts.metadata.gaps())
    p = report.pipeline
    assert (p.duplicates, p.dead_letters, p.excluded) == (
        3,
        {"invalid_json": 2, "sink_rejected": 2},
        {"light": 2, "sensor": 7},
    )
    assert report.dead_letter_rate == 4 / (96 + 3 + 4)
    assert (report.open_gaps, report.open_gap_s) == (2, 3600.0)
    assert report.overall.excluded == 9
    assert [(d.name, d.excluded) for d in report.domains] == [("light", 2), ("sensor", 7)]
    expected = 100.0 * (1 - 4 / 103) * (1 - 3600 / 86400)
    assert report.overall.score == pytest.approx(expected, abs=0.01)


DAY_US_TEST = 86_400_000_000


async def test_a_restart_takes_up_the_day_where_it_was(parts: Parts) -> None:
    parts.tick("sensor.kitchen_temperature", 20, 5.0)
    parts.metrics.events_duplicate.inc(4)
    parts.excluded["sensor"] = 5
    await parts.tracker.flush()
    # A new process: fresh metrics and filter counts, the same metadata.db.
    parts.metrics = Metrics()
    parts.excluded = {}
    again = parts.make()
    again.load()
    parts.tracker = again
    parts.excluded["sensor"] = 1
    parts.tick("sensor.kitchen_temperature", 5, 5.0)
    parts.metrics.events_duplicate.inc(1)
    found = again.entity("sensor.kitchen_temperature")
    assert found is not None
    assert (found.counts.events, found.counts.live, found.counts.out_of_order) == (25, 25, 0)
    assert found.usual_interval_s == pytest.approx(5.0)
    p = again.pipeline()
    assert (p.duplicates, p.excluded) == (5, {"sensor": 6})


async def test_days_turn_over_into_a_bounded_history(parts: Parts) -> None:
    parts.tick("sensor.kitchen_temperature", 20, 5.0)
    parts.metrics.events_duplicate.inc(2)
    parts.clock.advance(13 * 3600)  # past midnight: a new day
    parts.tick("sensor.kitchen_temperature", 3, 5.0)
    await parts.tracker.flush()
    days = parts.tracker.history.days()
    assert [(d.day, d.events) for d in days] == [("2026-12-05", 3), ("2026-12-04", 20)]
    assert days[1].detail["duplicates"] == 2 and days[0].detail["duplicates"] == 0
    today = parts.tracker.entity("sensor.kitchen_temperature")
    assert today is not None and today.counts.events == 3
    assert today.usual_interval_s is not None  # the interval outlives the day
    # 400 days on, the first days are pruned (entity rows after 31 days).
    parts.clock.advance(400 * 86400)
    parts.tick("sensor.kitchen_humidity", 1, 1.0)
    await parts.tracker.flush()
    assert [d.day for d in parts.tracker.history.days()] == ["2028-01-09", "2026-12-05"]
    with parts.metadata._reading() as conn:
        (entity_days,) = conn.execute("SELECT COUNT(DISTINCT day) FROM quality_entities").fetchone()
    assert entity_days == 1
    # An entity silent for 30 days is forgotten.
    assert set(parts.tracker.states) == {"sensor.kitchen_humidity"}


async def test_metrics_are_per_domain_only(parts: Parts) -> None:
    parts.tick("sensor.kitchen_temperature", 12, 1.0)
    parts.tick("mycustom.thing", 12, 1.0, placed=False)
    await parts.tracker.flush()
    m = parts.metrics
    assert m.value("homeiq_quality_score", {"domain": "all"}) == 100.0
    assert m.value("homeiq_quality_score", {"domain": "sensor"}) == 100.0
    assert m.value("homeiq_quality_score", {"domain": "other"}) == 100.0
    labels = {
        tuple(sorted(s.labels))
        for metric in m.registry.collect()
        if metric.name.startswith("homeiq_quality")
        for s in metric.samples
    }
    assert all("entity_id" not in names for names in labels)
    ratio = {"domain": "sensor", "field": "area_id"}
    assert m.value("homeiq_quality_completeness_ratio", ratio) == 1.0


async def test_a_database_from_before_quality_gains_its_tables(tmp_path: Path) -> None:
    from homeiq.metadata import schema
    from homeiq.metadata.store import METADATA_DB
    from homeiq.sqlitedb import connect, migrate

    path = tmp_path / "old" / METADATA_DB
    path.parent.mkdir()
    conn = connect(str(path))
    step = schema.STEPS.index(schema._quality)
    migrate(conn, schema.STEPS[:step])  # every step before this one
    conn.execute("INSERT INTO kv VALUES ('durable_until_us', '42')")
    conn.commit()
    conn.close()
    metadata = MetadataStore(path)
    try:
        assert metadata.get("durable_until_us") == "42"
        tracker = QualityTracker(Registry(REGISTRY), metadata, Metrics(), min_events=1)
        tracker.stored([EventRecord("sensor.house_power", 1, "5", context_id="c")])
        await tracker.flush()
        assert [d.events for d in tracker.history.days()] == [1]
    finally:
        metadata.close()
