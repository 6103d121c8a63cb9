"""Every rule fires once its condition held for its duration and resolves when it stops;
one notification per firing, each change kept in metadata.db's bounded history.
Time is a FakeClock: evaluation is driven by hand, nothing sleeps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from homeiq.maintenance.alerts import ALERT_NAMES, AlertHistory, Alerts, Signals
from homeiq.metadata.store import MetadataStore
from homeiq.observability.metrics import Metrics
from homeiq.settings.alert import AlertSettings
from tests.support.clock import FakeClock

GIB = 1024**3
CONNECTED = {"ha_configured": True, "ha_connected": True}

# rule, its duration with the default settings (s), signals that hold, signals that do not
RULES: list[tuple[str, float, Signals, Signals]] = [
    (
        "no_events",
        30 * 60,
        Signals(**CONNECTED, received_since_last=0),
        Signals(**CONNECTED, received_since_last=12),
    ),
    (
        "ha_disconnected",
        5 * 60,
        Signals(ha_configured=True, ha_connected=False),
        Signals(**CONNECTED),
    ),
    ("store_down", 2 * 60, Signals(breaker_open=True), Signals(breaker_open=False)),
    (
        "spool_high",
        0,
        Signals(spool_bytes=51, spool_max_bytes=100),
        Signals(spool_bytes=50, spool_max_bytes=100),
    ),
    ("disk_free_low", 0, Signals(disk_free_percent=9.5), Signals(disk_free_percent=10.5)),
    (
        "disk_growth_fast",  # 100 GB free: gone in 1.2 days at 1 MB/s, in 1157 at 1 kB/s
        0,
        Signals(growth_bytes_per_s=1e6, disk_free_bytes=10**11),
        Signals(growth_bytes_per_s=1e3, disk_free_bytes=10**11),
    ),
    ("rss_high", 5 * 60, Signals(rss_bytes=2 * GIB), Signals(rss_bytes=GIB // 2)),
    ("cpu_high", 0, Signals(cpu_percent=71), Signals(cpu_percent=69)),
    ("error_rate_high", 0, Signals(error_rate=0.011), Signals(error_rate=0.009)),
    ("quality_low", 30 * 60, Signals(quality_score=79), Signals(quality_score=81)),
]


@pytest.fixture
def metadata(tmp_path: Path) -> Iterator[MetadataStore]:
    store = MetadataStore.in_dir(tmp_path)
    yield store
    store.close()


def engine(
    metadata: MetadataStore, clock: FakeClock, settings: AlertSettings | None = None
) -> tuple[Alerts, Metrics]:
    metrics = Metrics()
    wall = lambda: int(clock.now * 1_000_000)  # noqa: E731
    history = AlertHistory(metadata, wall_us=wall)
    return Alerts(metrics, settings, history=history, clock=clock, wall_us=wall), metrics


def sent(metrics: Metrics, status: str) -> int:
    return int(metrics.value("homeiq_alert_notifications_total", {"status": status}))


def test_every_evaluated_rule_is_in_the_table() -> None:
    evaluated = {rule.name for rule in Alerts(Metrics()).rules}
    assert evaluated == {name for name, *_ in RULES}
    assert set(ALERT_NAMES) - evaluated == {
        "backup_failed",
        "backup_overdue",
        "backup_verify_failed",
    }


@pytest.mark.parametrize(("name", "for_s", "bad", "good"), RULES, ids=[r[0] for r in RULES])
async def test_a_rule_fires_after_its_duration_once_and_resolves(
    metadata: MetadataStore, name: str, for_s: float, bad: Signals, good: Signals
) -> None:
    clock = FakeClock()
    alerts, metrics = engine(metadata, clock)
    await alerts.evaluate(bad)
    if for_s > 0:  # held, but not yet for long enough
        assert alerts.active() == []
        clock.advance(for_s - 1)
        await alerts.evaluate(bad)
        assert alerts.active() == []
        clock.advance(1)
        await alerts.evaluate(bad)
    (alert,) = alerts.active()
    assert alert.name == name and alert.message
    assert metrics.value("homeiq_alerts_active", {"alert": name}) == 1
    for _ in range(3):  # still true: no second notification
        clock.advance(15)
        await alerts.evaluate(bad)
    assert sent(metrics, "firing") == 1

    await alerts.evaluate(good)
    assert alerts.active() == []
    assert metrics.value("homeiq_alerts_active", {"alert": name}) == 0
    assert sent(metrics, "resolved") == 1
    changes = alerts.history.page() if alerts.history else []
    assert [(c.alert, c.status) for c in changes] == [(name, "resolved"), (name, "firing")]


async def test_a_condition_that_lapses_before_its_duration_starts_over(
    metadata: MetadataStore,
) -> None:
    clock = FakeClock()
    alerts, metrics = engine(metadata, clock)
    down, up = Signals(breaker_open=True), Signals()
    await alerts.evaluate(down)
    clock.advance(110)
    await alerts.evaluate(up)  # the store came back after 110 s of 120
    clock.advance(15)
    await alerts.evaluate(down)
    clock.advance(110)
    await alerts.evaluate(down)
    assert alerts.active() == [] and sent(metrics, "firing") == 0
    clock.advance(10)
    await alerts.evaluate(down)
    assert [a.name for a in alerts.active()] == ["store_down"]


async def test_a_disabled_rule_never_fires(metadata: MetadataStore) -> None:
    clock = FakeClock()
    settings = AlertSettings(disabled=["cpu_high", "backup_failed"])
    alerts, metrics = engine(metadata, clock, settings)
    await alerts.evaluate(Signals(cpu_percent=100, disk_free_percent=1))
    await alerts.raise_alert("backup_failed", "the NAS is full")
    assert [a.name for a in alerts.active()] == ["disk_free_low"]
    assert sent(metrics, "firing") == 1


async def test_thresholds_come_from_the_settings(metadata: MetadataStore) -> None:
    clock = FakeClock()
    settings = AlertSettings(cpu_percent=95, store_down_minutes=0)
    alerts, _ = engine(metadata, clock, settings)
    await alerts.evaluate(Signals(cpu_percent=90, breaker_open=True))
    assert [a.name for a in alerts.active()] == ["store_down"]  # at once; 90 % is allowed


async def test_a_reported_alert_is_deduplicated_and_its_message_kept_current(
    metadata: MetadataStore,
) -> None:
    clock = FakeClock()
    alerts, metrics = engine(metadata, clock)
    await alerts.raise_alert("backup_failed", "the NAS is full")
    clock.advance(86_400)
    await alerts.raise_alert("backup_failed", "the NAS is gone")
    (alert,) = alerts.active()
    assert alert.message == "the NAS is gone"  # shown as it is now...
    assert alert.raised_at == 1000 * 1_000_000  # ...as one firing since the first
    assert sent(metrics, "firing") == 1
    await alerts.clear("backup_failed", "backup written")
    await alerts.clear("backup_failed")  # not active: nothing more
    assert sent(metrics, "resolved") == 1
    with pytest.raises(ValueError, match="closed set"):
        await alerts.raise_alert("made_up", "x")


async def test_alerts_firing_at_a_restart_are_active_again_and_resolve(
    metadata: MetadataStore,
) -> None:
    clock = FakeClock()
    before, _ = engine(metadata, clock)
    await before.evaluate(Signals(disk_free_percent=3))
    await before.raise_alert("backup_overdue", "no backup for 26 hours")
    await before.clear("backup_overdue")
    await before.raise_alert("backup_failed", "the NAS is full")

    after, metrics = engine(metadata, clock)  # the next process, same metadata.db
    assert {a.name: a.message for a in after.active()} == {
        "disk_free_low": "3.0 % free on the data directory's disk (below 10 %)",
        "backup_failed": "the NAS is full",
    }
    assert metrics.value("homeiq_alerts_active", {"alert": "disk_free_low"}) == 1
    await after.evaluate(Signals(disk_free_percent=40))  # freed while HomeIQ was down
    assert [a.name for a in after.active()] == ["backup_failed"]
    assert sent(metrics, "firing") == 0 and sent(metrics, "resolved") == 1


def test_the_history_is_bounded_by_rows_and_by_age(metadata: MetadataStore) -> None:
    now = [100 * 86_400_000_000]
    history = AlertHistory(metadata, keep_days=90, max_rows=10, wall_us=lambda: now[0])
    for i in range(25):
        history.record("cpu_high", "firing" if i % 2 == 0 else "resolved", f"#{i}", now[0])
    assert history.count() == 10
    assert [e.message for e in history.page(limit=3)] == ["#24", "#23", "#22"]
    second = history.page(before_id=history.page(limit=3)[-1].id, limit=3)
    assert [e.message for e in second] == ["#21", "#20", "#19"]

    now[0] += 91 * 86_400_000_000  # three months later: only the new row stays
    history.record("rss_high", "firing", "new", now[0])
    assert [(e.alert, e.message) for e in history.page()] == [("rss_high", "new")]
    assert [e.alert for e in history.still_firing()] == ["rss_high"]
