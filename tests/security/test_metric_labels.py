"""High: every label of the API's metrics comes from a closed set. Thousands of made-up
methods and paths, sent without a key, must not add one series (nor one byte of
/metrics): before the fix each distinct method made a new latency series."""

from __future__ import annotations

import httpx

from homeiq.api.app import routes_of
from homeiq.api.metrics import KNOWN_METHODS, OTHER, UNMATCHED
from tests.api.conftest import Api

METRIC = "homeiq_api_request_duration_seconds"


def series(api: Api) -> set[tuple[str, str, str]]:
    """Every (method, route, status) the latency histogram holds."""
    found = set()
    for family in api.runtime.metrics.registry.collect():
        if family.name == METRIC:
            for sample in family.samples:
                labels = sample.labels
                found.add((labels["method"], labels["route"], labels["status"]))
    return found


async def junk(client: httpx.AsyncClient, start: int, count: int) -> None:
    for i in range(start, start + count):
        await client.send(client.build_request(f"X{i:06d}", "/healthz"))
        await client.get(f"/no/such/path/{i}")
        await client.send(client.build_request(f"Q{i}", f"/api/v1/made-up-{i}"))


async def scrape_lines(api: Api) -> int:
    response = await api.client.get("/metrics", headers=api.keys.auth("read"))
    assert response.status_code == 200
    return sum(1 for line in response.text.splitlines() if line.startswith(METRIC))


async def test_junk_methods_and_paths_add_no_series(api: Api) -> None:
    await junk(api.client, 0, 20)
    await scrape_lines(api)  # the /metrics route's own series exist from here on
    before = series(api)
    lines_before = await scrape_lines(api)
    await junk(api.client, 20, 400)
    after = series(api)
    assert after == before
    assert await scrape_lines(api) == lines_before
    templates = {route.path for route in routes_of(api.app)}
    assert {method for method, _, _ in after} <= KNOWN_METHODS | {OTHER}
    assert {route for _, route, _ in after} <= templates | {UNMATCHED}
    # The junk was counted, under the closed values.
    assert (OTHER, "/healthz", "405") in after or (OTHER, "/healthz", "200") in after
    assert ("GET", UNMATCHED, "404") in after


async def test_a_junk_method_is_answered_as_json(api: Api) -> None:
    response = await api.client.send(api.client.build_request("BREW", "/healthz"))
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
