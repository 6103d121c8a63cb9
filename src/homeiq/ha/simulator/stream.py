"""The generated event stream: pacing, picking what changes, and automation runs.

Speed matters: a benchmark pushes a million events through one connection, so
:meth:`Stream._generate` keeps everything it touches in locals and inlines the common
case of a new context.
"""

from __future__ import annotations

import asyncio
from typing import Final

import orjson

from homeiq.ha.simulator.behaviour import STEPS, set_light
from homeiq.ha.simulator.connection import QUEUE_HIGH
from homeiq.ha.simulator.core import CTX_FMT, CTX_TAIL_NULL, Core
from homeiq.ha.simulator.model import K_AUTOMATION, K_LIGHT, K_MOTION, K_STATIC, USER_KINDS, Entity

CHUNK: Final = 512  # events generated between yields to the event loop


class Stream(Core):
    """Generates the home's state changes, at ``rate`` or as fast as subscribers take them."""

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
                cx_json = CTX_FMT % (make_ulid(ms, cx), b"null", user_json[user])
            else:
                cx_json = b'{"id":"' + make_ulid(ms, cx) + CTX_TAIL_NULL
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
