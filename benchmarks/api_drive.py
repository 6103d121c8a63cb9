"""The read mix and the ``--phase drive`` load process: closed-loop workers at each
concurrency level, latencies and CPU per level."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from _common import process_cpu_s
from api_home import DAY_US, HOUR_US, MAX_PAGES, MIX, SECOND_US

# -- the mix ---------------------------------------------------------------------------


def iso_z(time_us: int) -> str:
    """A query-string time (``Z``, so no ``+`` to escape)."""
    return datetime.fromtimestamp(time_us / SECOND_US, UTC).isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class Plan:
    """What the queries pick from: the dataset's entities, span and chain contexts."""

    entity_ids: list[str]
    roots: list[str]
    start: int
    end: int

    @classmethod
    def of(cls, manifest: dict[str, Any]) -> Plan:
        return cls(manifest["entity_ids"], manifest["roots"], manifest["start"], manifest["end"])

    @property
    def earliest(self) -> int:
        """Ranges start after the span's first tenth: every entity has a state by then."""
        return self.start + (self.end - self.start) // 10

    def day(self, rng: random.Random) -> tuple[str, int, int]:
        """An entity and a 24-hour range inside the span."""
        end = rng.randrange(self.earliest + DAY_US, self.end + 1)
        return rng.choice(self.entity_ids), end - DAY_US, end

    def month(self, rng: random.Random) -> tuple[str, int, int]:
        """An entity and a 30-day range inside the span (ends on an hour)."""
        end = rng.randrange(self.earliest + 31 * DAY_US, self.end + 1)
        end -= end % HOUR_US
        return rng.choice(self.entity_ids), end - 30 * DAY_US, end


def worker_rngs(seed: int, level: int, worker: int) -> dict[str, random.Random]:
    """One generator per query type: the baseline replays a type's exact sequence."""
    return {kind: random.Random(f"{seed}/{level}/{worker}/{kind}") for kind in MIX}


@dataclass(slots=True)
class Request:
    """One request of the mix and the check its answer must pass."""

    path: str
    params: dict[str, str]
    check: Callable[[Any], bool]


class Worker:
    """One closed-loop client: the mix in turn, starting at its own offset."""

    def __init__(self, plan: Plan, seed: int, level: int, index: int) -> None:
        self.plan = plan
        self.rngs = worker_rngs(seed, level, index)
        self.turn = index
        self.cursor: str | None = None
        self.pages = 0

    def next(self) -> tuple[str, Request]:
        kind = MIX[self.turn % len(MIX)]
        self.turn += 1
        rng = self.rngs[kind]
        plan = self.plan
        if kind == "history":
            entity, start, end = plan.day(rng)
            return kind, Request(
                "/api/v1/history",
                {"entity_id": entity, "start": iso_z(start), "end": iso_z(end)},
                lambda body, e=entity: bool(body["entities"][e]),
            )
        if kind == "statistics":
            entity, start, end = plan.month(rng)
            return kind, Request(
                "/api/v1/statistics",
                {"entity_id": entity, "period": "1h", "start": iso_z(start), "end": iso_z(end)},
                lambda body, e=entity: len(body["entities"][e]) >= 700,
            )
        if kind == "events":
            params = {"limit": "100"}
            if self.cursor is not None and self.pages < MAX_PAGES:
                params["cursor"] = self.cursor
                self.pages += 1
            else:
                self.pages = 1

            def page(body: Any) -> bool:
                self.cursor = body["next_cursor"]
                return len(body["events"]) == 100

            return kind, Request("/api/v1/events", params, page)
        if kind == "registry":
            return kind, Request(
                "/api/v1/registry/entities",
                {},
                lambda body: len(body["items"]) == len(plan.entity_ids),
            )
        root = rng.choice(plan.roots)
        return kind, Request(
            f"/api/v1/trace/{root}",
            {},
            # The motion's own event, the automation it ran and the light that run switched.
            lambda body: bool(body["events"]) and len(body["caused"]) >= 2,
        )


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of a sorted sample."""
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def latency_summary(latencies: list[float], seconds: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "n": len(ordered),
        "rps": len(ordered) / seconds if seconds else 0.0,
        "p50": _percentile(ordered, 0.50) * 1000,
        "p95": _percentile(ordered, 0.95) * 1000,
        "p99": _percentile(ordered, 0.99) * 1000,
    }


# -- the load process (--phase drive) --------------------------------------------------


async def drive_levels(args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp

    plan = Plan.of(json.loads(Path(args.manifest).read_text()))  # noqa: ASYNC240  # before any load
    levels = [int(x) for x in args.levels.split(",")]
    headers = {"Authorization": f"Bearer {args.key}"}
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    results: dict[str, Any] = {}
    async with aiohttp.ClientSession(
        args.url, headers=headers, connector=connector, timeout=timeout
    ) as session:
        errors: list[str] = []

        async def send(kind: str, request: Request) -> tuple[bool, float, int]:
            started = time.perf_counter()
            async with session.get(request.path, params=request.params) as response:
                body = await response.read()
            elapsed = time.perf_counter() - started
            ok = response.status == 200
            if ok:
                try:
                    ok = request.check(orjson.loads(body))
                except (KeyError, TypeError, ValueError):
                    ok = False
            if not ok and len(errors) < 10:
                errors.append(f"{kind}: HTTP {response.status} {request.path}: {body[:300]!r}")
            return ok, elapsed, len(body)

        # Warm-up, not counted: every type a few times (first connections, first queries).
        warm = Worker(plan, args.seed, 0, 0)
        for _ in range(len(MIX) * 4):
            await send(*warm.next())
        for level in levels:
            latencies: dict[str, list[float]] = {kind: [] for kind in MIX}
            sizes: dict[str, list[int]] = {kind: [] for kind in MIX}
            failures: dict[str, int] = dict.fromkeys(MIX, 0)
            deadline = time.perf_counter() + args.seconds

            async def worker(
                index: int,
                level: int = level,
                deadline: float = deadline,
                latencies: dict[str, list[float]] = latencies,
                failures: dict[str, int] = failures,
                sizes: dict[str, list[int]] = sizes,
            ) -> None:
                client = Worker(plan, args.seed, level, index)
                while time.perf_counter() < deadline:
                    kind, request = client.next()
                    ok, elapsed, size = await send(kind, request)
                    latencies[kind].append(elapsed)
                    sizes[kind].append(size)
                    if not ok:
                        failures[kind] += 1

            cpu_before = process_cpu_s(args.server_pid, children=True)
            store_before = process_cpu_s(args.store_pid, children=True) if args.store_pid else 0.0
            own_before = time.process_time()
            started = time.perf_counter()
            await asyncio.gather(*(worker(i) for i in range(level)))
            seconds = time.perf_counter() - started
            server_cpu = process_cpu_s(args.server_pid, children=True) - cpu_before
            store_cpu = (
                process_cpu_s(args.store_pid, children=True) - store_before
                if args.store_pid
                else None
            )
            results[str(level)] = {
                "seconds": seconds,
                "queries": {
                    kind: {
                        **latency_summary(latencies[kind], seconds),
                        "failed": failures[kind],
                        "kb": _percentile(sorted(sizes[kind]), 0.5) / 1000,
                    }
                    for kind in MIX
                },
                "all": latency_summary([x for xs in latencies.values() for x in xs], seconds),
                "failures": failures,
                "server_cpu": server_cpu / seconds,
                "store_cpu": None if store_cpu is None else store_cpu / seconds,
                "client_cpu": (time.process_time() - own_before) / seconds,
            }
        results["errors"] = errors
    return results
