"""Fixtures for tests against real components (a running Home Assistant 2024.3.3).

`real_ha` is synchronous on purpose: HA is a subprocess and the harness runs its own
short-lived loop for onboarding, so the fixture works with whatever loop a test uses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NoReturn

import pytest

from tests.support.components import missing
from tests.support.homeassistant import HomeAssistantInstance, default_venv, venv_problem


def _missing(reason: str) -> NoReturn:
    missing(reason, "bash .ci/install-ha.sh")


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
