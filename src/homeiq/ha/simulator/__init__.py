"""A fake Home Assistant 2024.3.3 for tests, the demo and benchmarks.

It speaks the real WebSocket protocol (auth, strictly increasing ids, coalesced array
frames, subscriptions, registry lists) and serves ``/api/history/period`` from its own
record of what it emitted. The house comes from :mod:`homeiq.ha.simulator.home`.

Speed matters: a benchmark pushes a million events through one connection. Each event is
built by formatting bytes around the entity's cached serialized state (the previous
``new_state`` is reused verbatim as the next ``old_state``), recorded in typed arrays, and
queued per connection; one writer task per connection joins up to ``COALESCE_MAX`` queued
messages into one JSON array frame and awaits the socket, which is the flow control.

The modules, from the bottom up:

- ``encoding``: timestamps, ULIDs and JSON bytes as HA spells them
- ``model``: registry entries and entities; ``catalogue``: what the house is made of;
  ``behaviour``: how states move; ``home``: the house generated from a seed
- ``record``: counters and the columnar record of every state set
- ``connection``: one WebSocket client's queue and subscriptions
- ``core``: state, contexts, the commit path and the event bus
- ``stream``: the generated event stream; ``edits``: states and registry edits from
  outside; ``hooks``: test hooks; ``history``: history queries over the record
- ``protocol``: the WebSocket API; ``rest``: the REST API
- ``server``: :class:`Simulator` itself and :func:`serve`; ``malformed``: bad frames
"""

from __future__ import annotations

from homeiq.ha.simulator.malformed import malformed_frames
from homeiq.ha.simulator.record import Emitted, EmittedEvent, SimStats
from homeiq.ha.simulator.server import Simulator, serve

__all__ = ["Emitted", "EmittedEvent", "SimStats", "Simulator", "malformed_frames", "serve"]
