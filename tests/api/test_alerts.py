"""GET /api/v1/alerts over a real runtime: what fires now, every rule, and the history
a page at a time; the same keys and error shape as every route."""

from __future__ import annotations

from homeiq.settings.alert import ALERT_NAMES
from tests.api.conftest import Api, ApiFactory, assert_error


async def test_alerts_need_a_read_key(api: Api) -> None:
    assert_error(await api.client.get("/api/v1/alerts"), 401, "unauthorized")


async def test_active_alerts_rules_and_the_history_in_pages(make_api: ApiFactory) -> None:
    api = await make_api(alert_disabled="rss_high")
    alerts = api.runtime.alerts
    await alerts.raise_alert("backup_failed", "the NAS is full")
    await alerts.clear("backup_failed", "backup written")
    await alerts.raise_alert("backup_overdue", "no backup for 26 hours")
    read = api.keys.auth("read")

    response = await api.client.get("/api/v1/alerts", params={"limit": 2}, headers=read)
    assert response.status_code == 200, response.text
    body = response.json()
    (active,) = body["active"]
    assert (active["name"], active["message"]) == ("backup_overdue", "no backup for 26 hours")
    rules = {r["name"]: r for r in body["rules"]}
    assert list(rules) == list(ALERT_NAMES)
    assert rules["rss_high"]["enabled"] is False and rules["cpu_high"]["enabled"] is True
    assert rules["store_down"] == {
        "name": "store_down", "enabled": True, "kind": "evaluated", "for_s": 120.0,
    }  # fmt: skip
    assert rules["backup_failed"]["kind"] == "reported"
    first = [(h["alert"], h["status"], h["message"]) for h in body["history"]]
    assert first == [
        ("backup_overdue", "firing", "no backup for 26 hours"),
        ("backup_failed", "resolved", "backup written"),
    ]
    assert body["next_cursor"] == body["history"][-1]["id"]

    more = await api.client.get(
        "/api/v1/alerts", params={"limit": 2, "cursor": body["next_cursor"]}, headers=read
    )
    rest = more.json()
    assert [(h["alert"], h["status"]) for h in rest["history"]] == [("backup_failed", "firing")]
    assert rest["next_cursor"] is None

    only = await api.client.get("/api/v1/alerts", params={"alert": "backup_failed"}, headers=read)
    assert [h["status"] for h in only.json()["history"]] == ["resolved", "firing"]


async def test_bad_queries_are_422(api: Api) -> None:
    read = api.keys.auth("read")
    for params in ({"alert": "made_up"}, {"limit": 0}, {"limit": 501}, {"cursor": -1}):
        response = await api.client.get("/api/v1/alerts", params=params, headers=read)
        assert_error(response, 422, "validation_error")
