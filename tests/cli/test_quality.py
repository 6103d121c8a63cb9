"""``homeiq quality``: the report of the last saved day, read from metadata.db."""

from __future__ import annotations

from pathlib import Path

import pytest

from homeiq.cli import main
from homeiq.maintenance.quality import QualityTracker
from homeiq.metadata.registry import Registry
from homeiq.metadata.store import MetadataStore
from homeiq.model import Device, Entity, EventRecord, RegistrySnapshot
from homeiq.observability.metrics import Metrics
from tests.support.clock import FakeClock

NOON = 1_796_385_600.0  # 2026-12-04T12:00:00Z
REGISTRY = RegistrySnapshot(
    devices=(Device("dev_1", "Multisensor", "kitchen"),),
    entities=(
        Entity("sensor.kitchen_temperature", "dev_1"),
        Entity("sensor.kitchen_humidity", "dev_1"),
    ),
)


async def save_a_day(data_dir: Path) -> None:
    """A day with a stale sensor and a flapping one, saved as a running HomeIQ would."""
    clock = FakeClock(NOON)
    metadata = MetadataStore.in_dir(data_dir)
    metadata.replace_registry(REGISTRY)
    registry = Registry(REGISTRY)
    tracker = QualityTracker(
        registry, metadata, Metrics(), clock=lambda: int(clock() * 1e6), stale_min_s=60.0
    )
    device, area = "dev_1", "kitchen"
    for i in range(120):
        clock.advance(1.0)
        t = int(clock() * 1e6)
        humidity = "unavailable" if i % 3 == 0 else "55"
        tracker.stored(
            [
                EventRecord(
                    "sensor.kitchen_humidity",
                    t,
                    humidity,
                    None,
                    None,
                    None,
                    None,
                    context_id="c",
                    device_id=device,
                    area_id=area,
                ),
            ]
        )
        if i < 30:
            tracker.stored(
                [
                    EventRecord(
                        "sensor.kitchen_temperature",
                        t,
                        "21",
                        context_id="c",
                        device_id=device,
                        area_id=area,
                    )
                ]
            )
    await tracker.flush()
    metadata.close()


async def test_the_report_shows_overall_domains_stale_and_worst(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await save_a_day(tmp_path)
    monkeypatch.setenv("HOMEIQ_DATA_DIR", str(tmp_path))
    assert main(["quality", "--worst", "5"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "data quality on 2026-12-04 (as of 2026-12-04T12:02:00+00:00)"
    assert lines[1].startswith("score: ") and "events: 150 (live 150" in lines[1]
    assert "(flagged 2, stale 1)" in lines[1]
    assert "completeness: context_id 100.0 %  device_id 100.0 %  area_id 100.0 %" in out
    stale = next(line for line in lines if line.startswith("sensor.kitchen_temperature"))
    assert "1.5 min" in stale  # silent for 90 s, usual interval 1 s
    worst = [line.split() for line in lines if line.endswith(("often_unavailable", "stale"))]
    assert worst == [
        ["sensor.kitchen_temperature", "80.0", "stale"],
        ["sensor.kitchen_humidity", "91.7", "often_unavailable"],
    ]
    assert "2026-12-04" in lines[-1]  # the history


def test_nothing_saved_yet_and_no_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    MetadataStore.in_dir(tmp_path).close()
    monkeypatch.setenv("HOMEIQ_DATA_DIR", str(tmp_path))
    assert main(["quality"]) == 0
    assert capsys.readouterr().out.startswith("no data quality saved yet")
    monkeypatch.setenv("HOMEIQ_DATA_DIR", str(tmp_path / "missing"))
    assert main(["quality"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("homeiq: ") and "Traceback" not in err
    with pytest.raises(SystemExit) as usage:  # argparse's usage error, as for every command
        main(["quality", "--days", "-1"])
    assert usage.value.code == 2
