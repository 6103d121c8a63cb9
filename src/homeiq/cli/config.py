"""``homeiq config show``: the effective settings, every secret redacted."""

from __future__ import annotations

import argparse

import orjson

from homeiq.settings import Settings, redacted


def cmd_config_show(settings: Settings, _args: argparse.Namespace) -> int:
    """Print the effective settings, secrets (and passwords inside URLs) redacted."""
    print(orjson.dumps(redacted(settings), option=orjson.OPT_INDENT_2).decode())
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``config show`` to the ``homeiq`` parser."""
    p = sub.add_parser("config", help="inspect the configuration")
    config_sub = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = config_sub.add_parser("show", help="print effective settings, secrets redacted")
    show.set_defaults(func=cmd_config_show, uses_data_dir=False)
