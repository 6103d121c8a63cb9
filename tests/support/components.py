"""What a test does when a real component (InfluxDB, Home Assistant, moto_server) is not
installed: skip locally with the install command, fail under CI, which must run every
test (DESIGN §7)."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def missing(reason: str, install: str) -> NoReturn:
    """Skip (locally) or fail (CI=true): ``reason``, and how to install what is missing."""
    message = f"{reason}; install it with: {install}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and a real component is missing: {message}", pytrace=False)
    pytest.skip(message)


def command(name: str, install: str) -> str:
    """The path of the outside command ``name`` (``age``, ``influxd``, ``sha256sum``), or
    :func:`missing`: a test that needs one never passes silently under CI without it.
    Call it in the test (or a fixture), not in a ``skipif`` mark, which CI would obey."""
    path = shutil.which(name)
    if path is None:
        missing(f"the {name} command is not installed", install)
    return path
