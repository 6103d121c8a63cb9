"""``homeiq simulate``: the simulated Home Assistant on its own, for trying HomeIQ out."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno

from homeiq.cli.output import port_number
from homeiq.errors import ConfigError
from homeiq.settings import Settings


def cmd_simulate(_settings: Settings, args: argparse.Namespace) -> int:
    """Run the simulated Home Assistant until interrupted."""
    from homeiq.ha.simulator import serve

    try:
        # Ctrl-C is how a simulator is meant to stop: exit 0, not 130.
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(
                serve(
                    seed=args.seed,
                    token=args.token,
                    rate=args.rate,
                    count=args.count,
                    host=args.host,
                    port=args.port,
                )
            )
    except OSError as exc:  # bind() failed: the address is taken or not this machine's
        reason = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise ConfigError(
            "--port", f"cannot listen on {args.host}:{args.port} ({reason}); choose another"
        ) from exc
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``simulate`` to the ``homeiq`` parser."""
    p = sub.add_parser("simulate", help="run the simulated Home Assistant on its own")
    p.add_argument("--host", default="127.0.0.1", help="address to bind")
    p.add_argument(
        "--port", type=port_number, default=8123, help="port to bind (1-65535, 0 = any free)"
    )
    p.add_argument("--token", default="sim-token", help="access token clients must present")
    p.add_argument("--rate", type=float, default=10.0, help="events/s (0 = as fast as possible)")
    p.add_argument("--count", type=int, default=None, help="stop the stream after N events")
    p.add_argument("--seed", type=int, default=1, help="seed of the simulated home")
    p.set_defaults(func=cmd_simulate, uses_data_dir=False)
