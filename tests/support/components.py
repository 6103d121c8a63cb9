"""What a test does when a real component (InfluxDB, Home Assistant, moto_server) is not
installed: skip locally with the install command, fail under CI, which must run every
test (DESIGN §7)."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(reason: str, install: str) -> NoReturn:
    """Skip (locally) or fail (CI=true): ``reason``, and how to install what is missing."""
    message = f"{reason}; install it with: {install}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and a real component is missing: {message}", pytrace=False)
    pytest.skip(message)
