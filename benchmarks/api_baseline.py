"""The ``--phase baseline`` process: the same queries done the bare way (sqlite3,
InfluxQL), in one process, for the ratio."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from api_drive import Plan, latency_summary, worker_rngs
from api_home import SECOND_US, iso

# -- the baseline (--phase baseline) -------------------------------------------------------


def _bare_history_sqlite(path: Path, with_json: bool) -> Callable[[str, int, int], int]:
    """The history query the bare way: returns how many rows (the state at start, then
    the range), optionally made into a JSON body."""
    from homeiq.sinks.sqlite.codec import decode_attributes, decode_context

    conn = sqlite3.connect(f"file:{path / 'events.db'}?mode=ro", uri=True)
    select = (
        "SELECT e.time, e.state, e.value, e.previous_state, e.last_changed, e.duration_us,"
        " a.json, a.codec, e.context_id, e.context_parent_id, e.placement, e.origin, e.source"
        " FROM events e LEFT JOIN attributes a ON a.id = e.attributes"
    )
    before = select + " WHERE e.entity = ? AND e.time < ? ORDER BY e.time DESC LIMIT 1"
    inside = select + " WHERE e.entity = ? AND e.time >= ? AND e.time < ? ORDER BY e.time"

    def query(entity_id: str, start: int, end: int) -> int:
        found = conn.execute("SELECT id FROM entities WHERE entity_id = ?", (entity_id,))
        entity = found.fetchone()[0]
        rows = conn.execute(before, (entity, start)).fetchall()
        rows += conn.execute(inside, (entity, start, end)).fetchall()
        if with_json:
            orjson.dumps(
                {
                    entity_id: [
                        {
                            "entity_id": entity_id,
                            "time": iso(r[0]),
                            "state": r[1],
                            "value": r[2],
                            "previous_state": r[3],
                            "last_changed": iso(r[0] if r[4] is None else r[4]),
                            "duration_in_state_s": None if r[5] is None else r[5] / SECOND_US,
                            "attributes": orjson.loads(decode_attributes(r[6], r[7])),
                            "context_id": decode_context(r[8]),
                            "context_parent_id": decode_context(r[9]),
                            "placement": r[10],
                            "origin": r[11],
                            "source": r[12],
                        }
                        for r in rows
                    ]
                }
            )
        return len(rows)

    return query


def _bare_statistics(path: Path) -> Callable[[str, int, int], int]:
    conn = sqlite3.connect(f"file:{path / 'rollups.db'}?mode=ro", uri=True)

    def query(entity_id: str, start: int, end: int) -> int:
        return len(
            conn.execute(
                "SELECT * FROM rollup_1h WHERE entity_id = ? AND start >= ? AND start < ?"
                " ORDER BY start",
                (entity_id, start, end),
            ).fetchall()
        )

    return query


async def _bare_history_influx(
    url: str, database: str, plan: Plan, seed: int, seconds: float
) -> dict[str, Any]:
    import aiohttp

    rng = worker_rngs(seed, 1, 0)["history"]
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            entity, start, end = plan.day(rng)
            where = f"\"entity_id\" = '{entity}'"
            q = (
                f'SELECT * FROM "home_assistant_events" WHERE {where} AND time < {start}u'
                f' ORDER BY time DESC LIMIT 1; SELECT * FROM "home_assistant_events" WHERE'
                f" {where} AND time >= {start}u AND time < {end}u"
            )
            began = time.perf_counter()
            params = {"db": database, "epoch": "u", "q": q}
            async with session.get(f"{url}/query", params=params) as response:
                body = await response.read()
            results = orjson.loads(body)["results"]
            if response.status != 200 or not any(r.get("series") for r in results):
                raise RuntimeError(f"bare InfluxQL history failed: {body[:300]!r}")
            latencies.append(time.perf_counter() - began)
    return latency_summary(latencies, seconds)


def baseline_phase(args: argparse.Namespace) -> None:
    plan = Plan.of(json.loads(Path(args.manifest).read_text()))
    path = Path(args.path)
    results: dict[str, Any] = {}

    def timed(
        name: str, kind: str, query: Callable[[str, int, int], int], pick: Callable[..., Any]
    ) -> None:
        rng = worker_rngs(args.seed, 1, 0)[kind]  # the API's concurrency-1 sequence of this type
        for _ in range(20):  # warm-up, as the load process does
            query(*pick(random.Random(0)))
        latencies = []
        deadline = time.perf_counter() + args.seconds
        while time.perf_counter() < deadline:
            entity, start, end = pick(rng)
            began = time.perf_counter()
            query(entity, start, end)
            latencies.append(time.perf_counter() - began)
        results[name] = {"kind": kind, **latency_summary(latencies, args.seconds)}

    if args.influx_url:
        results["history: influxql"] = {
            "kind": "history",
            **asyncio.run(
                _bare_history_influx(args.influx_url, args.database, plan, args.seed, args.seconds)
            ),
        }
    else:
        timed("history: sqlite3", "history", _bare_history_sqlite(path, False), plan.day)
        timed("history: sqlite3+json", "history", _bare_history_sqlite(path, True), plan.day)
    timed("statistics: sqlite3", "statistics", _bare_statistics(path), plan.month)
    print(json.dumps(results))
