"""What the benchmarks share: a process's CPU time from /proc, InfluxDB's query and count,
an influxd of their own, and the plain tables they print.

Imported as a sibling module: ``python benchmarks/X.py`` puts benchmarks/ first on
``sys.path``.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]  # the repository (tests.support.influxdb)
MEASUREMENT = "home_assistant_events"  # HomeIQ's default influxdb_measurement


def process_cpu_s(pid: int, *, children: bool = False) -> float:
    """User + system CPU seconds of a process (Linux /proc), with ``children`` those of
    the children it waited for too."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    # utime, stime, cutime, cstime: fields 14-17 of proc(5), 11-14 after "pid (comm) state"
    used = fields[11:15] if children else fields[11:13]
    return sum(int(f) for f in used) / os.sysconf("SC_CLK_TCK")


def influx_query(url: str, q: str, db: str | None = None, timeout_s: float = 600) -> dict[str, Any]:
    """One InfluxQL statement's result (times in µs); an error stays in the result."""
    params = {"q": q, "epoch": "u"} if db is None else {"q": q, "epoch": "u", "db": db}
    request = urllib.request.Request(
        f"{url}/query", data=urllib.parse.urlencode(params).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        result: dict[str, Any] = json.loads(response.read())["results"][0]
    return result


def influx_run(url: str, q: str, db: str | None = None) -> dict[str, Any]:
    """As :func:`influx_query`, raising when InfluxDB answers an error."""
    result = influx_query(url, q, db)
    if "error" in result:
        raise RuntimeError(f"influxdb query {q!r} failed: {result['error']}")
    return result


def influx_count(url: str, database: str, measurement: str = MEASUREMENT) -> int:
    """Points stored in ``measurement`` (0 when the database does not exist)."""
    result = influx_query(url, f'SELECT count("source") FROM "{measurement}"', database)
    if "database not found" in str(result.get("error", "")):
        return 0
    if "error" in result:
        raise RuntimeError(f"influxdb count failed: {result['error']}")
    series = result.get("series") or [{"values": [[0, 0]]}]
    return int(series[0]["values"][0][1])


def start_influxd(root: Path | None = None) -> Any:
    """A started ``influxd`` of the test suite's harness (tests.support.influxdb), its data
    under ``root`` (default: a temp dir); the caller stops it."""
    if str(ROOT) not in sys.path:  # run as `python benchmarks/X.py`
        sys.path.insert(0, str(ROOT))
    from tests.support.influxdb import InfluxDBServer

    server = InfluxDBServer() if root is None else InfluxDBServer(root)
    server.start()
    return server


def print_header(header: str) -> None:
    """A table's header line and its rule."""
    print(header)
    print("-" * len(header))
