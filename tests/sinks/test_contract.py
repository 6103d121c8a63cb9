"""One contract, every event store: what a sink writes its reader returns, exactly.

Each test runs against SQLite in tmp_path (its writer in a thread, its writer in a
process, and read through a second read-only connection as the CLI reads) and a real
InfluxDB 1.6.7 (a fresh database): the ``backend`` fixture of tests/sinks/conftest.py.
A new backend passes this file and test_contract_queries.py (the API's queries) before
it is wired in.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homeiq.model import EventRecord, Origin, Source
from homeiq.sinks.base import StoreSummary
from tests.sinks.conftest import Backend
from tests.support.influxdb import T0, S, event


async def test_written_records_read_back_equal(backend: Backend) -> None:
    batch = [
        event(
            second=0,
            value=21.5,
            previous_state="21.0",
            duration_in_state_s=12.5,
            attributes={"unit_of_measurement": "°C", "friendly_name": "Temp", "n": [1, 2.5]},
            context_id="01HQ3GZ4C7Q3V2N8W1XKJ5T9RA",
            context_parent_id="0123456789abcdef0123456789abcdef",
            context_user_id="user",
            device_id="device",
            area_id="kitchen",
            floor_id="ground",
            origin=Origin.REMOTE,
        ),
        event(second=1, state="on", last_changed=T0 - S, source=Source.BACKFILL),
        event(second=2, state="x", attributes={}, dropped_attributes_bytes=70_000),
    ]
    assert await backend.sink.write(batch) == 3
    assert await backend.reader.history("sensor.temp", None, None, 10) == batch


async def test_writing_a_batch_twice_stores_it_once(backend: Backend) -> None:
    batch = [event(f"sensor.s{i % 3}", second=i, state=str(i)) for i in range(9)]
    await backend.sink.write(batch)
    keys = await backend.reader.keys()
    await backend.sink.write(batch)
    assert await backend.reader.keys() == keys == {(r.entity_id, r.time) for r in batch}
    assert (await backend.reader.summary()).total == 9
    stored = await backend.reader.history("sensor.s0", None, None, 100)
    assert stored == [r for r in batch if r.entity_id == "sensor.s0"]


async def test_history_is_ordered_by_time_whatever_the_write_order(backend: Backend) -> None:
    batch = [event(second=s, state=str(s)) for s in range(12)]
    shuffled = batch[:]
    random.Random(7).shuffle(shuffled)
    for part in (shuffled[:5], shuffled[5:]):
        await backend.sink.write(part)
    assert await backend.reader.history("sensor.temp", None, None, 100) == batch
    assert await backend.reader.history("sensor.temp", T0 + 3 * S, T0 + 9 * S, 4) == batch[3:7]


async def test_removal_records(backend: Backend) -> None:
    batch = [event("light.a", second=0, state="on"), event("light.a", second=1, state=None)]
    await backend.sink.write(batch)
    stored = await backend.reader.history("light.a", None, None, 10)
    assert stored == batch
    assert stored[1].removed and stored[1].value is None


async def test_summary_counts(backend: Backend) -> None:
    assert await backend.reader.summary() == StoreSummary()
    await backend.sink.write(
        [
            event("sensor.a", second=0, area_id="kitchen"),
            event("sensor.a", second=1, area_id="kitchen", source=Source.BACKFILL),
            event("sensor.b", second=2, device_id="d"),
            event("switch.c", second=-4, area_id="hall", source=Source.IMPORT),
        ]
    )
    assert await backend.reader.summary() == StoreSummary(
        total=4,
        entities=3,
        by_domain={"sensor": 3, "switch": 1},
        by_area={"kitchen": 2, "(no area)": 1, "hall": 1},
        by_source={"live": 2, "backfill": 1, "import": 1},
        first_time=T0 - 4 * S,
        last_time=T0 + 2 * S,
    )


async def test_last_event_time(backend: Backend) -> None:
    assert await backend.reader.last_event_time() is None
    await backend.sink.write([event("sensor.a", second=5), event("sensor.b", second=3)])
    assert await backend.reader.last_event_time() == T0 + 5 * S


async def test_keys_with_filters(backend: Backend) -> None:
    entities = ("sensor.a", "sensor.b", "binary_sensor.c")
    await backend.sink.write([event(e, second=s) for e in entities for s in range(8)])
    every = {(e, T0 + s * S) for e in entities for s in range(8)}
    keys = backend.reader.keys
    assert await keys() == every
    assert await keys(["sensor.a", "binary_sensor.c"]) == {k for k in every if k[0] != "sensor.b"}
    assert await keys(None, T0 + 2 * S, T0 + 6 * S) == {
        k for k in every if T0 + 2 * S <= k[1] <= T0 + 6 * S
    }
    assert await keys(["sensor.b"], T0 + 7 * S, None) == {("sensor.b", T0 + 7 * S)}
    assert await keys(["sensor.b"], None, T0) == {("sensor.b", T0)}
    assert await keys(["sensor.unknown"]) == set()
    assert await keys([]) == set()


# -- arbitrary strings round trip -------------------------------------------------------------

hostile = st.sampled_from(list(" ,=\"'\\\n\r%#\t{}"))
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)) | hostile, max_size=40)
some_text = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)) | hostile, min_size=1, max_size=40
)
json_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
_serial = itertools.count()


@st.composite
def records(draw: Any) -> EventRecord:
    n = next(_serial)
    attributes = draw(st.dictionaries(text, json_value, max_size=4))
    friendly_name = draw(st.none() | text)
    if friendly_name is not None:
        attributes["friendly_name"] = friendly_name
    time = T0 + n * S
    return EventRecord(
        entity_id=f"sensor.case_{n}",
        time=time,
        state=draw(st.none() | text),
        value=draw(st.none() | st.floats(allow_nan=False, allow_infinity=False)),
        previous_state=draw(st.none() | text),
        duration_in_state_s=draw(st.none() | st.integers(0, 10**12).map(lambda us: us / S)),
        last_changed=time - draw(st.integers(0, 10**9)),
        attributes=attributes,
        attributes_json=orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS),
        context_id=draw(st.none() | text),
        context_parent_id=draw(st.none() | text),
        context_user_id=draw(st.none() | text),
        # InfluxDB has no empty tag values: an empty id reads back as None there.
        device_id=draw(st.none() | some_text),
        area_id=draw(st.none() | some_text),
        floor_id=draw(st.none() | text),
        origin=draw(st.sampled_from(Origin)),
        source=draw(st.sampled_from(Source)),
    )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(record=records())
async def test_any_strings_round_trip(backend: Backend, record: EventRecord) -> None:
    await backend.sink.write([record])
    assert await backend.reader.history(record.entity_id, None, None, 10) == [record]
    keys = await backend.reader.keys([record.entity_id], record.time, record.time)
    assert keys == {(record.entity_id, record.time)}
