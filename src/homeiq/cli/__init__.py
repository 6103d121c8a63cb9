"""The ``homeiq`` command: run, demo, simulate, query, status, rollups, keys, backup,
cleanup, purge, quality, config.

One module per command group registers its subcommands (``register``) and holds their
functions; this module builds the parser and runs a command under the one top-level
handler (:func:`main`): every failure becomes one line on stderr and a documented exit
code (``failures.EXIT_CODES_HELP``), never a traceback. The API and the simulator are
imported only by the commands that need them, so the reading commands start fast.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from homeiq.cli.failures import (
    EXIT_CODES_HELP,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    check_data_dir,
    describe,
)
from homeiq.cli.output import parse_since
from homeiq.errors import ConfigError

__all__ = ["build_parser", "main", "parse_since"]

log = logging.getLogger("homeiq")


def homeiq_version() -> str:
    """The installed package's version (``unknown`` when running from a bare source tree)."""
    try:
        return version("homeiq")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to generate docs/cli.md)."""
    # The command modules import the stores and the runtime: imported here, under
    # main()'s handler, so even a Ctrl-C during a slow start-up prints no traceback.
    from homeiq.cli import (
        backup,
        cleanup,
        config,
        keys,
        purge,
        quality,
        reading,
        serve,
        simulate,
    )

    parser = argparse.ArgumentParser(
        prog="homeiq",
        description="Home Assistant history and analytics: capture, enrich, store, query.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {homeiq_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.register(sub)
    simulate.register(sub)
    reading.register(sub)
    keys.register(sub)
    reading.register_rollups(sub)
    backup.register(sub)
    cleanup.register(sub)  # include/exclude cleanup (#11)
    purge.register(sub)  # retention (#11)
    quality.register(sub)
    config.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``homeiq`` console script; returns the exit code."""
    # Every file HomeIQ creates (databases, keys, archives) is private to its user. Put
    # back on return: main() also runs inside other processes (tests, benchmarks).
    umask = os.umask(0o077)
    try:
        return _main(argv)
    finally:
        os.umask(umask)


def _main(argv: Sequence[str] | None) -> int:
    data_dir: Path | None = None
    try:
        args = build_parser().parse_args(argv)  # usage errors: argparse exits 2
        from homeiq.observability.logging import setup_logging
        from homeiq.settings import load_settings, secret_values

        settings = load_settings()
        data_dir = settings.data_dir
        setup_logging(settings.log_level, settings.log_format, secret_values(settings))
        if getattr(args, "uses_data_dir", True):
            writes = getattr(args, "writes_data_dir", False)
            check_data_dir(settings.data_dir, writes=writes)
            # Created 0700, an older install's files made private (logged). `run` and `demo`
            # leave it to the Runtime: a busy port must fail before anything is on disk.
            if writes and not getattr(args, "serves", False):
                from homeiq.datadir import prepare_data_dir

                prepare_data_dir(settings.data_dir)
        code = int(args.func(settings, args))
        sys.stdout.flush()  # here, not at exit: a closed pipe is reported like the rest
        return code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`homeiq status | head`): nothing more to say, and
        # Python's own flush at exit must not fail on the closed pipe either.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
    except Exception as exc:
        message, code = describe(exc, data_dir)
        if code == EXIT_FAILURE and not isinstance(exc, (OSError, ConfigError)):
            log.debug("the failure in full", exc_info=exc)
        print(f"homeiq: {message}", file=sys.stderr)
        return code if code in (EXIT_FAILURE, EXIT_USAGE) else EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
