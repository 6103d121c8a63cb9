"""Bad input: at least 10,000 generated malformed, oversized, wrongly typed and unknown
messages mixed into a valid stream. Through the real path (client -> queue -> normalizer
-> writer -> SQLite) against the simulator on 127.0.0.1: the process never crashes or
stalls, every valid event is stored exactly once, every bad message is dead-lettered with
the reason expected for it.

The bad messages come from seeded builders; each knows the reason code its message gets.
Two codes depend on the route a frame takes: a frame holding ``"result"``, ``"pong"`` or
``_registry_`` is parsed by the client (``HAClient._dispatch``), any other goes unparsed
to the writer. An event for a subscription nobody made is ``unexpected_event`` on the
first route and ``unexpected_event_type`` on the second (the writer only sees the event).

Two kinds of bad message once killed a pipeline task (ids that are lists or objects, and
JSON nested a thousand deep); they run as cases of their own (``UNHASHABLE_IDS``,
``DEEP_NESTING``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from homeiq.ha.simulator import Simulator
from homeiq.metadata.store import MetadataStore
from homeiq.pipeline.normalize import parse_time_us
from homeiq.runtime import Runtime
from homeiq.settings import ENV_PREFIX, load_settings
from homeiq.sinks.sqlite import SQLiteEventStore
from tests.support.wait import async_wait_until

SEED = 20240303
BAD_MESSAGES = 10_000  # at least this many bad messages
STREAM_RATE = 1500.0  # the simulator's own state changes per second, all along
FRAMES_PER_STEP = 25  # bad frames injected between two looks at the event loop
AFTER_BURST = 300  # generated events sent after the last bad frame
ATTRIBUTES_MAX_BYTES = 16_384  # the default cap; oversized attributes go past it
WAIT_S = 60.0  # generous: conditions, not timings, are what the test checks

Key = tuple[str, int]  # (entity_id, time in µs): what the store keys events on
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
OURS: Any = object()  # event(): on our state_changed subscription
_CLIENT_PARSES = ('"result"', '"pong"', "_registry_")  # see homeiq.ha.client._only_events


def _iso(us: int) -> str:
    return (_EPOCH + timedelta(microseconds=us)).isoformat()


def _client_parses(frame: str | bytes) -> bool:
    text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
    return any(marker in text for marker in _CLIENT_PARSES)


@dataclass(slots=True)
class Bad:
    """One bad message and the dead-letter reason it must get."""

    message: Any
    reason: str  # when the frame goes unparsed to the writer
    routed: str | None = None  # when the client parses the frame (None: same as reason)
    stored: Key | None = None  # attributes_too_large: stored without attributes as well
    text: str | None = None  # its JSON when orjson cannot write it (nesting too deep)

    def reason_for(self, client_parses: bool) -> str:
        return (self.routed or self.reason) if client_parses else self.reason

    def json(self) -> str:
        return self.text if self.text is not None else orjson.dumps(self.message).decode()


@dataclass(slots=True)
class Frame:
    """One WebSocket frame to inject, with what it must leave behind."""

    data: str | bytes
    reasons: list[str]
    stored: list[Key] = field(default_factory=list)
    binary: bool = False


class BadInput:
    """Seeded builders of bad messages and of the frames that carry them."""

    def __init__(self, seed: int, sub_id: int, now_us: int, crashers: tuple[str, ...]) -> None:
        self.rng = random.Random(seed)
        self.sub = sub_id
        self.when = _iso(now_us - 60_000_000)  # a valid time for messages bad otherwise
        self.now_us = now_us
        self._next_us = now_us - 3_600_000_000  # unique times of the events to be stored
        self._ctx = 0
        self.builders: list[tuple[float, Callable[[], Bad]]] = [
            (4, self.entity_id_wrong_type),
            (4, self.entity_id_invalid),
            (4, self.state_wrong_type),
            (3, self.state_too_long),
            (2, self.entity_id_mismatch),
            (4, self.timestamp_garbage),
            (3, self.timestamp_far_future),
            (3, self.timestamp_before_2000),
            (2, self.last_changed_garbage),
            (3, self.context_wrong),
            (3, self.attributes_wrong),
            (1, self.attributes_too_deep_to_store),
            (1.5, self.attributes_oversized),
            (2, self.new_state_wrong_type),
            (2, self.old_state_wrong_type),
            (2, self.no_state),
            (1, self.removal_bad_time),
            (2, self.data_wrong),
            (2, self.event_missing),
            (3, self.unknown_event_type),
            (3, self.unknown_message_type),
            (2, self.not_an_object),
            (1, self.big_numbers),
        ]
        if UNHASHABLE_IDS in crashers:
            self.builders.append((2, self.event_unhashable_subscription))
        if DEEP_NESTING in crashers:
            self.builders += [
                (1, self.deep_attributes),
                (1, self.deep_entity_id),
                (1, self.deep_event_type),
                (1, self.deep_new_state_entity_id),
            ]
        self.frame_kinds: list[tuple[float, Callable[[], Frame]]] = [
            (45, self.single),
            (15, lambda: self.mixed(client_parses=False)),
            (10, lambda: self.mixed(client_parses=True)),
            (5, self.unexpected_result),
            (10, self.invalid_json),
            (5, self.text_junk),
            (5, self.binary_junk),
            (1, self.empty_array),
        ]
        if UNHASHABLE_IDS in crashers:
            self.frame_kinds.append((3, self.result_unhashable_id))
        if DEEP_NESTING in crashers:
            self.frame_kinds.append((2, self.deep_array))
        self._pick_builder = self._chooser(self.builders)
        self._pick_frame = self._chooser(self.frame_kinds)
        self.ignored_frames = 0  # frames holding no message at all ("[]")

    def _chooser(self, weighted: list[tuple[float, Callable[[], Any]]]) -> Callable[[], Any]:
        weights = [w for w, _ in weighted]
        functions = [f for _, f in weighted]
        return lambda: self.rng.choices(functions, weights)[0]()

    def frames(self, at_least: int) -> Iterator[Frame]:
        """Frames until they hold ``at_least`` bad messages."""
        count = 0
        while count < at_least:
            frame = self._pick_frame()
            count += len(frame.reasons)
            yield frame

    # --- pieces ------------------------------------------------------------------------

    def _unique_time(self) -> tuple[str, int]:
        self._next_us += 1000
        return _iso(self._next_us), self._next_us

    def _context(self) -> dict[str, Any]:
        self._ctx += 1
        return {"id": f"01BADINPUT{self._ctx:016d}", "parent_id": None, "user_id": None}

    def _entity(self) -> str:
        return f"sensor.bad_input_{self.rng.randrange(40)}"

    def state(self, entity_id: Any, **fields: Any) -> dict[str, Any]:
        body = {
            "entity_id": entity_id,
            "state": str(self.rng.randint(0, 40)),
            "attributes": {"unit_of_measurement": "°C", "friendly_name": "Bad input"},
            "last_changed": self.when,
            "last_updated": self.when,
            "context": self._context(),
        }
        body.update(fields)
        return body

    def event(
        self,
        data: Any,
        *,
        event_type: Any = "state_changed",
        sub: Any = OURS,
        time_fired: str | None = None,
    ) -> dict[str, Any]:
        return {
            "type": "event",
            "event": {
                "event_type": event_type,
                "data": data,
                "origin": "LOCAL",
                "time_fired": time_fired or self.when,
                "context": self._context(),
            },
            "id": self.sub if sub is OURS else sub,
        }

    def changed(self, entity_id: Any, old_state: Any = None, **fields: Any) -> dict[str, Any]:
        """A state_changed, well formed but for ``fields`` of its new_state."""
        new_state = self.state(entity_id, **fields)
        return self.event({"entity_id": entity_id, "old_state": old_state, "new_state": new_state})

    def valid(self) -> tuple[dict[str, Any], Key]:
        """A valid state_changed (one in ten a removal) for the mixed frames."""
        entity_id = f"sensor.bad_input_valid_{self.rng.randrange(20)}"
        iso, us = self._unique_time()
        if self.rng.random() < 0.1:
            data = {"entity_id": entity_id, "old_state": self.state(entity_id), "new_state": None}
            return self.event(data, time_fired=iso), (entity_id, us)
        return self.changed(entity_id, last_changed=iso, last_updated=iso), (entity_id, us)

    # --- bad messages ------------------------------------------------------------------

    def entity_id_wrong_type(self) -> Bad:
        value = self.rng.choice(
            [self.rng.randint(-(10**9), 10**9), 2.5, ["sensor.a"], {"id": "sensor.a"}, True, None]
        )
        return Bad(self.changed(value), "bad_entity_id")

    def entity_id_invalid(self) -> Bad:
        value = self.rng.choice(
            [
                "Not An Entity",
                "sensor.",
                ".temperature",
                "sensor..x",
                "sensor.__x",
                "sensor_x",
                "SENSOR.X",
                "sensor.x_",
                "sensor.a-b",
                "sensor.caf\u00e9",
                "sensor." + "a" * self.rng.randint(249, 400),
                "",
            ]
        )
        return Bad(self.changed(value), "bad_entity_id")

    def state_wrong_type(self) -> Bad:
        value = self.rng.choice([{"value": 1}, 21.5, 7, ["on"], None, False])
        return Bad(self.changed(self._entity(), state=value), "bad_state")

    def state_too_long(self) -> Bad:
        value = self.rng.choice("ab1 ") * self.rng.randint(256, 4000)
        return Bad(self.changed(self._entity(), state=value), "state_too_long")

    def entity_id_mismatch(self) -> Bad:
        message = self.changed(self._entity())
        other = self.rng.choice(["sensor.someone_else", 42, ["x"], None])
        message["event"]["data"]["new_state"]["entity_id"] = other
        return Bad(message, "entity_id_mismatch")

    def timestamp_garbage(self) -> Bad:
        value = self.rng.choice(
            [
                "yesterday",
                "",
                "2024-13-45T99:00:00+00:00",
                "2024-03-01T12:00:00",  # no offset
                "2024-03-01 12:00:00 UTC",
                1_700_000_000,
                1.7e9,
                None,
                ["2024-03-01T12:00:00+00:00"],
                {"iso": "2024-03-01T12:00:00+00:00"},
            ]
        )
        entity_id = self._entity()
        return Bad(self.changed(entity_id, last_updated=value, last_changed=value), "bad_timestamp")

    def timestamp_far_future(self) -> Bad:
        ahead = self.now_us + self.rng.randint(86_400, 5 * 365 * 86_400) * 1_000_000
        value = self.rng.choice(
            [_iso(ahead), "9999-12-31T23:59:59.999999+00:00", "9999-12-31T23:59:59-14:00"]
        )
        message = self.changed(self._entity(), last_updated=value, last_changed=value)
        return Bad(message, "timestamp_in_future")

    def timestamp_before_2000(self) -> Bad:
        before = self.rng.randint(0, 946_684_799) * 1_000_000
        value = self.rng.choice(
            [
                _iso(before),
                "1999-12-31T23:59:59.999999+00:00",
                "1970-01-01T00:00:00+00:00",
                "0001-01-01T00:00:00+00:00",
                "2000-01-01T00:59:59+01:00",  # 1999 in UTC
            ]
        )
        message = self.changed(self._entity(), last_updated=value, last_changed=value)
        return Bad(message, "timestamp_too_old")

    def last_changed_garbage(self) -> Bad:
        value = self.rng.choice(["never", 0, "2024-02-30T00:00:00+00:00", {}])
        return Bad(self.changed(self._entity(), last_changed=value), "bad_timestamp")

    def context_wrong(self) -> Bad:
        value = self.rng.choice(
            [
                "01HXK5QG6V9Z8T0AB1CDEFGHJK",
                ["01HXK5QG6V9Z8T0AB1CDEFGHJK"],
                42,
                True,
                {"id": 42, "parent_id": None, "user_id": None},
                {"id": "x" * 65, "parent_id": None, "user_id": None},
                {"id": "01HXK5QG6V9Z8T0AB1CDEFGHJK", "parent_id": None, "user_id": ["u"]},
            ]
        )
        return Bad(self.changed(self._entity(), context=value), "bad_context")

    def attributes_wrong(self) -> Bad:
        value = self.rng.choice([[1, 2], "friendly", 42, True, None])
        return Bad(self.changed(self._entity(), attributes=value), "bad_attributes")

    def attributes_too_deep_to_store(self) -> Bad:
        """Parseable, but deeper than orjson writes (254): the normalizer cannot store it."""
        message = self.changed(self._entity(), attributes={"deep": "@DEEP@"})
        depth = self.rng.randint(260, 600)
        text = orjson.dumps(message).decode().replace('"@DEEP@"', "[" * depth + "]" * depth)
        return Bad(message, "bad_attributes", text=text)

    def attributes_oversized(self) -> Bad:
        """Stored without its attributes, and dead-lettered whole."""
        entity_id = f"sensor.bad_input_oversized_{self.rng.randrange(5)}"
        iso, us = self._unique_time()
        blob = "x" * self.rng.randint(ATTRIBUTES_MAX_BYTES + 16, 3 * ATTRIBUTES_MAX_BYTES)
        message = self.changed(
            entity_id, attributes={"blob": blob}, last_changed=iso, last_updated=iso
        )
        return Bad(message, "attributes_too_large", stored=(entity_id, us))

    def new_state_wrong_type(self) -> Bad:
        value = self.rng.choice(["on", ["on"], 1, True])
        data = {"entity_id": self._entity(), "old_state": None, "new_state": value}
        return Bad(self.event(data), "bad_new_state")

    def old_state_wrong_type(self) -> Bad:
        value = self.rng.choice(["off", ["off"], 0, False])
        return Bad(self.changed(self._entity(), old_state=value), "bad_old_state")

    def no_state(self) -> Bad:
        data = {"entity_id": self._entity(), "old_state": None, "new_state": None}
        return Bad(self.event(data), "no_state")

    def removal_bad_time(self) -> Bad:
        entity_id = self._entity()
        data = {"entity_id": entity_id, "old_state": self.state(entity_id), "new_state": None}
        return Bad(self.event(data, time_fired="soon"), "bad_timestamp")

    def data_wrong(self) -> Bad:
        return Bad(self.event(self.rng.choice([None, "data", [], 3])), "missing_data")

    def event_missing(self) -> Bad:
        body = self.rng.choice([None, "event", ["state_changed"], 7])
        if self.rng.random() < 0.2:  # not even a subscription id: the client cannot route it
            return Bad({"type": "event", "event": body}, "missing_event", "unexpected_event")
        message: dict[str, Any] = {"type": "event", "id": self.sub}
        if self.rng.random() < 0.7:
            message["event"] = body
        return Bad(message, "missing_event")

    def unknown_event_type(self) -> Bad:
        event_type = self.rng.choice(
            ["call_service", "automation_triggered", "", "STATE_CHANGED", 42, None, ["x"]]
        )
        entity_id = self._entity()
        data = {"entity_id": entity_id, "old_state": None, "new_state": self.state(entity_id)}
        if self.rng.random() < 0.5:  # on our subscription: it reaches the normalizer
            return Bad(self.event(data, event_type=event_type), "unexpected_event_type")
        sub = self.rng.choice([self.sub + 1000, 0, -1, "1", 2.5, None])
        message = self.event(data, event_type=event_type, sub=sub)
        return Bad(message, "unexpected_event_type", "unexpected_event")

    def unknown_message(self) -> dict[str, Any]:
        kind = self.rng.choice(
            ["mystery", "auth_ok", "auth_required", "subscribe_events", "", 42, None, ["event"]]
        )
        message: dict[str, Any] = {"id": self.rng.randint(1, 10**6), "payload": "?"}
        if self.rng.random() < 0.9:
            message["type"] = kind
        return message

    def unknown_message_type(self) -> Bad:
        return Bad(self.unknown_message(), "unknown_message")

    def not_an_object(self) -> Bad:
        value = self.rng.choice([42, 1.5, "event", None, True, []])
        if value == []:  # an array inside the frame's array: one message, not an object
            value = [self.valid()[0]]
        return Bad(value, "not_an_object")

    def big_numbers(self) -> Bad:
        """Integers past 64 bits: orjson reads them as floats; entity_id is not a string."""
        message = self.changed("sensor.placeholder")
        text = orjson.dumps(message).decode().replace('"sensor.placeholder"', str(10**30), 1)
        return Bad(message, "bad_entity_id", text=text)

    # Messages that once crashed a task ---------------------------------------------------

    def event_unhashable_subscription(self) -> Bad:
        """An event the client routes (frame parsed by it) with an unhashable ``id``."""
        entity_id = self._entity()
        data = {"entity_id": entity_id, "old_state": None, "new_state": self.state(entity_id)}
        sub = self.rng.choice([[self.sub], {"id": self.sub}])
        message = self.event(data, event_type="call_service", sub=sub)
        return Bad(message, "unexpected_event_type", "unexpected_event")

    def deep_attributes(self) -> Bad:
        message = self.changed(self._entity(), attributes={"deep": "@DEEP@"})
        text = orjson.dumps(message).decode().replace('"@DEEP@"', "[" * 1015 + "]" * 1015)
        return Bad(message, "bad_attributes", text=text)

    def deep_entity_id(self) -> Bad:
        message = self.changed("sensor.placeholder")
        deep = "[" * 1015 + "]" * 1015
        text = orjson.dumps(message).decode().replace('"sensor.placeholder"', deep, 1)
        return Bad(message, "bad_entity_id", text=text)

    def deep_event_type(self) -> Bad:
        message = self.changed(self._entity())
        message["event"]["event_type"] = "@DEEP@"
        text = orjson.dumps(message).decode().replace('"@DEEP@"', "[" * 1018 + "]" * 1018)
        return Bad(message, "unexpected_event_type", text=text)

    def deep_new_state_entity_id(self) -> Bad:
        message = self.changed(self._entity())
        message["event"]["data"]["new_state"]["entity_id"] = "@DEEP@"
        text = orjson.dumps(message).decode().replace('"@DEEP@"', "[" * 1015 + "]" * 1015)
        return Bad(message, "entity_id_mismatch", text=text)

    # --- frames ------------------------------------------------------------------------

    def single(self) -> Frame:
        bad = self._pick_builder()
        text = bad.json()
        if isinstance(bad.message, list):  # alone, a list would be the frame's array
            text = f"[{text}]"
        parsed_by_client = _client_parses(text)
        return Frame(text, [bad.reason_for(parsed_by_client)], [bad.stored] if bad.stored else [])

    def mixed(self, *, client_parses: bool) -> Frame:
        """An array of bad and valid messages; with an unexpected result the client parses it."""
        parts: list[str] = []
        reasons: list[str] = []
        stored: list[Key] = []
        for _ in range(self.rng.randint(2, 8)):
            bad = self._pick_builder()
            parts.append(bad.json())
            reasons.append(bad.reason_for(client_parses))
            if bad.stored:
                stored.append(bad.stored)
        for _ in range(self.rng.randint(1, 4)):
            message, key = self.valid()
            parts.append(orjson.dumps(message).decode())
            stored.append(key)
        if client_parses:
            parts.append(orjson.dumps(self._result_message()).decode())
            reasons.append("unexpected_result")
        self.rng.shuffle(parts)
        text = "[" + ",".join(parts) + "]"
        assert _client_parses(text) == client_parses, text[:200]
        return Frame(text, reasons, stored)

    def _result_message(self) -> dict[str, Any]:
        # Ids far above the client's own commands: nobody waits for these answers.
        msg_id = self.rng.choice([self.rng.randint(10_000, 10**9), None, "17", 2.5, -3])
        if self.rng.random() < 0.3:
            return {"id": msg_id, "type": "pong"}
        if self.rng.random() < 0.5:
            return {"id": msg_id, "type": "result", "success": True, "result": None}
        error = {"code": "unknown_error", "message": "?"}
        return {"id": msg_id, "type": "result", "success": False, "error": error}

    def unexpected_result(self) -> Frame:
        return Frame(orjson.dumps(self._result_message()).decode(), ["unexpected_result"])

    def invalid_json(self) -> Frame:
        source = orjson.dumps(self.changed(self._entity())).decode()
        text = self.rng.choice(
            [
                source[: self.rng.randint(1, len(source) - 1)],  # truncated
                source + "}",
                source.replace('":', "'':", 1),
                "not json at all",
                "{'single': 'quotes'}",
                '{"type":"event",}',
                '{"a" 1}',
                "[1, 2",
                "NaN",
                "-Infinity",
                "1e999",
                '"\\ud800"',  # a lone surrogate
                '"unterminated',
                "[" * 1100 + "]" * 1100,  # past the parser's depth limit
                "",
                "   \n",
                '{"type":"result","id":1',  # the client parses this one
                '[{"type":"pong"},',
            ]
        )
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(text)
        return Frame(text, ["invalid_json"])

    def text_junk(self) -> Frame:
        """Text that is no JSON at all: control characters, symbols, any script."""
        pool = [chr(c) for c in range(32)] + list('{}[]",:\\ ~#@é中文Ωß') + ["\U0001f600"]
        while True:
            text = "".join(self.rng.choice(pool) for _ in range(self.rng.randint(1, 300)))
            try:
                orjson.loads(text)
            except orjson.JSONDecodeError:
                return Frame(text, ["invalid_json"])

    def binary_junk(self) -> Frame:
        """A BINARY frame of random bytes (never valid UTF-8: it starts with 0xff)."""
        data = b"\xff" + self.rng.randbytes(self.rng.randint(0, 2000))
        return Frame(data, ["invalid_json"], binary=True)

    def empty_array(self) -> Frame:
        """``[]``: a frame holding no message, so there is nothing to dead-letter."""
        self.ignored_frames += 1
        return Frame("[]", [])

    def result_unhashable_id(self) -> Frame:
        msg_id = self.rng.choice([[1], {"id": 1}, [self.rng.randint(10_000, 10**9)]])
        message = {"id": msg_id, "type": self.rng.choice(["result", "pong"]), "success": True}
        return Frame(orjson.dumps(message).decode(), ["unexpected_result"])

    def deep_array(self) -> Frame:
        """A frame that is an array holding one array nested 1019 deep."""
        return Frame("[" * 1020 + "]" * 1020, ["not_an_object"])


UNHASHABLE_IDS = "unhashable_ids"
DEEP_NESTING = "deep_nesting"


def _alive(watch: asyncio.Task[None]) -> None:
    """Fail at once when a pipeline task (client or writer) has stopped."""
    if watch.done():
        raise AssertionError(
            f"a pipeline task stopped: {watch.exception()!r}"
        ) from watch.exception()


async def _stop(runtime: Runtime) -> None:
    await runtime.stop()  # closes the stores even when a task died


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No outside HOMEIQ_* variable changes the settings under test."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


@pytest.mark.slow
@pytest.mark.parametrize(
    "crashers",
    [
        pytest.param((), id="survivable"),
        pytest.param((UNHASHABLE_IDS,), id="unhashable-ids"),
        pytest.param((DEEP_NESTING,), id="deep-nesting"),
    ],
)
async def test_bad_messages_mixed_into_a_valid_stream(
    tmp_path: Path, crashers: tuple[str, ...]
) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        sqlite_writer="thread",
        batch_max_age_s=0.05,
        ha_reconnect_min_s=0.05,
        ha_reconnect_max_s=0.2,
        attributes_max_bytes=ATTRIBUTES_MAX_BYTES,
        backfill=False,  # live path only: history would add events the stream never sent
    )
    sim = Simulator(seed=SEED % 1000, rate=STREAM_RATE)
    await sim.start()
    sim.pause()  # the home holds still until HomeIQ is subscribed: every change is sent
    runtime = Runtime(settings)
    runtime.connect_to(sim.url, sim.token)
    expected_reasons: Counter[str] = Counter()
    extra_keys: list[Key] = []  # valid test-made events and oversized ones: stored too
    junk_payloads: Counter[bytes] = Counter()
    injected = 0
    try:
        await runtime.start()
        watch = asyncio.create_task(runtime.wait())
        try:
            await async_wait_until(
                lambda: _alive(watch) or runtime.stats().ha_connected,
                timeout=WAIT_S,
                message="the connection",
            )
            client = runtime.client
            assert client is not None and client._state_subscription is not None
            assert len(sim.emitted) == 0
            # The baseline snapshot (ha/snapshot.py) of the still home: every state, once.
            await async_wait_until(
                lambda: _alive(watch) or runtime.snapshot.taken == 1,
                timeout=WAIT_S,
                message="the state snapshot",
            )
            states = [sim.get_state(e) for e in sim.entity_ids]
            baseline = {
                (s["entity_id"], parse_time_us(s["last_updated"], "t")) for s in states if s
            }
            bad = BadInput(SEED, client._state_subscription, time.time_ns() // 1000, crashers)
            sim.resume()

            # The valid stream runs at STREAM_RATE throughout; between steps of bad frames
            # the simulator also sends bursts of its own events, so they interleave.
            frames = list(bad.frames(BAD_MESSAGES))
            for start in range(0, len(frames), FRAMES_PER_STEP):
                _alive(watch)
                sim.burst(bad.rng.randint(0, 12))
                for frame in frames[start : start + FRAMES_PER_STEP]:
                    assert sim.inject_raw([frame.data], binary=frame.binary) == 1
                    expected_reasons.update(frame.reasons)
                    extra_keys.extend(frame.stored)
                    if frame.reasons == ["invalid_json"]:
                        data = frame.data
                        junk_payloads[data.encode() if isinstance(data, str) else data] += 1
                    injected += 1
                await asyncio.sleep(0.005)
            bad_messages = sum(expected_reasons.values())
            assert bad_messages >= BAD_MESSAGES

            # The stream goes on after the last bad frame, and all of it is stored.
            last_bad = len(sim.emitted)
            sim.burst(AFTER_BURST)
            await sim.wait_emitted(last_bad + AFTER_BURST + 500, timeout=WAIT_S)
            sim.pause()
            emitted = {(e.entity_id, e.time_us) for e in sim.emitted}
            after = {(e.entity_id, e.time_us) for e in sim.emitted[last_bad:]}
            assert len(emitted) == len(sim.emitted), "simulator keys are unique"
            assert len(set(extra_keys)) == len(extra_keys)
            assert not emitted & set(extra_keys)
            assert not emitted & baseline
            expected = emitted | set(extra_keys) | baseline

            metrics = runtime.metrics
            await async_wait_until(
                lambda: (
                    _alive(watch)
                    or (
                        metrics.value("homeiq_events_stored_total") >= len(expected)
                        and metrics.rejected_total() >= bad_messages
                        and runtime.stats().queue_depth == 0
                    )
                ),
                timeout=WAIT_S,
                message="every event stored and every bad message dead-lettered",
            )
            # Never stalled, never crashed, never dropped: one connection from start to end.
            _alive(watch)
            assert runtime.stats().ha_connected
            assert sim.stats.connections_total == 1
            assert metrics.value("homeiq_ha_connects_total") == 1
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watch
    finally:
        await _stop(runtime)
        await sim.stop()

    # Every valid event stored, exactly once; nothing else stored.
    store = SQLiteEventStore.in_dir(tmp_path, readonly=True)
    try:
        keys = store.keys()
        rows = store.summary().total
    finally:
        store.close()
    assert len(keys) == rows
    missing, unexpected = expected - keys, keys - expected
    assert not missing and not unexpected, (len(missing), len(unexpected))
    assert after <= keys
    assert metrics.value("homeiq_events_stored_total") == len(expected)
    assert metrics.value("homeiq_events_duplicate_total") == 0

    # Every bad message dead-lettered once, with the reason expected for it.
    meta = MetadataStore.in_dir(tmp_path, readonly=True)
    try:
        counts = meta.dead_letter_counts()
        letters = meta.dead_letters(limit=bad_messages + 1000)
    finally:
        meta.close()
    assert counts == dict(expected_reasons)
    for reason, count in expected_reasons.items():
        assert metrics.value("homeiq_events_rejected_total", {"reason": reason}) == count, reason
    assert metrics.rejected_total() == bad_messages
    assert len(letters) == bad_messages
    assert all(letter.detail for letter in letters)
    assert all(letter.payload for letter in letters if letter.reason != "invalid_json")
    # The junk is kept verbatim, so it can be looked at later.
    kept = Counter(letter.payload for letter in letters if letter.reason == "invalid_json")
    assert kept == junk_payloads
    oversized = Counter(
        letter.entity_id for letter in letters if letter.reason == "attributes_too_large"
    )
    assert oversized == Counter(
        entity_id for entity_id, _ in extra_keys if "oversized" in entity_id
    )

    print(
        f"\n{injected} bad frames ({bad.ignored_frames} holding no message) with"
        f" {bad_messages} bad messages; {len(emitted)} simulator events and"
        f" {len(extra_keys)} other valid ones stored; reasons: {dict(sorted(counts.items()))}"
    )
