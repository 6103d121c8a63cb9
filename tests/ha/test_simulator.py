"""The fake Home Assistant: protocol fidelity, the generated home, history and test hooks."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import pytest

from homeiq.ha.simulator import Simulator, malformed_frames
from homeiq.ha.simulator.encoding import iso_from_us

ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
FIXTURE = Path(__file__).parent.parent / "fixtures" / "ha-2024.3.3" / "ws-session.jsonl"
TOKEN = "sim-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _fixture_result(msg_id: int) -> Any:
    """The ``result`` of command ``msg_id`` in the recorded real session."""
    for line in FIXTURE.read_text().splitlines():
        rec = orjson.loads(line)
        frame = rec["frame"]
        if rec["dir"] == "in" and isinstance(frame, dict) and frame.get("id") == msg_id:
            return frame["result"]
    raise AssertionError(msg_id)


def _fixture_state_changed() -> dict[str, Any]:
    """The first state_changed message of the recorded real session."""
    for line in FIXTURE.read_text().splitlines():
        frame = orjson.loads(line)["frame"]
        for msg in frame if isinstance(frame, list) else [frame]:
            if msg.get("type") == "event" and msg["event"]["event_type"] == "state_changed":
                found: dict[str, Any] = msg
                return found
    raise AssertionError("no state_changed in the fixture")


class Client:
    """A bare aiohttp WebSocket client speaking HA's protocol, for poking the simulator."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 1
        self.pending: list[Any] = []
        self.frames: list[Any] = []
        self.subs: dict[str, int] = {}

    async def command(self, msg: dict[str, Any]) -> int:
        msg_id = self.next_id
        self.next_id += 1
        await self.ws.send_str(orjson.dumps({"id": msg_id, **msg}).decode())
        return msg_id

    async def recv(self) -> dict[str, Any]:
        """Next message, unpacking array frames."""
        while not self.pending:
            frame = await self.ws.receive(timeout=2.0)
            assert frame.type is aiohttp.WSMsgType.TEXT, frame
            data = orjson.loads(frame.data)
            self.frames.append(data)
            self.pending.extend(data if isinstance(data, list) else [data])
        msg: dict[str, Any] = self.pending.pop(0)
        return msg

    async def result(self, msg_id: int) -> dict[str, Any]:
        """Skip events until the result for ``msg_id``."""
        while True:
            msg = await self.recv()
            if msg.get("id") == msg_id and msg["type"] in ("result", "pong"):
                return msg

    async def events(self, n: int, event_type: str = "state_changed") -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while len(out) < n:
            msg = await self.recv()
            if msg["type"] == "event" and msg["event"]["event_type"] == event_type:
                out.append(msg)
        return out


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(seed=7, rate=50.0) as s:
        yield s


async def connect(
    sim: Simulator,
    session: aiohttp.ClientSession,
    *,
    coalesce: bool = True,
    subscribe: tuple[str, ...] = ("state_changed",),
) -> Client:
    ws = await session.ws_connect(sim.ws_url)
    assert orjson.loads((await ws.receive()).data) == {
        "type": "auth_required",
        "ha_version": "2024.3.3",
    }
    await ws.send_str(orjson.dumps({"type": "auth", "access_token": TOKEN}).decode())
    assert orjson.loads((await ws.receive()).data)["type"] == "auth_ok"
    client = Client(ws)
    if coalesce:
        i = await client.command(
            {"type": "supported_features", "features": {"coalesce_messages": 1}}
        )
        assert (await client.result(i))["result"] is None
    for event_type in subscribe:
        i = await client.command({"type": "subscribe_events", "event_type": event_type})
        assert (await client.result(i))["success"] is True
        client.subs[event_type] = i
    return client


# --- auth and command ids ------------------------------------------------------------


async def test_auth_ok_invalid_and_token_hooks(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    async def auth(token: Any) -> tuple[dict[str, Any], aiohttp.ClientWebSocketResponse]:
        ws = await session.ws_connect(sim.ws_url)
        await ws.receive()
        await ws.send_str(orjson.dumps({"type": "auth", "access_token": token}).decode())
        return orjson.loads((await ws.receive()).data), ws

    reply, ws = await auth("wrong")
    assert reply == {"type": "auth_invalid", "message": "Invalid access"}
    assert (await ws.receive()).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    await ws.close()

    reply, ws = await auth(TOKEN)
    assert reply == {"type": "auth_ok", "ha_version": "2024.3.3"}
    await ws.close()

    sim.reject_tokens = True
    reply, ws = await auth(TOKEN)
    assert reply["type"] == "auth_invalid"
    await ws.close()
    sim.reject_tokens = False

    sim.set_token("rotated")
    reply, ws = await auth(TOKEN)
    assert reply["type"] == "auth_invalid"
    await ws.close()
    reply, ws = await auth("rotated")
    assert reply["type"] == "auth_ok"
    await ws.close()

    reply, ws = await auth(12)
    assert reply["type"] == "auth_invalid"
    assert reply["message"].startswith("Auth message incorrectly formatted")
    await ws.close()
    assert sim.stats.auth_invalid == 4
    assert sim.stats.auth_ok == 2


async def test_ids_must_increase_and_unknown_commands(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    client = await connect(sim, session, coalesce=False, subscribe=())
    ws = client.ws
    await ws.send_str('{"id":5,"type":"ping"}')
    assert await client.result(5) == {"id": 5, "type": "pong"}
    for reused in (5, 3):
        await ws.send_str(f'{{"id":{reused},"type":"ping"}}')
        assert await client.result(reused) == {
            "id": reused,
            "type": "result",
            "success": False,
            "error": {"code": "id_reuse", "message": "Identifier values have to increase."},
        }
    await ws.send_str('{"id":6,"type":"no/such/command"}')
    error = await client.result(6)
    assert error["success"] is False
    assert error["error"]["code"] == "unknown_command"
    # Like HA, an unknown command does not consume its id.
    await ws.send_str('{"id":6,"type":"ping"}')
    assert (await client.result(6))["type"] == "pong"
    await ws.send_str('{"type":"ping"}')
    assert (await client.recv())["error"]["code"] == "invalid_format"
    # A JSON array of commands is accepted too.
    await ws.send_str('[{"id":7,"type":"ping"},{"id":8,"type":"ping"}]')
    assert (await client.result(7))["type"] == "pong"
    assert (await client.result(8))["type"] == "pong"
    await ws.close()


async def test_unsubscribe_stops_events(sim: Simulator, session: aiohttp.ClientSession) -> None:
    client = await connect(sim, session, coalesce=False)
    await client.events(1)
    sub = client.subs["state_changed"]
    i = await client.command({"type": "unsubscribe_events", "subscription": sub})
    assert (await client.result(i))["success"] is True
    i = await client.command({"type": "unsubscribe_events", "subscription": sub})
    assert (await client.result(i))["error"]["code"] == "not_found"
    sim.pause()
    sim.burst(20)
    i = await client.command({"type": "ping"})
    # Everything queued before the unsubscribe result was consumed by result() above.
    after = [await client.recv()]
    while after[-1].get("id") != i:
        after.append(await client.recv())
    assert after == [{"id": i, "type": "pong"}]
    await client.ws.close()


# --- framing -------------------------------------------------------------------------


async def test_coalesced_array_frames(sim: Simulator, session: aiohttp.ClientSession) -> None:
    sim.pause()
    client = await connect(sim, session)
    sim.burst(500)
    events = await client.events(500)
    arrays = [f for f in client.frames if isinstance(f, list)]
    assert arrays, "a burst must arrive as JSON array frames"
    assert max(len(f) for f in arrays) > 50
    assert all(e["id"] == 2 for e in events)
    await client.ws.close()

    plain = await connect(sim, session, coalesce=False)
    sim.burst(30)
    await plain.events(30)
    assert all(isinstance(f, dict) for f in plain.frames)
    await plain.ws.close()


async def test_state_changed_shape_and_chaining(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    sim.pause()
    client = await connect(sim, session)
    before = {
        s["entity_id"]: s
        for s in (await client.result(await client.command({"type": "get_states"})))["result"]
    }
    sim.burst(2000)
    events = await client.events(2000)
    last = dict(before)
    attr_only = 0
    for msg in events:
        assert set(msg) == {"type", "event", "id"}
        ev = msg["event"]
        assert set(ev) == {"event_type", "data", "origin", "time_fired", "context"}
        assert ev["origin"] == "LOCAL"
        data = ev["data"]
        new, old = data["new_state"], data["old_state"]
        assert set(new) == {
            "entity_id",
            "state",
            "attributes",
            "last_changed",
            "last_updated",
            "context",
        }
        assert ev["time_fired"] == new["last_updated"]
        assert ev["context"] == new["context"]
        assert new["last_updated"].endswith("+00:00")
        assert ULID.match(ev["context"]["id"])
        assert old == last[data["entity_id"]], "old_state must be the previous new_state"
        assert (new["state"], new["attributes"]) != (old["state"], old["attributes"])
        if new["state"] == old["state"]:
            attr_only += 1
            assert new["last_changed"] == old["last_changed"]
        else:
            assert new["last_changed"] == new["last_updated"]
        assert "friendly_name" in new["attributes"]
        last[data["entity_id"]] = new
    assert attr_only > 0
    users = [e["event"]["context"]["user_id"] for e in events if e["event"]["context"]["user_id"]]
    assert users and all(HEX32.match(u) for u in users)
    # Same nesting and keys as a state_changed from the recorded real session.
    real = _fixture_state_changed()
    ours = events[0]
    assert set(ours) == set(real)
    assert set(ours["event"]) == set(real["event"])
    assert set(ours["event"]["data"]) == set(real["event"]["data"])
    assert set(ours["event"]["context"]) == set(real["event"]["context"])
    await client.ws.close()


async def test_automation_parent_id_chain(sim: Simulator, session: aiohttp.ClientSession) -> None:
    sim.pause()
    client = await connect(sim, session)
    sim.burst(3000)
    events = [m["event"] for m in await client.events(3000)]
    by_ctx: dict[str, list[dict[str, Any]]] = {}
    for ev in events:
        by_ctx.setdefault(ev["context"]["id"], []).append(ev)
    chains = 0
    for ctx_id, group in by_ctx.items():
        parent = group[0]["context"]["parent_id"]
        if parent is None or not group[0]["data"]["entity_id"].startswith("automation."):
            continue
        trigger = by_ctx[parent][0]["data"]
        assert trigger["entity_id"].startswith("binary_sensor.")
        assert trigger["new_state"]["state"] == "on"
        entities = [g["data"]["entity_id"] for g in group]
        assert entities[0] == entities[-1]
        assert any(e.startswith("light.") for e in entities)
        running = group[0]["data"]["new_state"]["attributes"]
        assert running["current"] == 1
        assert running["last_triggered"] is not None
        assert group[-1]["data"]["new_state"]["attributes"]["current"] == 0
        assert all(g["context"]["id"] == ctx_id for g in group)
        chains += 1
    assert chains > 5
    await client.ws.close()


# --- the home ------------------------------------------------------------------------


async def test_registry_lists_are_consistent(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    client = await connect(sim, session, subscribe=())

    async def call(kind: str) -> Any:
        return (await client.result(await client.command({"type": kind})))["result"]

    devices = await call("config/device_registry/list")
    entities = await call("config/entity_registry/list")
    areas = await call("config/area_registry/list")
    floors = await call("config/floor_registry/list")
    states = await call("get_states")
    await client.ws.close()

    # Same field sets as the real 2024.3.3 (areas additionally carry floor_id).
    assert {frozenset(d) for d in devices} == {frozenset(_fixture_result(7)[0])}
    assert {frozenset(e) for e in entities} == {frozenset(_fixture_result(8)[0])}
    assert {frozenset(a) for a in areas} == {frozenset(_fixture_result(9)[0]) | {"floor_id"}}
    assert {frozenset(s) for s in states} == {frozenset(_fixture_result(6)[0])}

    assert len(states) >= 150
    assert len(entities) >= 150
    assert len(areas) >= 10
    assert len(floors) >= 2
    device_ids = {d["id"] for d in devices}
    area_ids = {a["area_id"] for a in areas}
    floor_ids = {f["floor_id"] for f in floors}
    assert all(a["floor_id"] in floor_ids for a in areas if a["floor_id"] is not None)
    assert len({a["floor_id"] for a in areas} - {None}) >= 2
    assert all(d["area_id"] in area_ids for d in devices if d["area_id"] is not None)
    assert all(d["via_device_id"] in device_ids for d in devices if d["via_device_id"])
    assert all(e["device_id"] in device_ids for e in entities if e["device_id"] is not None)
    assert all(e["area_id"] in area_ids for e in entities if e["area_id"] is not None)
    with_device = [e for e in entities if e["device_id"]]
    assert len(with_device) > len(entities) / 2
    assert len(with_device) < len(entities), "some entities have no device"
    device_area = {d["id"]: d["area_id"] for d in devices}
    overrides = [
        e for e in with_device if e["area_id"] and e["area_id"] != device_area[e["device_id"]]
    ]
    assert overrides, "some entities override their device's area"
    assert all(HEX32.match(d["id"]) for d in devices)

    domains = {s["entity_id"].split(".")[0] for s in states}
    assert domains >= {
        "sensor",
        "binary_sensor",
        "light",
        "switch",
        "climate",
        "cover",
        "automation",
        "person",
        "input_boolean",
    }
    assert {e["entity_id"] for e in entities} == {s["entity_id"] for s in states}
    by_class = {
        s["attributes"].get("device_class") for s in states if s["entity_id"].startswith("sensor.")
    }
    assert by_class >= {"temperature", "humidity", "power", "energy"}
    for s in states:
        assert s["attributes"]["friendly_name"]
        assert ULID.match(s["context"]["id"])
        if s["entity_id"].startswith("sensor.") and s["attributes"].get("device_class") in (
            "temperature",
            "power",
            "energy",
        ):
            assert {"unit_of_measurement", "state_class"} <= set(s["attributes"])
    lights = [s for s in states if s["entity_id"].startswith("light.")]
    assert all("brightness" in s["attributes"] for s in lights)
    climates = [s for s in states if s["entity_id"].startswith("climate.")]
    assert all(s["state"] in ("heat", "cool", "off") for s in climates)
    assert all("temperature" in s["attributes"] for s in climates)


def test_same_seed_same_events_and_sensors_go_unavailable() -> None:
    def run(seed: int) -> list[tuple[str, str | None, str]]:
        sim = Simulator(seed=seed)
        sim.burst(3000)
        # The time part of ids and timestamps follows the clock; everything else is seeded.
        return [(e.entity_id, e.state, e.context_id[10:]) for e in sim.emitted]

    first = run(3)
    assert first == run(3)
    assert first != run(4)
    assert "unavailable" in {state for _, state, _ in first}
    assert (
        Simulator(seed=3).home.entities[5].entity_id == Simulator(seed=3).home.entities[5].entity_id
    )


def test_context_ids_are_unique_ulids() -> None:
    sim = Simulator(seed=1)
    sim.burst(5000)
    ids = [e.context_id for e in sim.emitted]
    assert all(ULID.match(i) for i in ids)
    distinct = set(ids)
    # Automation runs share one context over several events; nothing else repeats.
    assert len(distinct) > 0.7 * len(ids)
    times = [e.time_us for e in sim.emitted]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert {(e.entity_id, e.last_updated) for e in sim.emitted} == sim.emitted.keys()


# --- history -------------------------------------------------------------------------


async def test_history_endpoint(session: aiohttp.ClientSession) -> None:
    async with Simulator(seed=2, rate=1.0) as sim:
        sim.pause()
        temp = "sensor.living_room_multisensor_temperature"
        sim.set_state("sensor.probe", "1", {"friendly_name": "Probe"})
        start = sim.emitted[-1].time_us + 1
        for value in ("2", "3", "4"):
            sim.set_state("sensor.probe", value, {"friendly_name": "Probe"})
        sim.set_state("sensor.probe", "4", {"friendly_name": "Probe", "extra": 1})
        start_iso = iso_from_us(start)
        base = f"{sim.url}/api/history/period/"
        ok_url = f"{base}{quote(start_iso)}?filter_entity_id=sensor.probe,{temp},sensor.nothing"

        async with session.get(ok_url) as r:
            assert r.status == 401
        async with session.get(ok_url, headers={"Authorization": "Bearer nope"}) as r:
            assert r.status == 401
        async with session.get(f"{base}{quote(start_iso)}", headers=AUTH) as r:
            assert r.status == 400
            assert await r.json() == {"message": "filter_entity_id is missing"}
        raw_plus = f"{base}{start_iso}?filter_entity_id=sensor.probe"
        assert "+" in raw_plus
        async with session.get(raw_plus, headers=AUTH) as r:
            assert r.status == 400

        async with session.get(ok_url + "&significant_changes_only=0", headers=AUTH) as r:
            assert r.status == 200
            rows = await r.json()
        assert [g[0]["entity_id"] for g in rows] == ["sensor.probe", temp]
        probe = rows[0]
        assert [p["state"] for p in probe] == ["1", "2", "3", "4", "4"]
        assert probe[0]["last_changed"] == start_iso == probe[0]["last_updated"]
        assert len({p["context"]["id"] for g in rows for p in g}) == 1
        assert rows[1][0]["last_changed"] == start_iso

        async with session.get(ok_url, headers=AUTH) as r:
            significant = await r.json()
        assert [p["state"] for p in significant[0]] == ["1", "2", "3", "4"]

        minimal = ok_url + "&minimal_response&no_attributes&significant_changes_only=0"
        async with session.get(minimal, headers=AUTH) as r:
            rows = await r.json()
        assert rows[0][0]["attributes"] == {}
        assert rows[0][1:] == [
            {"state": s, "last_changed": rows[0][i + 1]["last_changed"]}
            for i, s in enumerate(["2", "3", "4"])
        ]

        end = quote(iso_from_us(sim.emitted[-3].time_us))
        async with session.get(ok_url + f"&end_time={end}", headers=AUTH) as r:
            assert [p["state"] for p in (await r.json())[0]] == ["1", "2"]

        # The recorder purge: keep nothing older than a moment ago.
        # The simulator's clock never repeats a microsecond: every row is now older than now.
        sim.history_keep_s = 0.0
        async with session.get(ok_url, headers=AUTH) as r:
            assert await r.json() == []


async def test_keeps_generating_without_clients() -> None:
    async with Simulator(seed=5, rate=400.0) as sim:
        await sim.wait_emitted(40, timeout=2.0)
        assert sim.active_connections == 0
        assert sim.history(sim.entity_ids, sim.emitted[0].time_us - 1, sim.emitted[-1].time_us + 1)


async def test_rate_zero_with_count(session: aiohttp.ClientSession) -> None:
    async with Simulator(seed=6, rate=0, count=5000) as sim:
        await asyncio.sleep(0.05)
        assert len(sim.emitted) == 0, "rate 0 waits for a subscriber"
        client = await connect(sim, session)
        events = await client.events(5000)
        await sim.wait_finished(timeout=2.0)
        assert len(sim.emitted) == sim.emitted_count == sim.stats.delivered == 5000
        assert [e["event"]["data"]["new_state"]["last_updated"] for e in events] == [
            e.last_updated for e in sim.emitted
        ]
        # Idle afterwards, but the connection still answers.
        i = await client.command({"type": "ping"})
        assert (await client.result(i))["type"] == "pong"
        await client.ws.close()


# --- REST and hooks ------------------------------------------------------------------


async def test_rest_states_create_update_remove(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    sim.pause()
    client = await connect(sim, session)
    async with session.get(f"{sim.url}/api/", headers=AUTH) as r:
        assert await r.json() == {"message": "API running."}
    url = f"{sim.url}/api/states/sensor.rest_probe"
    body = {"state": "42", "attributes": {"unit_of_measurement": "W", "friendly_name": "Zürich ☀"}}
    async with session.post(url, json=body, headers=AUTH) as r:
        assert r.status == 201
    async with session.post(url, json={**body, "state": "43"}, headers=AUTH) as r:
        assert r.status == 200
        assert (await r.json())["state"] == "43"
    async with session.post(url, json={**body, "state": "43"}, headers=AUTH) as r:
        assert r.status == 200  # identical: HA fires state_reported, not state_changed
    async with session.delete(url, headers=AUTH) as r:
        assert await r.json() == {"message": "Entity removed."}
    created, updated, removed = (e["event"] for e in await client.events(3))
    assert created["data"]["old_state"] is None
    assert created["context"]["user_id"] == sim.owner_user_id
    assert created["data"]["new_state"]["attributes"]["friendly_name"] == "Zürich ☀"
    assert updated["data"]["old_state"]["state"] == "42"
    assert removed["data"]["new_state"] is None
    assert removed["data"]["old_state"]["state"] == "43"
    assert removed["context"]["user_id"] is None
    assert removed["time_fired"] > updated["time_fired"]
    await client.ws.close()


async def test_registry_hooks(sim: Simulator, session: aiohttp.ClientSession) -> None:
    sim.pause()
    client = await connect(
        sim,
        session,
        subscribe=("state_changed", "entity_registry_updated", "area_registry_updated"),
    )
    target_area = sim.home.areas[3].area_id
    sim.create_entity("sensor.hooked", "1", {"friendly_name": "Hooked"}, area_id=target_area)
    msgs = [await client.recv() for _ in range(2)]
    assert msgs[0]["event"]["event_type"] == "entity_registry_updated"
    assert msgs[0]["event"]["data"] == {"action": "create", "entity_id": "sensor.hooked"}
    assert msgs[0]["id"] == 3
    assert msgs[1]["event"]["data"]["old_state"] is None

    sim.move_entity("sensor.hooked", sim.home.areas[4].area_id)
    moved = await client.recv()
    assert moved["event"]["data"] == {
        "action": "update",
        "entity_id": "sensor.hooked",
        "changes": {"area_id": target_area},
    }
    area_id = sim.create_area("Sauna", floor_id="basement")
    assert (await client.recv())["event"]["data"] == {"action": "create", "area_id": area_id}

    sim.remove_entity("sensor.hooked")
    removal = [await client.recv() for _ in range(2)]
    assert removal[0]["event"]["data"] == {"action": "remove", "entity_id": "sensor.hooked"}
    assert removal[1]["event"]["data"]["new_state"] is None
    assert "sensor.hooked" not in sim.entity_ids
    i = await client.command({"type": "config/entity_registry/list"})
    assert "sensor.hooked" not in {e["entity_id"] for e in (await client.result(i))["result"]}
    await client.ws.close()


async def test_inject_raw_and_malformed_frames(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    sim.pause()
    client = await connect(sim, session)
    frames = malformed_frames(2)
    assert sim.inject_raw(frames) == 1
    received = [(await client.ws.receive(timeout=2.0)).data for _ in frames]
    assert received == frames
    fake = sim.fake_state_changed("sensor.ghost", "1", last_updated="9999-01-01T00:00:00+00:00")
    assert sim.inject_event(fake) == 1
    msg = await client.recv()
    assert msg["event"]["data"]["new_state"]["last_updated"].startswith("9999")
    assert not any(e.entity_id == "sensor.ghost" for e in sim.emitted)
    await client.ws.close()


async def test_drop_connections_and_reconnect(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    client = await connect(sim, session)
    await client.events(1)
    assert sim.drop_connections() == 1
    msg = await client.ws.receive(timeout=2.0)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    await client.ws.close()
    again = await connect(sim, session)
    await again.events(1)
    await again.ws.close()


async def test_pause_resume_and_wait_emitted(sim: Simulator) -> None:
    sim.pause()
    assert sim.paused
    await asyncio.sleep(0.05)
    frozen = len(sim.emitted)
    await asyncio.sleep(0.1)
    assert len(sim.emitted) == frozen
    sim.resume()
    await sim.wait_emitted(frozen + 3, timeout=2.0)
    with pytest.raises(TimeoutError):
        await sim.wait_emitted(10**9, timeout=0.05)


async def test_call_service_carries_user_context(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    sim.pause()
    client = await connect(sim, session)
    light = next(e for e in sim.entity_ids if e.startswith("light."))
    i = await client.command(
        {
            "type": "call_service",
            "domain": "light",
            "service": "turn_on",
            "service_data": {"brightness": 17},
            "target": {"entity_id": light},
        }
    )
    # HA sends the state_changed before the result.
    event = (await client.events(1))[0]["event"]
    result = await client.result(i)
    assert result["result"]["context"] == event["context"]
    assert event["context"]["user_id"] == sim.owner_user_id
    assert event["data"]["new_state"]["attributes"]["brightness"] == 17
    await client.ws.close()


async def test_stop_leaves_no_tasks(session: aiohttp.ClientSession) -> None:
    sim = Simulator(seed=9, rate=200.0)
    await sim.start()
    client = await connect(sim, session)
    await client.events(2)
    await sim.stop()
    await client.ws.close()
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert not others, others
    assert sim.active_connections == 0


async def test_slow_client_is_dropped_like_ha(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    sim.pause()
    sim.slow_client_limit = 100
    client = await connect(sim, session)
    sim.burst(1000)
    assert sim.stats.slow_client_drops == 1
    assert sim.active_connections == 0
    while (await client.ws.receive(timeout=2.0)).type is aiohttp.WSMsgType.TEXT:
        pass  # whatever was already on the wire, then the close
    await client.ws.close()
