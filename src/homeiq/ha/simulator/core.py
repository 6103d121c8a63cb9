"""The simulated Home Assistant's core: its state, contexts, record and event bus.

Every state change goes through :meth:`Core._commit`, which records it and formats the
state_changed for each subscriber by filling byte templates around the entity's cached
serialized state (the previous ``new_state`` is reused verbatim as the next
``old_state``). Messages are queued per connection; the writers are woken once per batch.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import orjson

from homeiq.ha.simulator.connection import Conn
from homeiq.ha.simulator.defects import SteppedClock
from homeiq.ha.simulator.encoding import Clock, UlidMaker, iso_from_us
from homeiq.ha.simulator.home import Home
from homeiq.ha.simulator.model import K_AUTOMATION, Entity
from homeiq.ha.simulator.record import Emitted, Log, SimStats

if TYPE_CHECKING:
    from homeiq.ha.simulator.defects import Defects

# One logger for the whole simulator package.
log = logging.getLogger("homeiq.ha.simulator")

HA_VERSION: Final = "2024.3.3"

REGISTRY_EVENTS: Final = (
    "device_registry_updated",
    "entity_registry_updated",
    "area_registry_updated",
    "floor_registry_updated",
)
EVENT_TYPES: Final = ("state_changed", *REGISTRY_EVENTS)

STATE_FMT: Final = (
    b'{"entity_id":"%b","state":%b,"attributes":%b,'
    b'"last_changed":"%b","last_updated":"%b","context":%b}'
)
MSG_FMT: Final = b'{"type":"event","event":%b,"id":%b}'
# The whole message in one format: one copy of ~1 KB per subscriber instead of two.
FULL_FMT: Final = (
    b'{"type":"event","event":{"event_type":"state_changed","data":{"entity_id":"%b",'
    b'"old_state":%b,"new_state":%b},"origin":"LOCAL","time_fired":"%b","context":%b},"id":%b}'
)
CTX_FMT: Final = b'{"id":"%b","parent_id":%b,"user_id":%b}'
CTX_TAIL_NULL: Final = b'","parent_id":null,"user_id":null}'

Ctx = tuple[int, bytes]  # (context number, serialized context)


class Core:
    """The simulated home's state and everything that changes it or fans changes out.

    Shared by the stream, the test hooks and both APIs, which are mixed into
    :class:`homeiq.ha.simulator.Simulator` on top of it.
    """

    def __init__(
        self,
        *,
        seed: int,
        token: str,
        rate: float,
        count: int | None,
        entities: int,
        history_keep_s: float,
        defects: bool = False,
    ) -> None:
        if rate < 0:
            raise ValueError("rate must be >= 0")
        self.seed = seed
        self.token = token
        self.count = count
        self.history_keep_s = history_keep_s
        self.reject_tokens = False
        # HA drops a subscriber that leaves 4096 messages pending; None keeps them queued.
        self.slow_client_limit: int | None = None
        self._stats = SimStats()
        self.home = Home(seed, entities)
        self._rate = float(rate)
        self._rebase = False
        self._rng = random.Random(seed * 31 + 1)  # the event stream, nothing else
        # Planted defects run on simulated time (defects.py); the default is wall time.
        self._clock = SteppedClock(time.time_ns() // 1000) if defects else Clock()
        self.defects: Defects | None = None  # set by the Simulator when asked for
        self._ulid = UlidMaker(seed)
        self._log = Log()
        self._entities: list[Entity] = list(self.home.entities)
        self._by_id = {e.entity_id: e for e in self._entities}
        self._pick = self.home.pick_table()
        self._users = list(self.home.users)
        self._user_ix = {u: i for i, u in enumerate(self._users)}
        self._user_json = [orjson.dumps(u) for u in self._users]
        self._conns: set[Conn] = set()
        self._targets: dict[str, list[tuple[Conn, bytes]]] = {}
        # (queue.append, subscription id) of every state_changed subscription.
        self._sc_targets: list[tuple[Callable[[bytes], None], bytes]] = []
        self._has_subscriber = asyncio.Event()
        self._running = asyncio.Event()
        self._running.set()
        self._finished = asyncio.Event()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._streamed = 0
        self._hist_attrs: dict[tuple[int, str], orjson.Fragment] = {}
        self._fake_ctx = UlidMaker.COUNTER_LIMIT - 1
        self._init_states()
        self.emitted = Emitted(self, len(self._log.ts))

    def _config(self) -> dict[str, Any]:
        return {
            "location_name": "HomeIQ Simulator",
            "time_zone": "UTC",
            "unit_system": {"length": "km", "mass": "g", "temperature": "°C", "volume": "L"},
            "version": HA_VERSION,
            "state": "RUNNING",
            "components": ["api", "automation", "history", "recorder", "websocket_api"],
            # Not Home Assistant's: says this is HomeIQ's simulator, so the entities seen
            # from it can be told from a real home's (homeiq cleanup --source simulator).
            "homeiq_simulator": True,
        }

    # --- contexts ----------------------------------------------------------------------

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
            return n, b'{"id":"' + cid + CTX_TAIL_NULL
        pid = b'"%b"' % self._ctx_id(parent).encode() if parent >= 0 else b"null"
        uid = self._user_json[user] if user >= 0 else b"null"
        return n, CTX_FMT % (cid, pid, uid)

    def _next_fake_ctx(self) -> int:
        # Unrecorded contexts count down from the top of the counter space: never reused.
        self._fake_ctx -= 1
        return self._fake_ctx

    def _ctx_id(self, n: int) -> str:
        return self._ulid.make(self._log.cx_ms[n], n)

    def _user_index(self, user_id: str | None) -> int:
        if user_id is None:
            return -1
        idx = self._user_ix.get(user_id)
        if idx is None:
            idx = self._user_ix[user_id] = len(self._users)
            self._users.append(user_id)
            self._user_json.append(orjson.dumps(user_id))
        return idx

    # --- state changes and events ------------------------------------------------------

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
        new = STATE_FMT % (
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
            add(FULL_FMT % (eid, b"null" if old is None else old, new, iso, cx_json, sid))

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
            add(FULL_FMT % (ent.eid_b, old, b"null", iso, cx_json, sid))

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
            conn.push(MSG_FMT % (body, sid))

    def _after_batch(self) -> None:
        """Wake the writers, then anyone waiting on the emitted count, then police queues."""
        if self.defects is not None:
            self.defects.after_batch()
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

    # --- subscribers -------------------------------------------------------------------

    def _forget(self, conn: Conn) -> None:
        conn.closing = True
        conn.drained.set()
        if conn in self._conns:
            self._conns.discard(conn)
            self._rebuild_targets()

    def _rebuild_targets(self) -> None:
        targets: dict[str, list[tuple[Conn, bytes]]] = {}
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
