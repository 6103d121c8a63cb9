"""Quality measures against a simulated home with planted defects (the issue's proof):
the real Runtime, SQLite and the simulator on simulated time; every planted defect is
found, on exactly the planted entities, and nothing else is flagged."""

from __future__ import annotations

from pathlib import Path

from homeiq.ha.simulator import Simulator
from homeiq.maintenance.quality.history import QualityHistory
from homeiq.metadata.store import MetadataStore
from homeiq.runtime import Runtime
from homeiq.settings import Settings
from tests.support.wait import async_wait_until

COUNT = 8000


def live_events(runtime: Runtime) -> int:
    return sum(state.day.live for state in runtime.quality.states.values())


async def test_every_planted_defect_is_found_and_none_is_invented(tmp_path: Path) -> None:
    sim = Simulator(seed=5, rate=0, count=COUNT, defects=True)
    defects = sim.defects
    assert defects is not None
    plan = defects.plan
    async with sim:
        settings = Settings(
            data_dir=tmp_path, sqlite_writer="thread", backfill=False, batch_max_age_s=0.05
        )
        runtime = Runtime(settings)
        # The tracker reads the simulator's time; its floor is scaled to the simulated
        # home (events ~1 ms apart instead of seconds), the rule itself is unchanged.
        runtime.quality.clock = defects.clock.peek_us
        runtime.quality.stale_min_s = 1.0
        runtime.connect_to(sim.url, sim.token)
        await runtime.start()
        try:
            await async_wait_until(lambda: sim.finished, timeout=60, message="stream unfinished")
            sent = COUNT + defects.out_of_order_sent
            await async_wait_until(
                lambda: live_events(runtime) >= sent and runtime.sync.syncs >= 2,
                timeout=30,
                message=lambda: f"{live_events(runtime)} of {sent} stored",
            )
            report = runtime.quality.report()
        finally:
            await runtime.stop()

    flagged = {e.entity_id: set(e.flags) for e in report.entities if e.flags}
    assert flagged == {
        plan.without_area[0]: {"missing_area"},
        plan.without_area[1]: {"missing_area"},
        plan.stale: {"stale"},
        plan.out_of_order: {"out_of_order"},
        plan.flapping: {"often_unavailable"},
    }
    assert defects.out_of_order_sent == COUNT // 1500
    disordered = report.entity(plan.out_of_order)
    assert disordered is not None
    assert disordered.counts.out_of_order == defects.out_of_order_sent
    # No device and no area in the registry: nothing is missing, nothing is flagged.
    unplaced = report.entity("sensor.house_power")
    assert unplaced is not None
    assert unplaced.expected.area_id is False
    assert unplaced.completeness["area_id"] is None
    assert unplaced.flags == ()
    assert report.overall.stale_entities == 1
    assert report.overall.counts.late == 0
    assert report.overall.score is not None
    assert 0 < report.overall.score < 100

    # Stopping saved the day: a restart (or homeiq quality) takes it up.
    metadata = MetadataStore.in_dir(tmp_path)
    try:
        saved = QualityHistory(metadata).load_day(report.day)
    finally:
        metadata.close()
    assert saved is not None
    assert sum(s.day.live for s in saved.states.values()) == report.overall.counts.live
