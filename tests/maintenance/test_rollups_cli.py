"""``homeiq rollups rebuild`` after a raw purge: it says which entities start later, and
leaves their older buckets as they were."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from homeiq.cli import main
from homeiq.maintenance.rollups import RollupStore, align, roll_up
from homeiq.model import EventRecord
from homeiq.settings import ENV_PREFIX
from homeiq.sinks.sqlite import EVENTS_DB, SQLiteEventStore

US = 1_000_000
T0 = align(1_714_521_600 * US, 86400)  # 2024-05-01T00:00:00Z
D = 86400 * US


def ev(seconds: int, state: str) -> EventRecord:
    return EventRecord(
        entity_id="sensor.x",
        time=T0 + seconds * US,
        state=state,
        value=float(state),
        attributes_json=orjson.dumps({}),
    )


def test_rebuild_after_a_raw_purge_keeps_the_older_buckets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    records = [ev(s, str(s % 97)) for s in range(600, 3 * 86400, 5000)]
    later = [r for r in records if r.time >= T0 + D]
    events = SQLiteEventStore(tmp_path / EVENTS_DB)
    try:
        events.write(later)  # the raw events of the first day were purged
    finally:
        events.close()
    store = RollupStore.in_dir(tmp_path)
    try:  # the buckets the purged events made, exact, as the live path saved them
        for period, seconds in (("5m", 300), ("1h", 3600), ("1d", 86400)):
            store.replace(
                period, "sensor.x", 0, roll_up("sensor.x", None, records, seconds, T0 + D)
            )
        store.mark_raw_purged("sensor.x", T0 + D - 3600 * US)
        kept = store.buckets("1h", "sensor.x", T0, T0 + D)
    finally:
        store.close()
    monkeypatch.setenv("HOMEIQ_DATA_DIR", str(tmp_path))
    assert main(["rollups", "rebuild", "--since", "2024-05-01T00:00:00+00:00"]) == 0
    out = capsys.readouterr().out
    assert "rebuilt " in out and "of 1 entities since 2024-05-01T00:00:00+00:00" in out
    assert "1 entities from later (up to 2024-05-02T00:00:00+00:00)" in out
    store = RollupStore.in_dir(tmp_path, readonly=True)
    try:
        assert store.buckets("1h", "sensor.x", T0, T0 + D) == kept  # not clobbered
        days = store.buckets("1d", "sensor.x", T0, T0 + 3 * D)
    finally:
        store.close()
    assert [d.count for d in days] == [sum(1 for r in records if r.time < T0 + D), 17, 17]
