"""The outage spool: order, persistence across restarts and kill -9, both full-spool
policies with exact losses, gauges, the codec (property-tested) and clear errors."""

from __future__ import annotations

import logging
import math
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homeiq.errors import ConfigError, IncompatibleSchema, SinkUnavailable
from homeiq.model import EventRecord, Origin, Source
from homeiq.observability.metrics import Metrics
from homeiq.pipeline.spool import SPOOL_DB, AppendResult, Policy, Spool, decode, encode

BASE_US = 1_795_640_400_000_000
DROPPED = "homeiq_spool_dropped_events_total"

OpenSpool = Callable[..., Spool]


def record(second: int, entity_id: str = "sensor.t", state: str | None = "21.5") -> EventRecord:
    attributes = {"unit_of_measurement": "°C", "friendly_name": entity_id}
    return EventRecord(
        entity_id=entity_id,
        time=BASE_US + second * 1_000_000,
        state=state,
        value=None if state is None else float(state),
        attributes=attributes,
        attributes_json=orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS),
        context_id="01M8A9CZW8ENE63FBQ2PA6RTGS",
    )


def batch(*seconds: int) -> list[EventRecord]:
    return [record(s) for s in seconds]


def us(second: int) -> int:
    return BASE_US + second * 1_000_000


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def open_spool(tmp_path: Path, metrics: Metrics) -> Iterator[OpenSpool]:
    """Open spools in tmp_path (closing every one at the end)."""
    opened: list[Spool] = []

    def open_(max_bytes: int = 10_000_000, policy: Policy = "drop_newest", **kw: Any) -> Spool:
        kw.setdefault("metrics", metrics)
        spool = Spool.in_dir(tmp_path, max_bytes=max_bytes, policy=policy, **kw)
        opened.append(spool)
        return spool

    yield open_
    for spool in opened:
        spool.close()


def drain(spool: Spool) -> list[list[EventRecord]]:
    out = []
    while (oldest := spool.oldest()) is not None:
        out.append(oldest.records)
        spool.remove(oldest.id)
    return out


# -- order and persistence --------------------------------------------------------------


def test_batches_drain_oldest_first(open_spool: OpenSpool, tmp_path: Path) -> None:
    spool = open_spool()
    batches = [batch(1, 2), batch(3), batch(4, 5, 6)]
    results = [spool.append(b) for b in batches]
    assert all(r.kept and not r.dropped for r in results)
    assert [r.batch_id for r in results] == [1, 2, 3]
    assert (spool.batches, spool.events, spool.empty) == (3, 6, False)
    assert (tmp_path / SPOOL_DB).exists()
    oldest = spool.oldest()
    assert oldest is not None
    assert (oldest.events, oldest.first_us, oldest.last_us) == (2, us(1), us(2))
    assert spool.oldest() == oldest  # still spooled until removed
    assert drain(spool) == batches
    assert (spool.batches, spool.events, spool.bytes, spool.empty) == (0, 0, 0, True)
    assert spool.oldest() is None


def test_empty_append_and_absent_remove_change_nothing(open_spool: OpenSpool) -> None:
    spool = open_spool()
    assert spool.append([]) == AppendResult(kept=True)
    spool.remove(12345)
    assert spool.empty


def test_batches_survive_close_and_reopen(open_spool: OpenSpool) -> None:
    spool = open_spool()
    spool.append(batch(1))
    spool.append(batch(2, 3))
    first = spool.oldest()
    assert first is not None
    spool.remove(first.id)
    spool.close()
    again = open_spool(metrics=Metrics())
    assert (again.batches, again.events) == (1, 2)
    assert again.metrics.value("homeiq_spool_events") == 2
    # AUTOINCREMENT: ids keep growing across restarts, never reusing a removed one.
    assert again.append(batch(4)).batch_id == 3
    assert drain(again) == [batch(2, 3), batch(4)]


def test_a_committed_batch_survives_kill_9(tmp_path: Path) -> None:
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from homeiq.model import EventRecord\n"
        "from homeiq.pipeline.spool import Spool\n"
        "spool = Spool.in_dir(Path(sys.argv[1]), max_bytes=10_000_000)\n"
        "spool.append([EventRecord('sensor.k', 1, 'on'), EventRecord('sensor.k', 2, None)])\n"
        "spool.append([EventRecord('sensor.k', 3, 'off')])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], timeout=30, check=False)
    assert done.returncode == -signal.SIGKILL
    spool = Spool.in_dir(tmp_path, max_bytes=10_000_000, metrics=Metrics())
    try:
        assert drain(spool) == [
            [EventRecord("sensor.k", 1, "on"), EventRecord("sensor.k", 2, None)],
            [EventRecord("sensor.k", 3, "off")],
        ]
    finally:
        spool.close()


def test_concurrent_appends_are_all_counted(open_spool: OpenSpool) -> None:
    spool = open_spool()

    def worker(n: int) -> None:
        for i in range(10):
            spool.append(batch(n * 100 + i))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (spool.batches, spool.events) == (40, 40)
    assert sorted(r.time for b in drain(spool) for r in b) == sorted(
        us(n * 100 + i) for n in range(4) for i in range(10)
    )


# -- bounds and policies ----------------------------------------------------------------


def sizes(*batches: list[EventRecord]) -> list[int]:
    return [len(encode(b)) for b in batches]


def test_drop_newest_refuses_what_does_not_fit(
    open_spool: OpenSpool, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    b1, b2, b3 = batch(1, 2), batch(3, 4), batch(9, 5, 7)
    s1, s2, s3 = sizes(b1, b2, b3)
    spool = open_spool(max_bytes=s1 + s2 + s3 - 1, policy="drop_newest")
    assert spool.append(b1).kept and spool.append(b2).kept
    with caplog.at_level(logging.ERROR, logger="homeiq.pipeline.spool"):
        result = spool.append(b3)
    assert result == AppendResult(False, None, 3, 1, us(5), us(9))
    assert result.dropped
    assert metrics.value(DROPPED, {"policy": "drop_newest"}) == 3
    [message] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "drop_newest" in message and "3 events in 1 batches" in message
    assert str(us(5)) in message and str(us(9)) in message
    assert drain(spool) == [b1, b2]


def test_drop_oldest_discards_the_oldest_batch_to_make_room(
    open_spool: OpenSpool, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    b1, b2, b3, b4 = batch(2, 1), batch(4, 3), batch(6), batch(7, 8, 9)
    s1, s2, s3, s4 = sizes(b1, b2, b3, b4)
    assert s4 > s1  # so b1..b3 fit, and b4 fits once b1 (and only b1) is gone
    spool = open_spool(max_bytes=s2 + s3 + s4, policy="drop_oldest")
    for b in (b1, b2, b3):
        assert spool.append(b) == AppendResult(True, spool.batches)
    with caplog.at_level(logging.ERROR, logger="homeiq.pipeline.spool"):
        result = spool.append(b4)
    assert result == AppendResult(True, 4, 2, 1, us(1), us(2))
    assert metrics.value(DROPPED, {"policy": "drop_oldest"}) == 2
    [message] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "drop_oldest" in message and "2 events in 1 batches" in message
    assert (spool.bytes, spool.events) == (s2 + s3 + s4, 6)
    assert drain(spool) == [b2, b3, b4]


def test_drop_oldest_can_discard_several_batches(open_spool: OpenSpool, metrics: Metrics) -> None:
    big = [record(s, f"sensor.e{s}", f"{s * 7.31:.3f}") for s in range(10, 40)]
    b1, b2, b3 = batch(1), batch(2), batch(3)
    s1, s2, s3, s_big = sizes(b1, b2, b3, big)
    assert s1 + s2 <= s_big  # so b1..b3 fit, and big fits once b1 and b2 are gone
    spool = open_spool(max_bytes=s3 + s_big, policy="drop_oldest")
    for b in (b1, b2, b3):
        spool.append(b)
    result = spool.append(big)
    assert result == AppendResult(True, 4, 2, 2, us(1), us(2))
    assert metrics.value(DROPPED, {"policy": "drop_oldest"}) == 2
    assert drain(spool) == [b3, big]


@pytest.mark.parametrize("policy", ["drop_newest", "drop_oldest"])
def test_a_batch_larger_than_the_spool_is_refused(
    open_spool: OpenSpool, metrics: Metrics, policy: Policy
) -> None:
    small, big = batch(1), batch(*range(100, 160))
    spool = open_spool(max_bytes=sizes(big)[0] - 1, policy=policy)
    spool.append(small)
    result = spool.append(big)
    assert result == AppendResult(False, None, 60, 1, us(100), us(159))
    assert metrics.value(DROPPED, {"policy": policy}) == 60
    assert drain(spool) == [small]  # drop_oldest did not discard anything for it


def test_gauges_follow_the_spool(open_spool: OpenSpool, metrics: Metrics) -> None:
    spool = open_spool(max_bytes=123_456)
    assert metrics.value("homeiq_spool_capacity_bytes") == 123_456
    assert metrics.value("homeiq_spool_bytes") == 0
    spool.append(batch(1, 2))
    spool.append(batch(3))
    assert metrics.value("homeiq_spool_events") == 3
    assert metrics.value("homeiq_spool_bytes") == spool.bytes == sum(sizes(batch(1, 2), batch(3)))
    drain(spool)
    assert metrics.value("homeiq_spool_events") == 0
    assert metrics.value("homeiq_spool_bytes") == 0


def test_drops_far_outside_the_calendar_are_still_logged(
    open_spool: OpenSpool, caplog: pytest.LogCaptureFixture
) -> None:
    odd = [EventRecord("sensor.x", -(2**63), "1"), EventRecord("sensor.x", 2**63 - 1, "2")]
    spool = open_spool(max_bytes=len(encode(odd)) - 1)
    with caplog.at_level(logging.ERROR, logger="homeiq.pipeline.spool"):
        assert spool.append(odd).dropped_events == 2
    assert f"{-(2**63)}..{2**63 - 1} µs" in caplog.text


def test_bad_settings_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="spool_full_policy"):
        Spool.in_dir(tmp_path, max_bytes=1000, policy="drop_all")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="spool_max_bytes"):
        Spool.in_dir(tmp_path, max_bytes=0)


# -- errors -----------------------------------------------------------------------------


def test_an_unusable_directory_is_a_clear_config_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(ConfigError, match=r"data_dir: cannot open the spool .*spool\.db") as info:
        Spool.in_dir(not_a_dir / "data", max_bytes=10_000)
    assert info.value.setting == "data_dir"


def test_a_corrupted_file_is_a_clear_config_error(tmp_path: Path) -> None:
    (tmp_path / SPOOL_DB).write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(ConfigError, match="not a database"):
        Spool.in_dir(tmp_path, max_bytes=10_000)


def test_a_newer_spool_schema_is_refused(open_spool: OpenSpool, tmp_path: Path) -> None:
    open_spool()._conn.execute("INSERT INTO schema_changes VALUES (99, 0)")
    with pytest.raises(IncompatibleSchema):
        Spool.in_dir(tmp_path, max_bytes=10_000)


def test_a_full_disk_is_sink_unavailable_and_changes_nothing(open_spool: OpenSpool) -> None:
    spool = open_spool()
    spool.append(batch(1))
    pages = spool._conn.execute("PRAGMA page_count").fetchone()[0]
    spool._conn.execute(f"PRAGMA max_page_count={pages}")
    huge = [record(i, state=str(i)) for i in range(2000)]
    with pytest.raises(
        SinkUnavailable, match=r"cannot append a batch to .*spool\.db: database or disk is full"
    ):
        spool.append(huge)
    assert (spool.batches, spool.events) == (1, 1)
    spool._conn.execute("PRAGMA max_page_count=1073741823")
    assert spool.append(huge).kept
    assert drain(spool) == [batch(1), huge]


def test_an_unreadable_batch_is_reported_once_and_skippable(
    open_spool: OpenSpool, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    spool = open_spool()
    first = spool.append(batch(1, 2)).batch_id
    spool.append(batch(3))
    spool._conn.execute("UPDATE batches SET payload = x'01deadbeef' WHERE id = ?", (first,))
    with caplog.at_level(logging.ERROR, logger="homeiq.pipeline.spool"):
        bad = spool.oldest()
        assert bad == spool.oldest()
    assert bad is not None and bad.corrupt and bad.records == []
    assert (bad.events, bad.first_us, bad.last_us) == (2, us(1), us(2))
    assert metrics.value(DROPPED, {"policy": "corrupt"}) == 2
    assert len([r for r in caplog.records if "unreadable" in r.getMessage()]) == 1
    spool.remove(bad.id)
    assert drain(spool) == [batch(3)]


def test_using_a_closed_spool_is_sink_unavailable(open_spool: OpenSpool) -> None:
    spool = open_spool()
    spool.close()
    with pytest.raises(SinkUnavailable):
        spool.append(batch(1))


# -- codec ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
texts = st.none() | st.text(max_size=20)
floats = st.none() | st.floats(allow_nan=False)
int64 = st.integers(-(2**63), 2**63 - 1)


@st.composite
def records(draw: st.DrawFn) -> EventRecord:
    attributes = draw(st.dictionaries(st.text(max_size=8), json_values, max_size=4))
    dropped = draw(st.sampled_from([0, 0, 123_456]))
    if dropped:
        attributes = {}
    return EventRecord(
        entity_id=draw(st.sampled_from(["sensor.a", "light.b"]) | st.text(max_size=30)),
        time=draw(int64),
        state=draw(texts),
        value=draw(floats),
        previous_state=draw(texts),
        duration_in_state_s=draw(floats),
        last_changed=draw(st.none() | int64),
        attributes=attributes,
        attributes_json=orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS),
        dropped_attributes_bytes=dropped,
        context_id=draw(texts),
        context_parent_id=draw(texts),
        context_user_id=draw(texts),
        device_id=draw(texts),
        area_id=draw(texts),
        floor_id=draw(texts),
        origin=draw(st.sampled_from(Origin)),
        source=draw(st.sampled_from(Source)),
    )


@settings(max_examples=25, deadline=None)
@given(st.lists(records(), max_size=5) | st.lists(records(), max_size=2).map(lambda r: r * 3))
def test_codec_round_trips_every_field(batch_: list[EventRecord]) -> None:
    decoded = decode(encode(batch_))
    assert decoded == batch_
    for got in decoded:
        assert type(got.origin) is Origin and type(got.source) is Source
        assert type(got.attributes_json) is bytes


def test_codec_keeps_non_finite_floats_and_shares_repeated_attributes() -> None:
    records_ = [record(1), record(2)]
    records_[0].value, records_[0].duration_in_state_s = math.nan, -math.inf
    records_[1].value = math.inf
    got = decode(encode(records_))
    assert math.isnan(got[0].value or 0.0) and got[0].duration_in_state_s == -math.inf
    assert got[1].value == math.inf
    assert got[0].attributes_json == got[1].attributes_json == records_[0].attributes_json
    # One copy of a repeated attributes_json: 100 identical records cost little more than 1.
    assert len(encode([record(1)] * 100)) < 4 * len(encode([record(1)]))


@pytest.mark.parametrize("payload", [b"", b"\x07abc", b"\x01not zlib", b"\x01" + b"x" * 10])
def test_codec_refuses_bytes_it_did_not_make(payload: bytes) -> None:
    with pytest.raises(ValueError, match="spool"):
        decode(payload)


def test_spool_file_is_plain_sqlite(open_spool: OpenSpool, tmp_path: Path) -> None:
    open_spool().append(batch(1, 2))
    conn = sqlite3.connect(tmp_path / SPOOL_DB)
    try:
        row = conn.execute("SELECT events, first_us, last_us, bytes FROM batches").fetchone()
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()
    assert row[:3] == (2, us(1), us(2)) and row[3] > 0
    assert mode == "wal"
    assert os.path.getsize(tmp_path / SPOOL_DB) > 0
