"""What the commands print: plain tables, times, and the ``--since``/``--until`` parser."""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_SPAN_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: float | None = None) -> int:
    """``1h``/``30m``/``2d``/``1w``/``45s`` ago, or an ISO 8601 time -> microseconds."""
    now = time.time() if now is None else now
    match = _SPAN.fullmatch(text.strip())
    if match:
        return int((now - float(match[1]) * _SPAN_S[match[2]]) * 1_000_000)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a span like 1h/30m/2d nor an ISO 8601 time"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1_000_000)


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (``--limit 0`` would print nothing)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 1-65535, or 0 for any free port."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port: use 1-65535, or 0 for any")
    return value


# Control and format characters (newline, ESC, NUL, bidi overrides) in stored text, a key
# name from before names were checked or a state, must not move the cursor or forge lines.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def printable(text: str) -> str:
    """``text`` with every control character shown as its escape (``\\n``, ``\\x1b``)."""
    return _CONTROL.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), text)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table: a header, a rule of dashes, one line a row (None prints empty)."""
    cells = [[("" if c is None else printable(str(c))) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def when(time_us: int | None) -> str | None:
    """A stored time as ``YYYY-MM-DD HH:MM:SS`` (UTC); None stays None."""
    if time_us is None:
        return None
    return datetime.fromtimestamp(time_us / 1_000_000, UTC).strftime("%Y-%m-%d %H:%M:%S")
