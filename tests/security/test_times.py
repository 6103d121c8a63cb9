"""Info: times in URLs. A + written unencoded arrives as a space, and is read as the +
it was; the epoch is a time like any other (it was taken for "not given"); a time
outside years 1 to 9999 once in UTC is refused (it was echoed as a count of µs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from homeiq.api.times import Iso
from tests.api.conftest import Api, assert_error
from tests.api.test_data_routes import EVENTS

ISO = TypeAdapter(Iso)


async def read(api: Api, url: str) -> dict[str, object]:
    response = await api.client.get(url, headers=api.keys.auth("read"))
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.mark.parametrize("written", ["+02:00", "%2B02:00", " 02:00", "%2002:00", "+0200"])
async def test_an_offset_is_read_however_the_plus_travelled(api: Api, written: str) -> None:
    await api.runtime.writer.deliver(list(EVENTS))
    body = await read(
        api,
        "/api/v1/history?entity_id=sensor.power"
        f"&start=2026-11-25T12:00:00{written}&end=2026-11-25T14:00:00{written}",
    )
    assert (body["start"], body["end"]) == (
        "2026-11-25T10:00:00+00:00",
        "2026-11-25T12:00:00+00:00",
    )


async def test_a_space_not_before_an_offset_is_still_refused(api: Api) -> None:
    for bad in ("2026-11-25 00:00", "2026-11-25T12:00:00 0200x", "2026-11-25T12:00 :00"):
        response = await api.client.get(
            "/api/v1/history",
            params={"entity_id": "sensor.power", "start": bad},
            headers=api.keys.auth("read"),
        )
        assert_error(response, 422, "validation_error")


async def test_the_epoch_is_a_time_not_a_missing_one(api: Api) -> None:
    epoch = "1970-01-01T00:00:00Z"
    history = await read(
        api, f"/api/v1/history?entity_id=sensor.power&start=1969-12-31T00:00:00Z&end={epoch}"
    )
    assert history["end"] == "1970-01-01T00:00:00+00:00"  # not now
    activity = await read(api, f"/api/v1/activity?start={epoch}&end=1970-01-01T05:00:00Z")
    assert activity["start"] == "1970-01-01T00:00:00+00:00"
    assert len(activity["rate"]) == 5
    at_epoch = await read(api, f"/api/v1/activity?end={epoch}")
    assert (at_epoch["start"], at_epoch["end"]) == (
        "1969-12-31T00:00:00+00:00",
        "1970-01-01T00:00:00+00:00",
    )
    statistics = await read(
        api,
        f"/api/v1/statistics?entity_id=sensor.power&start=1969-12-01T00:00:00Z&end={epoch}&period=1d",
    )
    assert statistics["end"] == "1970-01-01T00:00:00+00:00"


@pytest.mark.parametrize(
    "when",
    ["0001-01-01T00:00:00%2B23:59", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00 01:00"],
)
async def test_a_time_outside_years_1_to_9999_in_utc_is_refused(api: Api, when: str) -> None:
    for url in (
        f"/api/v1/history?entity_id=sensor.power&start={when}",
        f"/api/v1/events?start={when}",
        f"/api/v1/activity?end={when}",
    ):
        response = await api.client.get(url, headers=api.keys.auth("read"))
        error = assert_error(response, 422, "validation_error")
        assert "years 1 to 9999" in error["message"]


async def test_year_1_in_utc_is_echoed_as_a_time(api: Api) -> None:
    body = await read(
        api,
        "/api/v1/history?entity_id=sensor.power&start=0001-01-01T00:00:00Z&end=0001-01-02T00:00:00Z",
    )
    assert body["start"] == "0001-01-01T00:00:00+00:00"


@given(
    st.datetimes(
        min_value=datetime(2, 1, 1), max_value=datetime(9998, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59),
)
def test_a_space_for_the_plus_parses_as_the_plus(when: datetime, minutes: int) -> None:
    aware = when.astimezone(timezone(timedelta(minutes=minutes)))
    text = aware.isoformat()
    parsed = ISO.validate_python(text)
    assert parsed == when
    if "+" in text:
        assert ISO.validate_python(text.replace("+", " ")) == parsed
