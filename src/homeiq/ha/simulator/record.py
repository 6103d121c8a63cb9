"""What the simulator did: counters, and the columnar record of every state it set.

The record is what ``Simulator.emitted`` and the history API read back; the hot path
(``Core._commit``) appends to it directly.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, overload

from homeiq.ha.simulator.encoding import dumps, iso_from_us
from homeiq.ha.simulator.model import Entity

if TYPE_CHECKING:
    from homeiq.ha.simulator.core import Core


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


class Log:
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
            kept = bytes(memoryview(attrs_json))  # see encoding.dumps
            idx = self.attrs_ix[kept] = len(self.attrs)
            self.attrs.append(kept)
        return idx

    def record(self, ent: Entity, ts: int, lc: int, st: int, at: int, cx: int) -> None:
        """Append one row (the hot path inlines this in ``Core._commit``)."""
        self.ent.append(ent.idx)
        self.ts.append(ts)
        self.lc.append(lc)
        self.st.append(st)
        self.at.append(at)
        self.cx.append(cx)
        ent.rows.append(len(self.ts) - 1)


class Emitted(Sequence[EmittedEvent]):
    """Every state_changed the simulator emitted, in order (a view over its record)."""

    def __init__(self, sim: Core, base: int) -> None:
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
