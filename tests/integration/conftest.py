"""Fixtures for tests against real components (a running Home Assistant 2024.3.3).

`real_ha` is synchronous on purpose: HA is a subprocess and the harness runs its own
short-lived loop for onboarding, so the fixture works with whatever loop a test uses.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from tests.support.homeassistant import HomeAssistantInstance, default_venv, venv_problem


def _missing(reason: str) -> None:
    """Skip locally, but fail under CI, which must run every test."""
    message = f"{reason}; install it with: bash .ci/install-ha.sh"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and a real component is missing: {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def real_ha(pytestconfig: pytest.Config) -> Iterator[HomeAssistantInstance]:
    """A running, onboarded Home Assistant 2024.3.3 with a long-lived token (`.token`)."""
    venv = default_venv()
    problem = venv_problem(venv)
    if problem:
        _missing(problem)
    ha = HomeAssistantInstance(venv)
    try:
        ha.start()
        timings = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in ha.timings.items())
        capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print(f"\n[real HA] {ha.ha_version} at {ha.url} started: {timings}")
        yield ha
    finally:
        ha.close()
