"""Gap backfill against the simulated Home Assistant, a tiny misbehaving one, and the
recorded history of a real HA 2024.3.3."""

from __future__ import annotations

import itertools
import logging
import math
import socket
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from aiohttp import web

from homeiq.errors import AuthenticationFailed, ProtocolError, SourceUnavailable
from homeiq.ha.backfill import Backfiller, history_url, parse_history, rest_base_url
from homeiq.ha.simulator import Simulator
from homeiq.metadata.store import MetadataStore
from homeiq.model import EventRecord, Source, now_us
from homeiq.observability.metrics import Metrics
from homeiq.pipeline.normalize import Normalizer, format_time_us, parse_time_us

FIXTURE = Path(__file__).parent.parent / "fixtures" / "ha-2024.3.3" / "history-period.json"
SECRET = "wrong-token-0xDEADBEEF"


class Store:
    """What a store would do for the Backfiller: remember what was emitted, by key."""

    def __init__(self, known: Iterable[str] = ()) -> None:
        self.records: list[EventRecord] = []
        self.batches = 0
        self.keys: set[tuple[str, int]] = set()
        self.known = list(known)

    async def stored_keys(self, ids: Sequence[str], start: int, end: int) -> set[tuple[str, int]]:
        wanted = set(ids)
        return {(e, t) for e, t in self.keys if e in wanted and start < t <= end}

    async def emit(self, records: list[EventRecord]) -> None:
        self.batches += 1
        self.records.extend(records)
        self.keys.update((r.entity_id, r.time) for r in records)

    async def known_entities(self) -> list[str]:
        return self.known

    def emitted_keys(self) -> set[tuple[str, int]]:
        return {(r.entity_id, r.time) for r in self.records}


@pytest.fixture
def metadata(tmp_path: Path) -> Iterator[MetadataStore]:
    store = MetadataStore(tmp_path / "metadata.db")
    yield store
    store.close()


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(seed=11, rate=100.0) as s:
        await s.wait_emitted(10, timeout=2.0)  # a few events at the steady rate
        s.pause()  # then only what the test makes
        yield s


@pytest.fixture
async def make(metadata: MetadataStore) -> AsyncIterator[Any]:
    made: list[Backfiller] = []

    def factory(url: str, store: Store, token: str = "sim-token", **kw: Any) -> Backfiller:
        bf = Backfiller(
            url,
            token,
            normalizer=Normalizer(),
            metadata=metadata,
            metrics=kw.pop("metrics", Metrics()),
            stored_keys=store.stored_keys,
            emit=store.emit,
            known_entities=store.known_entities,
            **kw,
        )
        made.append(bf)
        return bf

    yield factory
    for bf in made:
        await bf.close()


def expected(sim: Simulator, start: int, end: int) -> set[tuple[str, int]]:
    """What the simulator recorded in the span (removals have no history row)."""
    return {
        (e.entity_id, e.time_us)
        for e in sim.emitted
        if start < e.time_us <= end and e.state is not None
    }


async def test_fill_stores_exactly_what_ha_recorded(sim: Simulator, make: Any) -> None:
    sim.burst(600)
    start = sim.emitted[-400].time_us
    last = sim.emitted[-200]
    end = last.time_us  # inclusive: HA's end_time is not
    sim.burst(100)
    store, metrics = Store(), Metrics()
    result = await make(sim.url + "/", store, metrics=metrics).fill(start, end)

    want = expected(sim, start, end)
    assert len(want) == 200 and (last.entity_id, end) in want
    assert store.emitted_keys() == want
    assert len(store.records) == len(want)
    assert (result.start_us, result.end_us, result.clamped) == (start, end, False)
    assert result.entities == len(sim.entity_ids)
    assert result.fetched == result.stored == len(want)
    assert result.present == result.invalid == 0
    assert all(r.source is Source.BACKFILL for r in store.records)
    assert all(
        r.context_id is None and r.context_parent_id is None and r.context_user_id is None
        for r in store.records
    )
    # Each entity's records chain: previous_state is the state of the row before.
    by_entity: dict[str, list[EventRecord]] = {}
    for r in sorted(store.records, key=lambda r: r.time):
        by_entity.setdefault(r.entity_id, []).append(r)
    for records in by_entity.values():
        assert records[0].previous_state is not None  # from the state at start
        assert records[0].duration_in_state_s is None  # its last_changed was clamped
        for before, after in itertools.pairwise(records):
            assert after.previous_state == before.state
    assert metrics.value("homeiq_backfill_events_total", {"outcome": "stored"}) == len(want)
    assert metrics.value("homeiq_backfill_runs_total", {"outcome": "ok"}) == 1


async def test_second_fill_finds_everything_present(sim: Simulator, make: Any) -> None:
    start = sim.emitted[-1].time_us
    sim.burst(300)
    end = sim.emitted[-1].time_us
    store = Store()
    bf = make(sim.url, store)
    first = await bf.fill(start, end)
    emitted = list(store.records)
    second = await bf.fill(start, end)
    assert first.stored == len(emitted) > 0
    assert store.records == emitted, "nothing new emitted"
    assert second.stored == 0
    assert second.present == second.fetched == first.fetched


async def test_chunks_and_entities_removed_since(sim: Simulator, make: Any) -> None:
    start = sim.emitted[-1].time_us
    for value in ("1", "2", "3"):
        sim.set_state("sensor.probe", value, {"friendly_name": "Probe"})
    sim.burst(100)
    sim.remove_entity("sensor.probe")  # gone from /api/states, still in the recorder
    end = sim.emitted[-1].time_us
    store = Store(known=["sensor.probe", "sensor.never_existed", "Not A Valid Id"])
    n = len(sim.entity_ids) + 2
    before = sim.stats.history_requests
    result = await make(sim.url, store, entities_per_request=7).fill(start, end)
    assert result.entities == n
    assert sim.stats.history_requests - before == math.ceil(n / 7)
    assert store.emitted_keys() == expected(sim, start, end)
    probe = [r.state for r in store.records if r.entity_id == "sensor.probe"]
    assert probe == ["1", "2", "3"]


def test_history_url_is_percent_encoded() -> None:
    start = parse_time_us("2026-11-25T21:22:17.053839+00:00", "start")
    end = parse_time_us("2026-11-25T21:23:49.569009+00:00", "end")
    url = history_url("http://ha:8123", ["light.bed_light", "sensor.t"], start, end)
    # The shape of the real request in the fixture README, end_time one µs past the end.
    assert url.raw_path == "/api/history/period/2026-11-25T21%3A22%3A17.053839%2B00%3A00"
    assert url.raw_query_string == (
        "filter_entity_id=light.bed_light,sensor.t"
        "&end_time=2026-11-25T21%3A23%3A49.569010%2B00%3A00&significant_changes_only=0"
    )
    for given in ("ws://ha:8123/api/websocket", "http://ha:8123/", "ws://ha:8123/api/websocket/"):
        assert rest_base_url(given) == "http://ha:8123"
    assert rest_base_url("wss://ha.example/") == "https://ha.example"


async def test_rejected_token(sim: Simulator, make: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    metrics = Metrics()
    bf = make(sim.url, Store(), token=SECRET, metrics=metrics)
    with pytest.raises(AuthenticationFailed) as info:
        await bf.fill(sim.emitted[0].time_us, sim.emitted[-1].time_us)
    assert "401" in str(info.value)
    assert SECRET not in str(info.value)
    assert SECRET not in caplog.text
    assert metrics.value("homeiq_backfill_runs_total", {"outcome": "failed"}) == 1


async def test_server_down(make: Any) -> None:
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    bf = make(f"ws://127.0.0.1:{port}/api/websocket", Store(), token=SECRET)
    with pytest.raises(SourceUnavailable) as info:
        await bf.fill(1_000_000, 2_000_000_000_000_000)
    assert SECRET not in str(info.value)


async def test_gap_beyond_history_is_clamped_and_reported(
    sim: Simulator, make: Any, metadata: MetadataStore
) -> None:
    start = sim.emitted[-1].time_us
    sim.burst(200)
    horizon, end = sim.emitted[-120].time_us, sim.emitted[-1].time_us
    now = horizon + 5_000_000
    store, metrics = Store(), Metrics()
    bf = make(sim.url, store, metrics=metrics, max_age_s=5.0, clock=lambda: now)
    result = await bf.fill(start, end)
    assert result.clamped and result.start_us == horizon
    assert store.emitted_keys() == expected(sim, horizon, end)
    (event,) = metadata.quality_events(kind="gap_beyond_history")
    assert (event.time, event.start_us, event.end_us, event.events) == (now, start, horizon, None)
    assert metrics.value("homeiq_quality_events_total", {"kind": "gap_beyond_history"}) == 1

    # Wholly beyond the horizon: nothing asked of HA, the loss still reported.
    before = sim.stats.history_requests
    result = await bf.fill(start, horizon - 1)
    assert result.clamped and result.fetched == 0
    assert sim.stats.history_requests == before
    assert metadata.quality_events(kind="gap_beyond_history")[0].end_us == horizon - 1


class TinyHA:
    """A minimal HA on 127.0.0.1 answering whatever a test sets, recording raw paths."""

    def __init__(self) -> None:
        self.states: Any = [{"entity_id": "sensor.a"}, {"entity_id": "sensor.b"}]
        self.history: Any = []
        self.status = 200
        self.body: bytes | None = None
        self.paths: list[str] = []
        self.url = ""

    async def _states(self, request: web.Request) -> web.Response:
        return web.json_response(self.states)

    async def _history(self, request: web.Request) -> web.Response:
        self.paths.append(request.rel_url.raw_path_qs)
        if self.body is not None:
            return web.Response(body=self.body, status=self.status)
        return web.Response(body=orjson.dumps(self.history), status=self.status)

    async def __aenter__(self) -> TinyHA:
        app = web.Application()
        app.router.add_get("/api/states", self._states)
        app.router.add_get("/api/history/period/{start}", self._history)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


def _row(entity_id: str, state: Any, when: int | str) -> dict[str, Any]:
    stamp = when if isinstance(when, str) else format_time_us(when)
    ctx = {"id": "01M8A98TMW3MCPG75MPP6HB3JX", "parent_id": None, "user_id": None}
    return {
        "entity_id": entity_id,
        "state": state,
        "attributes": {"friendly_name": "A"},
        "last_changed": stamp,
        "last_updated": stamp,
        "context": ctx,
        "some_future_field": 1,
    }


async def test_garbage_rows_are_dead_lettered(make: Any, metadata: MetadataStore) -> None:
    start = now_us() - 60_000_000
    end = start + 10_000_000
    async with TinyHA() as ha:
        ha.history = [
            [
                _row("sensor.a", "1", start),  # the state at start, clamped
                _row("sensor.a", "2", start + 1_000_000),
                _row("sensor.a", 123, start + 2_000_000),
                "not a row",
                _row("sensor.a", "9", "yesterday"),
                _row("sensor.a", "3", end),
                _row("sensor.a", "4", end + 1),  # past the end
            ],
            [_row("sensor.b", "x", start + 5)],
        ]
        store, metrics = Store(), Metrics()
        result = await make(ha.url, store, metrics=metrics).fill(start, end)
        (path,) = ha.paths
    stamp = quote(format_time_us(start), safe="")
    assert "%2B00%3A00" in stamp
    assert path.startswith(f"/api/history/period/{stamp}?filter_entity_id=sensor.a,sensor.b&")
    assert [(r.entity_id, r.state) for r in store.records] == [
        ("sensor.b", "x"),
        ("sensor.a", "2"),
        ("sensor.a", "3"),
    ]
    assert store.records[1].previous_state == "1"
    assert (result.fetched, result.stored, result.invalid) == (6, 3, 3)
    assert metadata.dead_letter_counts() == {
        "bad_state": 1,
        "bad_timestamp": 1,
        "not_an_object": 1,
    }
    (letter,) = metadata.dead_letters(reason="bad_state")
    assert orjson.loads(letter.payload)["state"] == 123
    assert letter.entity_id == "sensor.a"
    # Counted like every other dead letter, by reason.
    for reason in ("bad_state", "bad_timestamp", "not_an_object"):
        rejected = metrics.value("homeiq_events_rejected_total", {"reason": reason})
        assert rejected == 1, reason
    assert metrics.rejected_total() == 3


@pytest.mark.parametrize(
    ("status", "body", "error", "text"),
    [
        (403, b"{}", AuthenticationFailed, "403"),
        (500, b"Internal Server Error", SourceUnavailable, "500"),
        (400, b'{"message":"Invalid filter_entity_id"}', ProtocolError, "Invalid filter"),
        (200, b'{"oops":1}', ProtocolError, "not a list"),
        (200, b"[[{]", ProtocolError, "non-JSON"),
        (200, b'["rows"]', ProtocolError, "not a list of rows"),
    ],
)
async def test_bad_answers(
    make: Any, status: int, body: bytes, error: type[Exception], text: str
) -> None:
    async with TinyHA() as ha:
        ha.status, ha.body = status, body
        with pytest.raises(error, match=text) as info:
            await make(ha.url, Store(), token=SECRET).fill(now_us() - 10**6, now_us())
    assert SECRET not in str(info.value)


def test_recorded_history_fixture() -> None:
    response = orjson.loads(FIXTURE.read_bytes())
    start = parse_time_us(response[0][0]["last_updated"], "start")  # the clamped start
    end = parse_time_us("2026-11-25T21:23:49.569010+00:00", "end")  # from the request
    normalizer = Normalizer(clock=lambda: end / 1e6)
    rows = parse_history(response, normalizer, start, end, received_at=end)
    assert not rows.dead_letters
    assert rows.fetched == len(rows.records) == sum(len(g) - 1 for g in response)
    assert all(r.time > start for r in rows.records)
    for group in response:
        mine = [r for r in rows.records if r.entity_id == group[0]["entity_id"]]
        assert [r.time for r in mine] == [parse_time_us(g["last_updated"], "t") for g in group[1:]]
        assert [r.previous_state for r in mine] == [g["state"] for g in group[:-1]]
        assert all(r.context_id is None and r.source is Source.BACKFILL for r in mine)
    light = [r for r in rows.records if r.entity_id == "light.bed_light"]
    assert [(r.previous_state, r.state) for r in light] == [("off", "on"), ("on", "off")]
    assert light[0].duration_in_state_s is None  # "off" since before start: unknown
    assert light[1].duration_in_state_s == pytest.approx(26.068281 - 22.067575)

    # A shorter span: the end is inclusive, later rows are left out.
    cut = light[0].time
    short = parse_history(response, Normalizer(clock=lambda: end / 1e6), start, cut, received_at=0)
    assert max(r.time for r in short.records) == cut
    assert ("light.bed_light", cut) in {(r.entity_id, r.time) for r in short.records}
