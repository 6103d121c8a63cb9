"""API key scopes and how they nest (no FastAPI import: the CLI parser uses these)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

Scope = Literal["read", "write", "admin"]
# Lowest first: each scope includes the ones before it (admin ⊇ write ⊇ read).
SCOPES: tuple[Scope, ...] = ("read", "write", "admin")


def granted(scopes: Iterable[str]) -> set[str]:
    """Every scope a key holding ``scopes`` may use."""
    result: set[str] = set()
    for scope in scopes:
        if scope in SCOPES:
            result.update(SCOPES[: SCOPES.index(scope) + 1])
    return result


def highest(scopes: Iterable[str]) -> Scope:
    """The broadest of ``scopes`` (read when none is known)."""
    known = [SCOPES.index(s) for s in scopes if s in SCOPES]
    return SCOPES[max(known, default=0)]
