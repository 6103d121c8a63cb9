"""A fake Home Assistant 2024.3.3 for tests, the demo and benchmarks.

It speaks the real WebSocket protocol (auth, strictly increasing ids, coalesced array
frames, subscriptions, registry lists) and serves ``/api/history/period`` from its own
record of what it emitted. The house comes from :mod:`homeiq.ha.simulator_home`.

Speed matters: a benchmark pushes a million events through one connection. Each event is
built by formatting bytes around the entity's cached serialized state (the previous
``new_state`` is reused verbatim as the next ``old_state``), recorded in typed arrays, and
queued per connection; one writer task per connection joins up to ``COALESCE_MAX`` queued
messages into one JSON array frame and awaits the socket, which is the flow control.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import random
import re
from array import array
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, NamedTuple, Self, overload
from urllib.parse import unquote_plus

import orjson
from aiohttp import WSMsgType, web

from homeiq.ha.simulator_home import (
    K_AUTOMATION,
    K_LIGHT,
    K_MOTION,
    K_STATIC,
    STEPS,
    USER_KINDS,
    Area,
    Clock,
    Entity,
    Floor,
    Home,
    UlidMaker,
    dumps,
    iso_from_us,
    set_light,
    slugify,
)

log = logging.getLogger(__name__)

HA_VERSION: Final = "2024.3.3"
COALESCE_MAX: Final = 200  # messages per array frame
QUEUE_HIGH: Final = 2000  # rate=0 generation waits while a subscriber has this many queued
QUEUE_LOW: Final = 500  # ... and resumes once it is back down to this
CHUNK: Final = 512  # events generated between yields to the event loop
AUTH_TIMEOUT_S: Final = 10.0  # HA closes a connection that does not authenticate in time
CLOSE_TIMEOUT_S: Final = 1.0
US_PER_DAY: Final = 86_400_000_000
ATTRS_MAX_BYTES: Final = 16384  # HA's recorder refuses to store larger attributes

REGISTRY_EVENTS: Final = (
    "device_registry_updated",
    "entity_registry_updated",
    "area_registry_updated",
    "floor_registry_updated",
)
EVENT_TYPES: Final = ("state_changed", *REGISTRY_EVENTS)
# HA's recorder: these domains keep attribute-only rows in "significant" history and
# full rows in minimal responses.
_SIGNIFICANT_DOMAINS: Final = frozenset(
    {"climate", "device_tracker", "humidifier", "thermostat", "water_heater"}
)
_NEED_ATTRIBUTE_DOMAINS: Final = frozenset(
    {"climate", "humidifier", "input_datetime", "thermostat", "water_heater"}
)
# Attributes HA's light/climate integrations mark as unrecorded: live events carry them,
# history rows do not.
_UNRECORDED: Final = {
    "light": frozenset(
        {
            "min_color_temp_kelvin",
            "max_color_temp_kelvin",
            "min_mireds",
            "max_mireds",
            "effect_list",
            "supported_color_modes",
            "supported_features",
        }
    ),
    "climate": frozenset(
        {"hvac_modes", "min_temp", "max_temp", "target_temp_step", "supported_features"}
    ),
}
_ENTITY_ID_RE: Final = re.compile(r"^(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)$")

_STATE_FMT: Final = (
    b'{"entity_id":"%b","state":%b,"attributes":%b,'
    b'"last_changed":"%b","last_updated":"%b","context":%b}'
)
_MSG_FMT: Final = b'{"type":"event","event":%b,"id":%b}'
# The whole message in one format: one copy of ~1 KB per subscriber instead of two.
_FULL_FMT: Final = (
    b'{"type":"event","event":{"event_type":"state_changed","data":{"entity_id":"%b",'
    b'"old_state":%b,"new_state":%b},"origin":"LOCAL","time_fired":"%b","context":%b},"id":%b}'
)
_CTX_FMT: Final = b'{"id":"%b","parent_id":%b,"user_id":%b}'
_CTX_TAIL_NULL: Final = b'","parent_id":null,"user_id":null}'


class _Raw(bytes):
    """A frame queued by :meth:`Simulator.inject_raw`: sent alone and verbatim."""


@dataclass(slots=True)
class SimStats:
    """Counters of what the simulator did."""

    events: int = 0  # state_changed events emitted (recorded in ``emitted``)
    delivered: int = 0  # state_changed messages queued to subscribers (one per subscription)
    registry_events: int = 0
    frames_sent: int = 0
    messages_sent: int = 0
    bytes_sent: int = 0
    connections_total: int = 0
    auth_ok: int = 0
    auth_invalid: int = 0
    dropped_connections: int = 0
    slow_client_drops: int = 0
    injected_frames: int = 0
    history_requests: int = 0


class EmittedEvent(NamedTuple):
    """One state_changed the simulator produced."""

    entity_id: str
    last_updated: str
    context_id: str
    parent_id: str | None
    user_id: str | None
    state: str | None  # None for a removal (new_state null)
    time_us: int


class _Log:
    """Columnar record of every state the simulator set: history and ``emitted`` read it."""

    __slots__ = (
        "at",
        "attrs",
        "attrs_ix",
        "cx",
        "cx_ms",
        "cx_parent",
        "cx_user",
        "ent",
        "lc",
        "st",
        "state_ix",
        "state_json",
        "states",
        "ts",
    )

    def __init__(self) -> None:
        # Typed arrays, not tuples: ~40 bytes per event instead of ~300 at a million events.
        self.ent = array("I")
        self.ts = array("q")  # last_updated, µs
        self.lc = array("q")  # last_changed, µs
        self.st = array("i")  # index into states; -1 is a removal
        self.cx = array("I")  # context number
        self.attrs_ix: dict[bytes, int] = {b"{}": 0}
        self.attrs: list[bytes] = [b"{}"]
        self.at = array("I")  # index into attrs
        self.state_ix: dict[str, int] = {}
        self.states: list[str] = []
        self.state_json: list[bytes] = []
        self.cx_ms = array("q")
        # Most contexts have neither parent nor user: keep those two sparse.
        self.cx_parent: dict[int, int] = {}
        self.cx_user: dict[int, int] = {}

    def intern_state(self, state: str) -> int:
        """Index of ``state`` in ``states`` (and its JSON in ``state_json``), added if new."""
        idx = self.state_ix.get(state)
        if idx is None:
            idx = self.state_ix[state] = len(self.states)
            self.states.append(state)
            self.state_json.append(dumps(state))
        return idx

    def intern_attrs(self, attrs_json: bytes) -> int:
        """Index of these serialized attributes in ``attrs``, added if new."""
        idx = self.attrs_ix.get(attrs_json)
        if idx is None:
            kept = bytes(memoryview(attrs_json))  # see simulator_home.dumps
            idx = self.attrs_ix[kept] = len(self.attrs)
            self.attrs.append(kept)
        return idx

    def record(self, ent: Entity, ts: int, lc: int, st: int, at: int, cx: int) -> None:
        """Append one row (the hot path inlines this in ``Simulator._commit``)."""
        self.ent.append(ent.idx)
        self.ts.append(ts)
        self.lc.append(lc)
        self.st.append(st)
        self.at.append(at)
        self.cx.append(cx)
        ent.rows.append(len(self.ts) - 1)


class Emitted(Sequence[EmittedEvent]):
    """Every state_changed the simulator emitted, in order (a view over its record)."""

    def __init__(self, sim: Simulator, base: int) -> None:
        self._sim = sim
        self._base = base  # rows before this are initial states, never sent

    def __len__(self) -> int:
        return len(self._sim._log.ts) - self._base

    @overload
    def __getitem__(self, index: int) -> EmittedEvent: ...
    @overload
    def __getitem__(self, index: slice) -> list[EmittedEvent]: ...
    def __getitem__(self, index: int | slice) -> EmittedEvent | list[EmittedEvent]:
        """One event, or a list for a slice."""
        if isinstance(index, slice):
            return [self._row(i) for i in range(*index.indices(len(self)))]
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(index)
        return self._row(index)

    def __iter__(self) -> Iterator[EmittedEvent]:
        """Iterate in emission order."""
        for i in range(len(self)):
            yield self._row(i)

    def _row(self, i: int) -> EmittedEvent:
        sim = self._sim
        lg = sim._log
        p = self._base + i
        st = lg.st[p]
        cx = lg.cx[p]
        parent = lg.cx_parent.get(cx, -1)
        user = lg.cx_user.get(cx, -1)
        return EmittedEvent(
            entity_id=sim._entities[lg.ent[p]].entity_id,
            last_updated=iso_from_us(lg.ts[p]),
            context_id=sim._ctx_id(cx),
            parent_id=sim._ctx_id(parent) if parent >= 0 else None,
            user_id=sim._users[user] if user >= 0 else None,
            state=lg.states[st] if st >= 0 else None,
            time_us=lg.ts[p],
        )

    def keys(self) -> set[tuple[str, str]]:
        """``{(entity_id, last_updated ISO)}``: the idempotency keys of everything emitted."""
        sim = self._sim
        lg = sim._log
        ents = sim._entities
        return {
            (ents[lg.ent[p]].entity_id, iso_from_us(lg.ts[p]))
            for p in range(self._base, len(lg.ts))
        }


class _Conn:
    """One WebSocket client: its send queue, subscriptions and writer task."""

    __slots__ = (
        "authed",
        "closing",
        "coalesce",
        "drained",
        "last_id",
        "queue",
        "raw_pending",
        "request",
        "subs",
        "wake",
        "writer",
        "ws",
    )

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.request = request
        self.queue: deque[bytes] = deque()
        self.wake = asyncio.Event()
        self.drained = asyncio.Event()
        self.coalesce = False
        self.authed = False
        self.closing = False
        self.last_id = 0
        self.raw_pending = 0
        self.subs: dict[int, str] = {}
        self.writer: asyncio.Task[None] | None = None

    def push(self, msg: bytes) -> None:
        """Queue one message and wake the writer."""
        self.queue.append(msg)
        self.wake.set()

    def abort(self) -> None:
        """Cut the TCP connection without a close frame, like a crash or network loss."""
        self.closing = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        self.drained.set()


Ctx = tuple[int, bytes]  # (context number, serialized context)


class Simulator:
    """A fake Home Assistant 2024.3.3: WebSocket API, REST history and a generated home.

    ``rate`` is state_changed events per second, or 0 for as fast as the subscribers take
    them (rate 0 idles while nobody is subscribed to state_changed). ``count`` stops the
    stream after that many generated events; connections stay open.
    """

    def __init__(
        self,
        *,
        seed: int = 1,
        token: str = "sim-token",  # noqa: S107 - a throw-away token for a local fake
        rate: float = 10.0,
        count: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        entities: int = 160,
        history_keep_s: float = 86400.0,
    ) -> None:
        if rate < 0:
            raise ValueError("rate must be >= 0")
        self.seed = seed
        self.token = token
        self.count = count
        self.host = host
        self.port = port
        self.history_keep_s = history_keep_s
        self.reject_tokens = False
        # HA drops a subscriber that leaves 4096 messages pending; None keeps them queued.
        self.slow_client_limit: int | None = None
        # Per-message deflate costs more CPU than the whole simulator; HA would negotiate it.
        self.compress = False
        self._stats = SimStats()
        self.home = Home(seed, entities)
        self._rate = float(rate)
        self._rebase = False
        self._rng = random.Random(seed * 31 + 1)  # the event stream, nothing else
        self._clock = Clock()
        self._ulid = UlidMaker(seed)
        self._log = _Log()
        self._entities: list[Entity] = list(self.home.entities)
        self._by_id = {e.entity_id: e for e in self._entities}
        self._pick = self.home.pick_table()
        self._users = list(self.home.users)
        self._user_ix = {u: i for i, u in enumerate(self._users)}
        self._user_json = [orjson.dumps(u) for u in self._users]
        self._conns: set[_Conn] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._targets: dict[str, list[tuple[_Conn, bytes]]] = {}
        # (queue.append, subscription id) of every state_changed subscription.
        self._sc_targets: list[tuple[Callable[[bytes], None], bytes]] = []
        self._has_subscriber = asyncio.Event()
        self._running = asyncio.Event()
        self._running.set()
        self._finished = asyncio.Event()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._streamed = 0
        self._task: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self._bound_port = 0
        self._hist_attrs: dict[tuple[int, str], orjson.Fragment] = {}
        self._fake_ctx = UlidMaker.COUNTER_LIMIT - 1
        self._init_states()
        self.emitted = Emitted(self, len(self._log.ts))

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the HTTP server and start the event stream."""
        app = web.Application()
        app.router.add_get("/api/websocket", self._ws_handler)
        app.router.add_get("/api/", self._api_root)
        app.router.add_get("/api/config", self._api_config)
        app.router.add_get("/api/states", self._api_states)
        app.router.add_get("/api/states/{entity_id}", self._api_state_get)
        app.router.add_post("/api/states/{entity_id}", self._api_state_post)
        app.router.add_delete("/api/states/{entity_id}", self._api_state_delete)
        app.router.add_get("/api/history/period", self._api_history)
        app.router.add_get("/api/history/period/{start}", self._api_history)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=CLOSE_TIMEOUT_S)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self._bound_port = sockets[0].getsockname()[1] if sockets else self.port
        self._task = asyncio.create_task(self._run(), name="homeiq-simulator")
        log.info("simulated Home Assistant at %s (%d entities)", self.url, len(self._entities))

    async def stop(self) -> None:
        """Stop generating, close every connection and the server; leaves no task behind."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        conns = list(self._conns)
        for conn in conns:
            conn.closing = True
        if conns:
            closing = [asyncio.ensure_future(c.ws.close()) for c in conns]
            _, pending = await asyncio.wait(closing, timeout=CLOSE_TIMEOUT_S)
            for fut in pending:
                fut.cancel()
            await asyncio.gather(*closing, return_exceptions=True)
            for conn in conns:
                conn.abort()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=CLOSE_TIMEOUT_S)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for _, waiter in self._waiters:
            waiter.cancel()
        self._waiters.clear()

    async def __aenter__(self) -> Self:
        """Start on entering ``async with``."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop on leaving ``async with``."""
        await self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8123``."""
        return f"http://{self.host}:{self._bound_port}"

    @property
    def ws_url(self) -> str:
        """The WebSocket API URL."""
        return f"ws://{self.host}:{self._bound_port}/api/websocket"

    @property
    def rate(self) -> float:
        """Events per second; 0 is as fast as subscribers take them."""
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        if value < 0:
            raise ValueError("rate must be >= 0")
        self._rate = float(value)
        self._rebase = True

    @property
    def entity_ids(self) -> list[str]:
        """Entities that currently have a state."""
        return [e.entity_id for e in self._entities if not e.removed]

    @property
    def owner_user_id(self) -> str:
        """The user the token belongs to; REST writes and service calls carry it."""
        return self.home.owner_user_id

    @property
    def stats(self) -> SimStats:
        """Counters; ``events`` is read from the record, so it is always exact."""
        self._stats.events = len(self.emitted)
        return self._stats

    @property
    def emitted_count(self) -> int:
        """How many state_changed were emitted, whether or not anyone was subscribed."""
        return len(self.emitted)

    @property
    def active_connections(self) -> int:
        """WebSocket connections currently open."""
        return len(self._conns)

    @property
    def finished(self) -> bool:
        """True once ``count`` events were generated."""
        return self._finished.is_set()

    @property
    def paused(self) -> bool:
        """True while the stream is paused."""
        return not self._running.is_set()

    # --- hooks for tests ---------------------------------------------------------------

    def pause(self) -> None:
        """Stop the generated stream (hooks still emit)."""
        self._running.clear()

    def resume(self) -> None:
        """Resume the generated stream at the configured rate, without catching up."""
        self._running.set()

    def set_token(self, token: str) -> None:
        """Change the accepted token; open connections stay authenticated."""
        self.token = token

    def burst(self, n: int) -> int:
        """Emit exactly ``n`` generated events right now (not counted against ``count``)."""
        made = self._generate(n, n)
        self._after_batch()
        return made

    def drop_connections(self) -> int:
        """Abruptly close every client connection (no close frame); returns how many."""
        conns = list(self._conns)
        for conn in conns:
            conn.abort()
            self._forget(conn)
        self._stats.dropped_connections += len(conns)
        return len(conns)

    def inject_raw(self, frames: Iterable[str | bytes]) -> int:
        """Send text frames verbatim to every authenticated client; returns clients reached."""
        payloads = [_Raw(f.encode() if isinstance(f, str) else f) for f in frames]
        reached = 0
        for conn in self._conns:
            if conn.authed and not conn.closing:
                for frame in payloads:
                    conn.queue.append(frame)
                conn.raw_pending += len(payloads)
                conn.wake.set()
                reached += 1
        self._stats.injected_frames += reached * len(payloads)
        return reached

    def inject_event(
        self, event: Mapping[str, Any] | bytes, *, event_type: str = "state_changed"
    ) -> int:
        """Send an ``event`` object to that event type's subscribers, unrecorded; returns sends."""
        body = event if isinstance(event, bytes) else orjson.dumps(event)
        targets = self._targets.get(event_type) or self._targets.get("*", [])
        for conn, sid in targets:
            conn.push(_MSG_FMT % (body, sid))
        self._stats.injected_frames += len(targets)
        return len(targets)

    def fake_state_changed(
        self,
        entity_id: str,
        state: str,
        attributes: Mapping[str, Any] | None = None,
        *,
        last_updated: str | None = None,
        old_state: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A well-formed state_changed ``event`` object (for :meth:`inject_event`), unrecorded."""
        us = self._clock.now_us()
        when = last_updated or self._clock.iso(us).decode()
        ctx = {
            "id": self._ulid.make(us // 1000, self._next_fake_ctx()),
            "parent_id": None,
            "user_id": None,
        }
        new = {
            "entity_id": entity_id,
            "state": state,
            "attributes": dict(attributes or {}),
            "last_changed": when,
            "last_updated": when,
            "context": ctx,
        }
        return {
            "event_type": "state_changed",
            "data": {"entity_id": entity_id, "old_state": old_state, "new_state": new},
            "origin": "LOCAL",
            "time_fired": when,
            "context": ctx,
        }

    def get_state(self, entity_id: str) -> dict[str, Any] | None:
        """The current state object, as ``get_states`` would return it."""
        ent = self._by_id.get(entity_id)
        if ent is None or ent.state_json is None:
            return None
        state: dict[str, Any] = orjson.loads(ent.state_json)
        return state

    def set_state(
        self,
        entity_id: str,
        state: str,
        attributes: Mapping[str, Any] | None = None,
        *,
        user_id: str | None = None,
    ) -> bool:
        """Set a state like ``POST /api/states``; True if that created the entity.

        An entity set this way stops being driven by the generator. As in HA, an update
        with identical state and attributes fires no state_changed.
        """
        ent = self._by_id.get(entity_id)
        created = ent is None or ent.removed
        if ent is None:
            ent = self._new_entity(entity_id, "homeiq_sim", register=False)
        attrs = dict(attributes or {})
        attrs_json = orjson.dumps(attrs)
        if not created and ent.state == state and attrs_json == ent.attrs_json:
            return False
        prev = None if created else ent.state
        ent.removed = False
        ent.kind = K_STATIC
        ent.state = state
        ent.attrs = attrs
        us = self._clock.now_us()
        ctx = self._new_ctx(us // 1000, user=self._user_index(user_id))
        self._commit(ent, prev, attrs_json, ctx, us)
        self._after_batch()
        return created

    def create_entity(
        self,
        entity_id: str,
        state: str,
        attributes: Mapping[str, Any] | None = None,
        *,
        device_id: str | None = None,
        area_id: str | None = None,
        platform: str = "homeiq_sim",
        register: bool = True,
    ) -> None:
        """Add an entity: registry ``create`` (if registered), then old_state null."""
        existing = self._by_id.get(entity_id)
        if existing is not None and not existing.removed:
            raise ValueError(f"{entity_id} already exists")
        if device_id is not None and all(d.id != device_id for d in self.home.devices):
            raise KeyError(device_id)
        self._check_area(area_id)
        ent = existing or self._new_entity(entity_id, platform, register=register)
        ent.device_id = device_id
        ent.area_id = area_id
        if register:
            ent.registered = True
            self._fire("entity_registry_updated", {"action": "create", "entity_id": entity_id})
        self.set_state(entity_id, state, attributes)

    def remove_entity(self, entity_id: str, *, unregister: bool = True) -> None:
        """Remove an entity: registry ``remove`` (if registered), then new_state null."""
        ent = self._by_id.get(entity_id)
        if ent is None or ent.removed:
            raise KeyError(entity_id)
        if unregister and ent.registered:
            ent.registered = False
            self._fire("entity_registry_updated", {"action": "remove", "entity_id": entity_id})
        self._remove_state(ent)
        self._after_batch()

    def move_entity(self, entity_id: str, area_id: str | None) -> None:
        """Set the entity's own area; fires ``update`` with the *old* area in ``changes``."""
        ent = self._by_id.get(entity_id)
        if ent is None or not ent.registered:
            raise KeyError(entity_id)
        self._check_area(area_id)
        old, ent.area_id = ent.area_id, area_id
        self._fire(
            "entity_registry_updated",
            {"action": "update", "entity_id": entity_id, "changes": {"area_id": old}},
        )

    def move_device(self, device_id: str, area_id: str | None) -> None:
        """Set a device's area; fires ``device_registry_updated`` with the old area."""
        device = next((d for d in self.home.devices if d.id == device_id), None)
        if device is None:
            raise KeyError(device_id)
        self._check_area(area_id)
        old, device.area_id = device.area_id, area_id
        self._fire(
            "device_registry_updated",
            {"action": "update", "device_id": device_id, "changes": {"area_id": old}},
        )

    def create_area(
        self, name: str, *, floor_id: str | None = None, area_id: str | None = None
    ) -> str:
        """Add an area (``area_registry_updated`` create); returns its id."""
        area_id = area_id or slugify(name)
        if any(a.area_id == area_id for a in self.home.areas):
            raise ValueError(f"area {area_id} exists")
        if floor_id is not None and all(f.floor_id != floor_id for f in self.home.floors):
            raise KeyError(floor_id)
        self.home.areas.append(Area(area_id, name, floor_id))
        self._fire("area_registry_updated", {"action": "create", "area_id": area_id})
        return area_id

    def create_floor(self, name: str, level: int, *, floor_id: str | None = None) -> str:
        """Add a floor (``floor_registry_updated`` create); returns its id."""
        floor_id = floor_id or slugify(name)
        if any(f.floor_id == floor_id for f in self.home.floors):
            raise ValueError(f"floor {floor_id} exists")
        self.home.floors.append(Floor(floor_id, name, level))
        self._fire("floor_registry_updated", {"action": "create", "floor_id": floor_id})
        return floor_id

    async def wait_emitted(self, n: int, timeout: float) -> None:  # noqa: ASYNC109
        """Wait until at least ``n`` state_changed were emitted; TimeoutError otherwise."""
        if len(self.emitted) >= n:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (n, fut)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(fut, timeout)
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    async def wait_finished(self, timeout: float) -> None:  # noqa: ASYNC109
        """Wait until ``count`` events were generated."""
        await asyncio.wait_for(self._finished.wait(), timeout)

    # --- generation ------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        base = 0  # events made since t0, to pace against the clock without drift
        while True:
            if self.count is not None and self._streamed >= self.count:
                self._finished.set()
                return
            if not self._running.is_set():
                await self._running.wait()
                t0, base = loop.time(), 0
                continue
            if self._rebase:
                self._rebase = False
                t0, base = loop.time(), 0
            cap = None if self.count is None else self.count - self._streamed
            left = CHUNK if cap is None else min(CHUNK, cap)
            if self._rate <= 0:
                if not self._sc_targets:
                    await self._has_subscriber.wait()
                    continue
                if await self._backpressure():
                    continue
                n = left
            else:
                due = int((loop.time() - t0) * self._rate) - base
                if due <= 0:
                    await asyncio.sleep(max(0.001, (base + 1) / self._rate - (loop.time() - t0)))
                    continue
                n = min(due, left)
            made = self._generate(n, cap)
            base += made
            self._streamed += made
            self._after_batch()
            await asyncio.sleep(0)

    async def _backpressure(self) -> bool:
        """Wait for a subscriber that fell behind; True if it had to wait."""
        for conn, _ in self._targets.get("state_changed", []):
            if len(conn.queue) > QUEUE_HIGH and not conn.closing:
                conn.drained.clear()
                await conn.drained.wait()
                return True
        return False

    def _generate(self, n: int, cap: int | None) -> int:
        """Make at least ``n`` events; automation runs may overshoot, but never past ``cap``."""
        # Locals for everything the loop touches: attribute lookups are a real cost here.
        rng = self._rng
        rnd = rng.random
        table = self._pick
        size = len(table)
        users = len(self.home.users)
        user_json = self._user_json
        now_us = self._clock.now_us
        make_ulid = self._ulid.make_b
        cx_ms = self._log.cx_ms
        cx_user = self._log.cx_user
        commit = self._commit
        steps = STEPS
        done = 0
        misses = 0
        while done < n:
            ent = table[int(rnd() * size)]
            kind = ent.kind
            if ent.removed or kind == K_STATIC:
                misses += 1
                if misses > 10_000:  # everything removed or frozen: nothing left to move
                    break
                continue
            if kind == K_AUTOMATION:
                # Runs come in threes; at low rates n is 1, so only the cap may stop them.
                if cap is None or cap - done >= 3:
                    done += self._run_automation(ent, -1)
                continue
            prev = ent.state
            attrs_json = steps[kind](ent, rng)
            us = now_us()
            # _new_ctx, inlined for the common case (no parent).
            ms = us // 1000
            cx = len(cx_ms)
            cx_ms.append(ms)
            if kind in USER_KINDS and rnd() < 0.3:
                user = int(rnd() * users)
                cx_user[cx] = user
                cx_json = _CTX_FMT % (make_ulid(ms, cx), b"null", user_json[user])
            else:
                cx_json = b'{"id":"' + make_ulid(ms, cx) + _CTX_TAIL_NULL
            commit(ent, prev, attrs_json, (cx, cx_json), us)
            done += 1
            auto = ent.automation
            if (
                kind == K_MOTION
                and auto is not None
                and ent.state == "on"
                and (cap is None or cap - done >= 3)
                and not auto.removed
            ):
                done += self._run_automation(auto, cx)
        return done

    def _run_automation(self, auto: Entity, parent: int) -> int:
        """One automation run: ``current`` 1, the action, ``current`` 0, all in one context."""
        clock = self._clock
        us = clock.now_us()
        ctx = self._new_ctx(us // 1000, parent=parent)
        auto.attrs = {**auto.attrs, "last_triggered": clock.iso(us).decode(), "current": 1}
        self._commit(auto, auto.state, orjson.dumps(auto.attrs), ctx, clock.now_us())
        made = 1
        target = auto.target
        if target is not None and not target.removed:
            prev = target.state
            if target.kind == K_LIGHT:
                old = target.attrs.get("brightness")
                bright = self._rng.randint(80, 255)
                attrs_json: bytes | None = set_light(
                    target, bright if bright != old else (bright % 255) + 1, self._rng.randrange(4)
                )
            else:
                target.state = "off" if target.state == "on" else "on"
                attrs_json = None
            self._commit(target, prev, attrs_json, ctx, clock.now_us())
            made += 1
        auto.attrs = {**auto.attrs, "current": 0}
        self._commit(auto, auto.state, orjson.dumps(auto.attrs), ctx, clock.now_us())
        return made + 1

    def _new_ctx(self, ms: int, *, parent: int = -1, user: int = -1) -> Ctx:
        lg = self._log
        n = len(lg.cx_ms)
        lg.cx_ms.append(ms)
        if parent >= 0:
            lg.cx_parent[n] = parent
        if user >= 0:
            lg.cx_user[n] = user
        cid = self._ulid.make_b(ms, n)
        if parent < 0 and user < 0:
            return n, b'{"id":"' + cid + _CTX_TAIL_NULL
        pid = b'"%b"' % self._ctx_id(parent).encode() if parent >= 0 else b"null"
        uid = self._user_json[user] if user >= 0 else b"null"
        return n, _CTX_FMT % (cid, pid, uid)

    def _next_fake_ctx(self) -> int:
        # Unrecorded contexts count down from the top of the counter space: never reused.
        self._fake_ctx -= 1
        return self._fake_ctx

    def _ctx_id(self, n: int) -> str:
        return self._ulid.make(self._log.cx_ms[n], n)

    def _ctx_json(self, n: int) -> dict[str, Any]:
        lg = self._log
        parent, user = lg.cx_parent.get(n, -1), lg.cx_user.get(n, -1)
        return {
            "id": self._ctx_id(n),
            "parent_id": self._ctx_id(parent) if parent >= 0 else None,
            "user_id": self._users[user] if user >= 0 else None,
        }

    def _user_index(self, user_id: str | None) -> int:
        if user_id is None:
            return -1
        idx = self._user_ix.get(user_id)
        if idx is None:
            idx = self._user_ix[user_id] = len(self._users)
            self._users.append(user_id)
            self._user_json.append(orjson.dumps(user_id))
        return idx

    def _commit(
        self, ent: Entity, prev: str | None, attrs_json: bytes | None, ctx: Ctx, us: int
    ) -> None:
        """Make ``ent``'s mutated state current: record it and send the state_changed.

        ``prev`` is the state before (None: the entity is new); ``attrs_json`` the new
        serialized attributes, or None when they did not change.
        """
        # The hot path of the simulator: keep it to a few formats and appends.
        lg = self._log
        iso = self._clock.iso(us)
        state = ent.state
        if prev != state or prev is None:
            ent.last_changed_b = iso
            ent.last_changed_us = us
        if attrs_json is not None:
            ent.attrs_idx = ai = lg.intern_attrs(attrs_json)
            ent.attrs_json = lg.attrs[ai]
        si = lg.state_ix.get(state)
        if si is None:
            si = lg.intern_state(state)
        cx, cx_json = ctx
        eid = ent.eid_b
        new = _STATE_FMT % (
            eid,
            lg.state_json[si],
            ent.attrs_json,
            ent.last_changed_b,
            iso,
            cx_json,
        )
        old = ent.state_json
        ent.state_json = new
        lg.ent.append(ent.idx)
        lg.ts.append(us)
        lg.lc.append(ent.last_changed_us)
        lg.st.append(si)
        lg.at.append(ent.attrs_idx)
        lg.cx.append(cx)
        ent.rows.append(len(lg.ts) - 1)
        targets = self._sc_targets
        if targets:
            self._stats.delivered += len(targets)
        for add, sid in targets:
            # Writers are woken once per batch (_after_batch), not per message.
            add(_FULL_FMT % (eid, b"null" if old is None else old, new, iso, cx_json, sid))

    def _remove_state(self, ent: Entity) -> None:
        us = self._clock.now_us()
        cx, cx_json = self._new_ctx(us // 1000)
        iso = self._clock.iso(us)
        old = ent.state_json or b"null"
        ent.state_json = None
        ent.removed = True
        self._log.record(ent, us, us, -1, 0, cx)
        self._stats.delivered += len(self._sc_targets)
        for add, sid in self._sc_targets:
            add(_FULL_FMT % (ent.eid_b, old, b"null", iso, cx_json, sid))

    def _fire(self, event_type: str, data: dict[str, Any]) -> None:
        """Send a registry event with a fresh context, as HA does."""
        us = self._clock.now_us()
        _, cx_json = self._new_ctx(us // 1000)
        body = b'{"event_type":"%b","data":%b,"origin":"LOCAL","time_fired":"%b","context":%b}' % (
            event_type.encode(),
            orjson.dumps(data),
            self._clock.iso(us),
            cx_json,
        )
        self._stats.registry_events += 1
        for conn, sid in self._targets.get(event_type, []):
            conn.push(_MSG_FMT % (body, sid))

    def _after_batch(self) -> None:
        """Wake the writers, then anyone waiting on the emitted count, then police queues."""
        for conn in self._conns:
            if conn.queue:
                conn.wake.set()
        if self._waiters:
            have = len(self.emitted)
            for n, fut in list(self._waiters):
                if have >= n and not fut.done():
                    fut.set_result(None)
        limit = self.slow_client_limit
        if limit is not None:
            for conn in list(self._conns):
                if len(conn.queue) > limit:
                    # What HA does to a reader that cannot keep up: drop it.
                    log.info("dropping a client with %d pending messages", len(conn.queue))
                    self._stats.slow_client_drops += 1
                    conn.abort()
                    self._forget(conn)

    def _new_entity(self, entity_id: str, platform: str, *, register: bool) -> Entity:
        ent = Entity(entity_id, K_STATIC, platform)
        ent.eid_b = orjson.dumps(entity_id)[1:-1]
        ent.idx = len(self._entities)
        ent.registered = register
        ent.removed = True
        ent.original_name = entity_id.partition(".")[2].replace("_", " ").capitalize()
        ent.unique_id = f"sim-{ent.idx}"
        ent.reg_id = f"{random.Random(self.seed * 1_000_003 + ent.idx).getrandbits(128):032x}"
        self._entities.append(ent)
        self._by_id[entity_id] = ent
        return ent

    def _check_area(self, area_id: str | None) -> None:
        if area_id is not None and all(a.area_id != area_id for a in self.home.areas):
            raise KeyError(area_id)

    def _init_states(self) -> None:
        """Give every entity its starting state, recorded (for history) but never sent."""
        rng = random.Random(self.seed * 131 + 7)
        now = self._clock.now_us()
        self._empty_ctx = {
            "id": self._ulid.make(now // 1000, UlidMaker.COUNTER_LIMIT - 1),
            "parent_id": None,
            "user_id": None,
        }
        starts = sorted((now - int(rng.uniform(60.0, 3600.0) * 1e6), e.idx) for e in self._entities)
        for us, idx in starts:
            ent = self._entities[idx]
            if ent.kind == K_AUTOMATION or ent.domain == "automation":
                ent.attrs["last_triggered"] = iso_from_us(us - 3_600_000_000)
            ctx = self._new_ctx(us // 1000)
            self._commit(ent, None, orjson.dumps(ent.attrs), ctx, us)

    # --- WebSocket -------------------------------------------------------------------

    def _forget(self, conn: _Conn) -> None:
        conn.closing = True
        conn.drained.set()
        if conn in self._conns:
            self._conns.discard(conn)
            self._rebuild_targets()

    def _rebuild_targets(self) -> None:
        targets: dict[str, list[tuple[_Conn, bytes]]] = {}
        for conn in self._conns:
            if conn.closing:
                continue
            for sid, event_type in conn.subs.items():
                sid_b = str(sid).encode()
                for et in EVENT_TYPES if event_type == "*" else (event_type,):
                    targets.setdefault(et, []).append((conn, sid_b))
                if event_type == "*":
                    targets.setdefault("*", []).append((conn, sid_b))
        self._targets = targets
        self._sc_targets = [(c.queue.append, sid) for c, sid in targets.get("state_changed", [])]
        if self._sc_targets:
            self._has_subscriber.set()
        else:
            self._has_subscriber.clear()

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=55.0, compress=self.compress, timeout=CLOSE_TIMEOUT_S)
        await ws.prepare(request)
        conn = _Conn(ws, request)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        self._conns.add(conn)
        self._stats.connections_total += 1
        try:
            await ws.send_frame(
                b'{"type":"auth_required","ha_version":"%b"}' % HA_VERSION.encode(), WSMsgType.TEXT
            )
            if not await self._authenticate(conn):
                return ws
            conn.writer = asyncio.create_task(
                self._write_loop(conn), name="homeiq-simulator-writer"
            )
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT or conn.closing:
                    break
                try:
                    data = orjson.loads(msg.data)
                except orjson.JSONDecodeError:
                    # HA disconnects on a frame that is not JSON.
                    break
                for item in data if isinstance(data, list) else (data,):
                    self._handle(conn, item)
        except ConnectionError:
            pass
        finally:
            self._forget(conn)
            if conn.writer is not None:
                conn.writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await conn.writer
            if not ws.closed:
                with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
                    await ws.close()
            if task is not None:
                self._handlers.discard(task)
        return ws

    async def _authenticate(self, conn: _Conn) -> bool:
        ws = conn.ws
        try:
            msg = await ws.receive(timeout=AUTH_TIMEOUT_S)
        except TimeoutError:
            await ws.close()
            return False
        if msg.type is not WSMsgType.TEXT:
            return False
        try:
            data = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            data = None
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(data, dict) or data.get("type") != "auth" or not isinstance(token, str):
            reply: dict[str, Any] = {
                "type": "auth_invalid",
                "message": "Auth message incorrectly formatted: "
                "required key not provided @ data['access_token']",
            }
            ok = False
        elif self.reject_tokens or not hmac.compare_digest(token.encode(), self.token.encode()):
            reply, ok = {"type": "auth_invalid", "message": "Invalid access"}, False
        else:
            reply, ok = {"type": "auth_ok", "ha_version": HA_VERSION}, True
        await ws.send_frame(orjson.dumps(reply), WSMsgType.TEXT)
        if ok:
            self._stats.auth_ok += 1
            conn.authed = True
        else:
            self._stats.auth_invalid += 1
            await ws.close()
        return ok

    async def _write_loop(self, conn: _Conn) -> None:
        queue = conn.queue
        ws = conn.ws
        stats = self._stats
        text = WSMsgType.TEXT
        pop = queue.popleft
        try:
            while not conn.closing:
                if not queue:
                    conn.drained.set()
                    conn.wake.clear()
                    await conn.wake.wait()
                    continue
                if conn.raw_pending:
                    frame, n = self._take_mixed(conn)
                elif conn.coalesce and len(queue) > 1:
                    n = min(len(queue), COALESCE_MAX)
                    frame = b"[" + b",".join([pop() for _ in range(n)]) + b"]"
                else:
                    frame, n = pop(), 1
                await ws.send_frame(frame, text)
                stats.frames_sent += 1
                stats.messages_sent += n
                stats.bytes_sent += len(frame)
                if len(queue) <= QUEUE_LOW:
                    conn.drained.set()
        except (ConnectionError, RuntimeError):
            conn.abort()
        finally:
            conn.drained.set()

    def _take_mixed(self, conn: _Conn) -> tuple[bytes, int]:
        """Next frame when injected raw frames are queued: they go out alone, in order."""
        queue = conn.queue
        first = queue.popleft()
        if type(first) is _Raw:
            conn.raw_pending -= 1
            return bytes(first), 0
        if not conn.coalesce or not queue:
            return first, 1
        batch = [first]
        while queue and len(batch) < COALESCE_MAX and type(queue[0]) is not _Raw:
            batch.append(queue.popleft())
        return (b"[" + b",".join(batch) + b"]" if len(batch) > 1 else first), len(batch)

    def _result(self, conn: _Conn, msg_id: int, result: Any) -> None:
        conn.push(orjson.dumps({"id": msg_id, "type": "result", "success": True, "result": result}))

    def _error(self, conn: _Conn, msg_id: Any, code: str, message: str) -> None:
        conn.push(
            orjson.dumps(
                {
                    "id": msg_id,
                    "type": "result",
                    "success": False,
                    "error": {"code": code, "message": message},
                }
            )
        )

    def _handle(self, conn: _Conn, msg: Any) -> None:
        """One command, validated the way HA's ``ActiveConnection.async_handle`` does."""
        if (
            type(msg) is not dict
            or type(cur_id := msg.get("id")) is not int
            or not cur_id
            or type(kind := msg.get("type")) is not str
            or not kind
        ):
            msg_id = msg.get("id") if isinstance(msg, dict) else 0
            self._error(conn, msg_id, "invalid_format", "Message incorrectly formatted.")
            return
        if cur_id <= conn.last_id:
            self._error(conn, cur_id, "id_reuse", "Identifier values have to increase.")
            return
        handler = self._commands.get(kind)
        if handler is None:
            # HA leaves last_id alone for unknown commands.
            self._error(conn, cur_id, "unknown_command", "Unknown command.")
            return
        conn.last_id = cur_id
        try:
            handler(self, conn, cur_id, msg)
        except (KeyError, TypeError, ValueError) as exc:
            self._error(conn, cur_id, "invalid_format", f"{type(exc).__name__}: {exc}")

    def _cmd_supported_features(self, conn: _Conn, msg_id: int, msg: dict[str, Any]) -> None:
        features = msg.get("features")
        if not isinstance(features, dict):
            raise ValueError("features must be a dict")
        self._result(conn, msg_id, None)
        conn.coalesce = bool(features.get("coalesce_messages"))

    def _cmd_subscribe_events(self, conn: _Conn, msg_id: int, msg: dict[str, Any]) -> None:
        event_type = msg.get("event_type", "*")
        if not isinstance(event_type, str):
            raise ValueError("event_type must be a string")
        conn.subs[msg_id] = event_type
        self._rebuild_targets()
        self._result(conn, msg_id, None)

    def _cmd_unsubscribe_events(self, conn: _Conn, msg_id: int, msg: dict[str, Any]) -> None:
        sub = msg.get("subscription")
        if type(sub) is not int or sub not in conn.subs:
            self._error(conn, msg_id, "not_found", "Subscription not found.")
            return
        del conn.subs[sub]
        self._rebuild_targets()
        self._result(conn, msg_id, None)

    def _cmd_get_states(self, conn: _Conn, msg_id: int, msg: dict[str, Any]) -> None:
        states = [orjson.Fragment(e.state_json) for e in self._entities if e.state_json is not None]
        self._result(conn, msg_id, states)

    def _cmd_ping(self, conn: _Conn, msg_id: int, msg: dict[str, Any]) -> None:
        conn.push(b'{"id":%d,"type":"pong"}' % msg_id)

    def _cmd_get_config(self, conn: _Conn, msg_id: int, msg: dict[str, Any]) -> None:
        self._result(conn, msg_id, self._config())

    def _cmd_devices(self, conn: _Conn, msg_id: int, msg: dict[str, Any]) -> None:
        self._result(conn, msg_id, [d.entry() for d in self.home.devices])

    def _cmd_entities(self, conn: _Conn, msg_id: int, msg: dict[str, Any]) -> None:
        self._result(conn, msg_id, [e.registry_entry() for e in self._entities if e.registered])

    def _cmd_areas(self, conn: _Conn, msg_id: int, msg: dict[str, Any]) -> None:
        self._result(conn, msg_id, [a.entry() for a in self.home.areas])

    def _cmd_floors(self, conn: _Conn, msg_id: int, msg: dict[str, Any]) -> None:
        self._result(conn, msg_id, [f.entry() for f in self.home.floors])

    def _cmd_labels(self, conn: _Conn, msg_id: int, msg: dict[str, Any]) -> None:
        self._result(conn, msg_id, [])

    def _cmd_call_service(self, conn: _Conn, msg_id: int, msg: dict[str, Any]) -> None:
        """``turn_on``/``turn_off``/``toggle`` and ``automation.trigger``, with a user context."""
        domain, service = msg.get("domain"), msg.get("service")
        services = ("turn_on", "turn_off", "toggle")
        known = (domain in ("light", "switch", "input_boolean") and service in services) or (
            domain == "automation" and service == "trigger"
        )
        if not known:
            self._error(conn, msg_id, "not_found", f"Service {domain}.{service} not found.")
            return
        data = msg.get("service_data") or {}
        target = msg.get("target") or {}
        ids = data.get("entity_id") or target.get("entity_id") or []
        ids = [ids] if isinstance(ids, str) else list(ids)
        us = self._clock.now_us()
        owner = self._user_index(self.home.owner_user_id)
        cx, cx_json = ctx = self._new_ctx(us // 1000, user=owner)
        for entity_id in ids:
            ent = self._by_id.get(entity_id)
            if ent is None or ent.removed or ent.domain != domain:
                continue
            if domain == "automation":
                self._run_automation(ent, cx)
                continue
            prev = ent.state
            on = service == "turn_on" or (service == "toggle" and ent.state != "on")
            attrs_json: bytes | None = None
            if domain == "light" and "friendly_name" in ent.spec:
                bright = data.get("brightness", ent.attrs.get("brightness") or 255) if on else None
                attrs_json = set_light(ent, None if bright is None else int(bright), 0)
                if prev == ent.state and attrs_json == ent.attrs_json:
                    continue
            else:
                ent.state = "on" if on else "off"
                if prev == ent.state:
                    continue  # same state and attributes: HA fires no state_changed
            self._commit(ent, prev, attrs_json, ctx, self._clock.now_us())
        self._after_batch()
        self._result(conn, msg_id, {"context": orjson.loads(cx_json)})

    _commands: Final[dict[str, Callable[[Simulator, _Conn, int, dict[str, Any]], None]]] = {
        "supported_features": _cmd_supported_features,
        "subscribe_events": _cmd_subscribe_events,
        "unsubscribe_events": _cmd_unsubscribe_events,
        "get_states": _cmd_get_states,
        "get_config": _cmd_get_config,
        "ping": _cmd_ping,
        "call_service": _cmd_call_service,
        "config/device_registry/list": _cmd_devices,
        "config/entity_registry/list": _cmd_entities,
        "config/area_registry/list": _cmd_areas,
        "config/floor_registry/list": _cmd_floors,
        "config/label_registry/list": _cmd_labels,
    }

    # --- REST ------------------------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        return {
            "location_name": "HomeIQ Simulator",
            "time_zone": "UTC",
            "unit_system": {"length": "km", "mass": "g", "temperature": "°C", "volume": "L"},
            "version": HA_VERSION,
            "state": "RUNNING",
            "components": ["api", "automation", "history", "recorder", "websocket_api"],
        }

    def _authorize(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if (
            scheme != "Bearer"
            or self.reject_tokens
            or not hmac.compare_digest(token.encode(), self.token.encode())
        ):
            raise web.HTTPUnauthorized()

    @staticmethod
    def _json(data: Any, status: int = 200) -> web.Response:
        return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")

    async def _api_root(self, request: web.Request) -> web.Response:
        self._authorize(request)
        return self._json({"message": "API running."})

    async def _api_config(self, request: web.Request) -> web.Response:
        self._authorize(request)
        return self._json(self._config())

    async def _api_states(self, request: web.Request) -> web.Response:
        self._authorize(request)
        return self._json(
            [orjson.Fragment(e.state_json) for e in self._entities if e.state_json is not None]
        )

    async def _api_state_get(self, request: web.Request) -> web.Response:
        self._authorize(request)
        ent = self._by_id.get(request.match_info["entity_id"])
        if ent is None or ent.state_json is None:
            return self._json({"message": "Entity not found."}, 404)
        return self._json(orjson.Fragment(ent.state_json))

    async def _api_state_post(self, request: web.Request) -> web.Response:
        self._authorize(request)
        entity_id = request.match_info["entity_id"]
        if not _ENTITY_ID_RE.match(entity_id):
            return self._json({"message": "Invalid entity ID specified."}, 400)
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return self._json({"message": "Invalid JSON specified."}, 400)
        if not isinstance(body, dict) or (state := body.get("state")) is None:
            return self._json({"message": "No state specified."}, 400)
        attributes = body.get("attributes") or {}
        if not isinstance(attributes, dict):
            return self._json({"message": "Invalid attributes specified."}, 400)
        created = self.set_state(entity_id, str(state), attributes, user_id=self.home.owner_user_id)
        ent = self._by_id[entity_id]
        resp = self._json(orjson.Fragment(ent.state_json or b"null"), 201 if created else 200)
        resp.headers["Location"] = f"/api/states/{entity_id}"
        return resp

    async def _api_state_delete(self, request: web.Request) -> web.Response:
        self._authorize(request)
        ent = self._by_id.get(request.match_info["entity_id"])
        if ent is None or ent.removed:
            return self._json({"message": "Entity not found."}, 404)
        self._remove_state(ent)
        self._after_batch()
        return self._json({"message": "Entity removed."})

    async def _api_history(self, request: web.Request) -> web.Response:
        self._authorize(request)
        self._stats.history_requests += 1
        # Decode the raw path ourselves, form-style: an unencoded "+" of "+00:00" becomes
        # a space and the timestamp fails to parse, which is what a real HA answers too.
        raw = request.rel_url.raw_path.removeprefix("/api/history/period").lstrip("/")
        now = self._clock.now_us()
        if raw:
            start = _parse_time(unquote_plus(raw))
            if start is None:
                return self._json({"message": "Invalid datetime"}, 400)
        else:
            start = now - US_PER_DAY
        if (end_raw := request.query.get("end_time")) is not None:
            end = _parse_time(end_raw)
            if end is None:
                return self._json({"message": "Invalid end_time"}, 400)
        else:
            end = start + US_PER_DAY
        filt = request.query.get("filter_entity_id")
        if not filt:
            return self._json({"message": "filter_entity_id is missing"}, 400)
        entity_ids = filt.strip().lower().split(",")
        for entity_id in entity_ids:
            if entity_id not in self._by_id and not _ENTITY_ID_RE.match(entity_id):
                return self._json({"message": "Invalid filter_entity_id"}, 400)
        if start > now:
            return self._json([])
        rows = self.history(
            entity_ids,
            start,
            end,
            significant_changes_only=request.query.get("significant_changes_only", "1") != "0",
            minimal_response="minimal_response" in request.query,
            no_attributes="no_attributes" in request.query,
        )
        return self._json(rows)

    def history(
        self,
        entity_ids: Sequence[str],
        start_us: int,
        end_us: int,
        *,
        significant_changes_only: bool = True,
        minimal_response: bool = False,
        no_attributes: bool = False,
    ) -> list[list[dict[str, Any]]]:
        """What ``/api/history/period`` answers, from the record, honouring ``history_keep_s``."""
        lg = self._log
        key = lg.ts.__getitem__
        purged_before = self._clock.now_us() - int(self.history_keep_s * 1_000_000)
        out: list[list[dict[str, Any]]] = []
        for entity_id in entity_ids:
            ent = self._by_id.get(entity_id)
            if ent is None:
                continue
            pos = ent.rows
            lo = bisect_left(pos, purged_before, key=key)
            first = bisect_right(pos, start_us, lo=lo, key=key)
            stop = bisect_left(pos, end_us, lo=first, key=key)
            keep_all = ent.domain in _SIGNIFICANT_DOMAINS
            full_rows = not minimal_response or ent.domain in _NEED_ATTRIBUTE_DOMAINS
            rows: list[dict[str, Any]] = []
            prev: str | None = None
            if first > lo and lg.st[pos[first - 1]] >= 0:
                p = pos[first - 1]
                rows.append(self._history_row(ent, p, no_attributes, start_us))
                prev = lg.states[lg.st[p]]
            for j in range(first, stop):
                p = pos[j]
                st = lg.st[p]
                if st < 0:
                    prev = None
                    continue
                if significant_changes_only and not keep_all and lg.lc[p] != lg.ts[p]:
                    continue
                state = lg.states[st]
                if full_rows or not rows:
                    rows.append(self._history_row(ent, p, no_attributes, 0))
                elif state != prev:
                    rows.append({"state": state, "last_changed": iso_from_us(lg.ts[p])})
                prev = state
            if rows:
                out.append(rows)
        return out

    def _history_row(
        self, ent: Entity, p: int, no_attributes: bool, clamp_us: int
    ) -> dict[str, Any]:
        lg = self._log
        attrs: Any = {}
        if not no_attributes:
            cache_key = (lg.at[p], ent.domain)
            attrs = self._hist_attrs.get(cache_key)
            if attrs is None:
                raw = lg.attrs[lg.at[p]]
                if len(raw) > ATTRS_MAX_BYTES:
                    raw = b"{}"  # HA's recorder logs and stores no attributes
                elif (drop := _UNRECORDED.get(ent.domain)) is not None:
                    raw = dumps({k: v for k, v in orjson.loads(raw).items() if k not in drop})
                attrs = self._hist_attrs[cache_key] = orjson.Fragment(raw)
        return {
            "entity_id": ent.entity_id,
            "state": lg.states[lg.st[p]],
            "attributes": attrs,
            "last_changed": iso_from_us(max(lg.lc[p], clamp_us)),
            "last_updated": iso_from_us(max(lg.ts[p], clamp_us)),
            # HA's recorder does not keep contexts in history rows: a placeholder instead.
            "context": self._empty_ctx,
        }


def _parse_time(text: str) -> int | None:
    """ISO 8601 to µs since the epoch (naive means UTC); None if it does not parse."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def malformed_frames(sub_id: int) -> list[str]:
    """Frames a robust client must survive, for :meth:`Simulator.inject_raw`.

    ``sub_id`` is the client's state_changed subscription id, so the well-formed-looking
    ones reach the event path.
    """
    now = datetime.now(UTC).isoformat()
    future = "9999-12-31T23:59:59.999999+00:00"
    ctx = {"id": "01M8A9DZ3E3CN6M85B4ZCGEPS1", "parent_id": None, "user_id": None}

    def event(data: Any, time_fired: str = now) -> str:
        body = {
            "event_type": "state_changed",
            "data": data,
            "origin": "LOCAL",
            "time_fired": time_fired,
            "context": ctx,
        }
        return orjson.dumps({"type": "event", "event": body, "id": sub_id}).decode()

    def state(entity_id: Any, value: Any, attributes: Any, when: str = now) -> dict[str, Any]:
        return {
            "entity_id": entity_id,
            "state": value,
            "attributes": attributes,
            "last_changed": when,
            "last_updated": when,
            "context": ctx,
        }

    big = {"friendly_name": "Oversized", "blob": "x" * 300_000}
    return [
        '{"type":"event","event":{"event_type":"state_changed"',  # truncated JSON
        "not json at all",
        "[]",
        "42",
        "null",
        '{"type":"event"}',
        f'{{"type":"event","event":null,"id":{sub_id}}}',
        event(None),
        event({"entity_id": 42, "old_state": None, "new_state": "on"}),
        event({"entity_id": "sensor.x", "old_state": None, "new_state": {"state": "1"}}),
        event(
            {
                "entity_id": "Not An Entity",
                "old_state": None,
                "new_state": state("Not An Entity", "1", {}),
            }
        ),
        event(
            {
                "entity_id": "sensor.future",
                "old_state": None,
                "new_state": state("sensor.future", "1", {}, future),
            },
            future,
        ),
        event(
            {
                "entity_id": "sensor.bad_time",
                "old_state": None,
                "new_state": state("sensor.bad_time", "1", {}, "yesterday"),
            }
        ),
        event(
            {
                "entity_id": "sensor.attrs_list",
                "old_state": None,
                "new_state": state("sensor.attrs_list", "1", [1, 2]),
            }
        ),
        event(
            {
                "entity_id": "sensor.state_number",
                "old_state": None,
                "new_state": state("sensor.state_number", 21.5, {}),
            }
        ),
        event(
            {
                "entity_id": "sensor.oversized",
                "old_state": None,
                "new_state": state("sensor.oversized", "1", big),
            }
        ),
        '{"type":"event","event":{"event_type":"state_changed","data":{}},"id":987654}',
        '{"id":987654,"type":"result","success":true,"result":null}',
        '{"type":"mystery"}',
    ]


async def serve(
    *,
    seed: int = 1,
    token: str = "sim-token",  # noqa: S107 - a throw-away token for a local fake
    rate: float = 10.0,
    count: int | None = None,
    host: str = "127.0.0.1",
    port: int = 8123,
    entities: int = 160,
    history_keep_s: float = 86400.0,
) -> None:
    """Run a simulator until cancelled (``homeiq simulate``)."""
    async with Simulator(
        seed=seed,
        token=token,
        rate=rate,
        count=count,
        host=host,
        port=port,
        entities=entities,
        history_keep_s=history_keep_s,
    ) as sim:
        log.info("simulator ready: %s", sim.ws_url)
        await asyncio.Event().wait()
