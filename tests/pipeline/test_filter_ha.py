"""The ingest filter decides as Home Assistant 2024.3's own recorder filter does: a few
hundred rule sets (no device classes: Home Assistant has none) are put to its
``entityfilter.generate_filter`` in its venv, and to ours."""

from __future__ import annotations

import asyncio
import random
import subprocess
import textwrap
from typing import Any

import orjson
import pytest

from homeiq.pipeline.filter import compile_rule
from homeiq.selectors import EntitySelector
from tests.support.components import missing
from tests.support.homeassistant import default_venv, venv_problem

pytestmark = pytest.mark.homeassistant

DOMAINS = ["sensor", "light", "switch", "binary_sensor"]
IDS = [f"{d}.{o}" for d in DOMAINS for o in ("kitchen_power", "wifi_rssi", "door", "a1")]
GLOBS = ["sensor.*", "*_power", "light.k*", "*_rssi", "switch.[ab]*", "binary_sensor.?oor"]

ASK_HOME_ASSISTANT = textwrap.dedent(
    """
    import json, sys
    from homeassistant.helpers.entityfilter import generate_filter
    cases = json.load(sys.stdin)
    answers = []
    for rules, entity_ids in cases:
        keep = generate_filter(
            rules["in_domains"], rules["in_ids"], rules["out_domains"], rules["out_ids"],
            rules["in_globs"], rules["out_globs"],
        )
        answers.append([keep(e) for e in entity_ids])
    json.dump(answers, sys.stdout)
    """
)


def random_rules(rng: random.Random) -> dict[str, list[str]]:
    def some(names: list[str], most: int) -> list[str]:
        return rng.sample(names, rng.randint(0, most))

    return {
        "in_domains": some(DOMAINS, 2),
        "in_ids": some(IDS, 3),
        "in_globs": some(GLOBS, 2),
        "out_domains": some(DOMAINS, 2),
        "out_ids": some(IDS, 3),
        "out_globs": some(GLOBS, 2),
    }


def ours(rules: dict[str, list[str]], entity_ids: list[str]) -> list[bool]:
    include = EntitySelector.of(
        domains=rules["in_domains"], entity_ids=rules["in_ids"], entity_globs=rules["in_globs"]
    )
    exclude = EntitySelector.of(
        domains=rules["out_domains"], entity_ids=rules["out_ids"], entity_globs=rules["out_globs"]
    )
    keep = compile_rule(include, exclude)
    return [keep(e, None) for e in entity_ids]


async def test_decisions_equal_home_assistants() -> None:
    venv = default_venv()
    problem = venv_problem(venv)
    if problem is not None:
        missing(problem, "bash .ci/install-ha.sh")
    rng = random.Random(11)
    cases: list[Any] = [(random_rules(rng), IDS) for _ in range(400)]
    done = await asyncio.to_thread(
        subprocess.run,
        [str(venv / "bin" / "python"), "-c", ASK_HOME_ASSISTANT],
        input=orjson.dumps(cases),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    theirs = orjson.loads(done.stdout)
    for (rules, entity_ids), answer in zip(cases, theirs, strict=True):
        assert ours(rules, entity_ids) == answer, rules
