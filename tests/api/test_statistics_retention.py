"""Statistics over a range whose raw events were purged (really deleted, from SQLite and
from the real InfluxDB 1.6.7) answer from the rollups with the same numbers, through the
API of a started Runtime; a tier purged itself is refused by name."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from homeiq.maintenance.rollups import align
from homeiq.model import EventRecord, Source
from homeiq.pipeline.normalize import format_time_us, numeric_value
from homeiq.sinks.sqlite import EVENTS_DB
from homeiq.sqlitedb import connect
from tests.api.conftest import Api, ApiFactory, assert_error

US = 1_000_000
D = 86400 * US
T0 = align(1_795_640_400_000_000, 86400)  # a UTC midnight in the past
PURGE_AT = T0 + 2 * D + 5 * 3600 * US  # raw events before this go
ENTITIES = ["sensor.power", "light.desk"]


def ev(seconds: float, entity_id: str, state: str, **kw: Any) -> EventRecord:
    return EventRecord(
        entity_id=entity_id,
        time=T0 + int(seconds * US),
        state=state,
        value=numeric_value(state),
        attributes_json=orjson.dumps({}),
        **kw,
    )


EVENTS = sorted(
    [ev(s, "sensor.power", str(10 + i % 7)) for i, s in enumerate(range(300, 3 * 86400, 4321))]
    + [
        ev(s, "light.desk", "on" if i % 2 else "off")
        for i, s in enumerate(range(60, 3 * 86400, 9876))
    ],
    key=lambda r: r.time,
)


@pytest.fixture(params=["sqlite", pytest.param("influxdb", marks=pytest.mark.influxdb)])
async def loaded(request: pytest.FixtureRequest, make_api: ApiFactory) -> Api:
    overrides: dict[str, Any] = {}
    if request.param == "influxdb":
        server = request.getfixturevalue("influxdb")
        database = request.getfixturevalue("influxdb_database")
        overrides = {"store": "influxdb", "influxdb_url": server.url, "influxdb_database": database}
    api = await make_api(**overrides)
    await api.runtime.writer.deliver(list(EVENTS))
    await api.runtime.rollup_maintainer.refresh()
    return api


async def statistics(api: Api, period: str) -> Any:
    response = await api.client.get(
        "/api/v1/statistics",
        params={
            "entity_id": ENTITIES,
            "start": format_time_us(T0),
            "end": format_time_us(T0 + 3 * D),
            "period": period,
        },
        headers=api.keys.auth("read"),
    )
    assert response.status_code == 200, response.text
    return response.json()


async def purge_raw(api: Api, request: pytest.FixtureRequest) -> int:
    """Delete the raw events before PURGE_AT with the store's own language; how many."""
    if api.runtime.settings.store == "influxdb":
        server = request.getfixturevalue("influxdb")
        database = request.getfixturevalue("influxdb_database")
        found = server.query('SELECT COUNT("state") FROM /.*/', db=database)
        before = sum(s["values"][0][1] for s in found["series"])
        server.query(f"DELETE WHERE time < '{format_time_us(PURGE_AT)}'", db=database)
        found = server.query('SELECT COUNT("state") FROM /.*/', db=database)
        return before - sum(s["values"][0][1] for s in found.get("series", []))
    conn = connect(str(api.runtime.settings.data_dir / EVENTS_DB))
    try:
        return conn.execute("DELETE FROM events WHERE time < ?", (PURGE_AT,)).rowcount
    finally:
        conn.close()


async def test_statistics_over_purged_raw_events_answer_the_same(
    loaded: Api, request: pytest.FixtureRequest
) -> None:
    before = {period: await statistics(loaded, period) for period in ("5m", "1h", "1d")}
    assert sum(b["count"] for b in before["1d"]["entities"]["sensor.power"]) == len(
        [e for e in EVENTS if e.entity_id == "sensor.power"]
    )
    maintainer = loaded.runtime.rollup_maintainer
    await maintainer.fold_before(ENTITIES, PURGE_AT)  # what the purge calls first
    purged = await purge_raw(loaded, request)
    assert purged == len([e for e in EVENTS if e.time < PURGE_AT])  # really gone
    for entity_id in ENTITIES:
        loaded.runtime.rollups.mark_raw_purged(entity_id, PURGE_AT)
    for period, answer in before.items():
        assert await statistics(loaded, period) == answer, period
    # A rebuild over the range (homeiq rollups rebuild) and a backfilled event older
    # than the purge leave the buckets the raw events can no longer give alone.
    response = await loaded.client.post(
        "/api/v1/admin/rollups/rebuild",
        json={"start": format_time_us(T0)},
        headers=loaded.keys.auth("admin"),
    )
    assert response.status_code == 200, response.text
    await loaded.runtime.writer.deliver([ev(3600, "sensor.power", "999", source=Source.BACKFILL)])
    await maintainer.refresh()
    assert maintainer.late_beyond_retention == 1
    for period, answer in before.items():
        assert await statistics(loaded, period) == answer, period


async def test_a_purged_tier_is_refused_by_name_and_the_coarser_one_answers(
    loaded: Api,
) -> None:
    hourly = await statistics(loaded, "1h")
    rollups = loaded.runtime.rollups
    assert rollups.purge("5m", lambda _: T0 + D, chunk_rows=10) > 0
    response = await loaded.client.get(
        "/api/v1/statistics",
        params={"entity_id": "sensor.power", "start": format_time_us(T0), "period": "5m"},
        headers=loaded.keys.auth("read"),
    )
    error = assert_error(response, 409, "range_purged")
    assert "5m buckets of sensor.power are kept from" in error["message"]
    assert "period=1h" in error["message"]
    assert await statistics(loaded, "1h") == hourly
