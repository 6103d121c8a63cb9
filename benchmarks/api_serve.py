"""The ``--phase serve`` process: HomeIQ's runtime and API over the dataset, as
``homeiq run`` serves them, and :class:`Server`, which starts it."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from api_dataset import Loaded
from api_home import API_SCRIPT, UNLIMITED

# -- the server (--phase serve) ----------------------------------------------------------

READER_METHODS = (
    "history", "history_many", "events", "by_context", "caused_by", "activity", "keys",
    "summary", "last_event_time",
)  # fmt: skip


def _count_reader_calls(reader: Any, counts: dict[str, int]) -> None:
    """Count every call of the event reader's queries (whoever holds the reader)."""
    for name in READER_METHODS:
        original = getattr(reader, name)

        async def counted(
            *args: Any, _original: Any = original, _name: str = name, **kw: Any
        ) -> Any:
            counts[_name] = counts.get(_name, 0) + 1
            return await _original(*args, **kw)

        setattr(reader, name, counted)


def serve_phase(args: argparse.Namespace) -> None:
    """HomeIQ's runtime over the dataset (no Home Assistant source) and its API served as
    ``homeiq run`` serves it; prints {"url", "key"}, answers "calls" on stdin with the
    reader's call counts, stops at the end of stdin."""
    import logging
    import threading

    from homeiq.api.auth import create_key
    from homeiq.api.server import api_socket, serve
    from homeiq.metadata.store import MetadataStore
    from homeiq.model import now_us
    from homeiq.runtime import Runtime
    from homeiq.settings import Settings

    logging.basicConfig(level=logging.WARNING)
    store: dict[str, Any] = {}
    if args.influx_url:
        store = {"store": "influxdb", "influxdb_url": args.influx_url}
        store["influxdb_database"] = args.database
    settings = Settings(
        data_dir=Path(args.path),
        api_host="127.0.0.1",
        api_port=0,
        api_rate_limit_read=UNLIMITED,
        api_rate_limit_write=UNLIMITED,
        api_rate_limit_admin=UNLIMITED,
        api_rate_limit_ip=UNLIMITED,
        log_level="WARNING",
        **store,
    )
    sock = api_socket(settings)
    assert sock is not None
    runtime = Runtime(settings)
    key, stored = create_key(runtime.metadata, "api benchmark", ["read"])
    counts: dict[str, int] = {}
    _count_reader_calls(runtime.reader, counts)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def answer() -> None:
            print(json.dumps(counts), flush=True)

        def read_commands() -> None:  # a thread of its own: not one of the loop's workers
            for line in sys.stdin:
                if line.strip() == "calls":
                    loop.call_soon_threadsafe(answer)
            loop.call_soon_threadsafe(stop.set)

        await runtime.start()
        api = await serve(runtime, sock)
        print(json.dumps({"url": api.url, "key": key}), flush=True)
        threading.Thread(target=read_commands, daemon=True).start()
        try:
            await stop.wait()
        finally:
            await api.stop()
            await runtime.stop()

    try:
        asyncio.run(main())
    finally:
        sock.close()
        metadata = MetadataStore.in_dir(Path(args.path))
        metadata.revoke_api_key(stored.id, now_us())
        metadata.close()


class Server:
    """The ``--phase serve`` process."""

    def __init__(self, loaded: Loaded) -> None:
        command = [
            sys.executable,
            str(API_SCRIPT),
            "--phase",
            "serve",
            "--path",
            str(loaded.data_dir),
        ]
        if loaded.store == "influxdb":
            assert loaded.influx_url is not None and loaded.influx_database is not None
            command += ["--influx-url", loaded.influx_url, "--database", loaded.influx_database]
        self.log = loaded.data_dir / "server.log"  # its errors, if any, with tracebacks
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env={**os.environ, "HOMEIQ_LOG_LEVEL": "WARNING"},
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the server process did not start; see {self.log}")
        started = json.loads(line)
        self.url: str = started["url"]
        self.key: str = started["key"]

    def calls(self) -> dict[str, int]:
        """The reader's query calls so far."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("calls\n")
        self.proc.stdin.flush()
        found: dict[str, int] = json.loads(self.proc.stdout.readline())
        return found

    def close(self) -> None:
        """Stop it (end of stdin), waiting for a clean shutdown."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
