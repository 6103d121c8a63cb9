"""Every shell example of README.md and docs/*.md runs against one live `homeiq demo`.

An example is a fenced ```bash / ```sh / ```console block (a console block's commands are
its `$ ` lines), or an inline `homeiq ...` command of README.md. Each runs with the demo's
data dir, admin key ($HOMEIQ_API_KEY) and port filled in, and must exit 0; a curl must
answer 2xx with a non-empty body (JSON unless it is /metrics). docs/api.md's curl lines
get real values (an entity, a time, a context id) for the parameters the doc's examples
name, by parameter name, since the doc's values need not exist in the simulated home.

An example that cannot run here (an install, a real Home Assistant, a command that runs
forever, the test command itself) carries `<!-- not-run: reason -->` on the line before its
fence (for an inline command: on its line); anything else that fails, fails the test.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
DOC_BASE = "127.0.0.1:8642"
FENCE = re.compile(r"^```(bash|sh|console)\s*$")
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(.+?)\s*-->")
INLINE = re.compile(r"`(homeiq [^`]+)`")
OPERATION = re.compile(r"^### ([A-Z]+) (/\S*)$")
RUN_TIMEOUT_S = 30.0

# Doc examples waiting for another helper's change of issue #10, matched by (file, start of
# one of the block's commands); strict xfails, so each XPASS tells the lead to delete its
# line after the merge. MARKER_PENDING ones are not run (they cannot run here: they wait
# for their owner's not-run marker); FIX_PENDING ones run and fail until the fix lands.
MARKER_PENDING: dict[tuple[str, str], str] = {}
FIX_PENDING: dict[tuple[str, str], str] = {}
# README's command table and prose name the long-running commands: those mentions (and
# synopses with placeholders) are reported as skipped, not run (the blocks that show
# them carry their own marker).
LONG_RUNNING = {"homeiq run", "homeiq demo", "homeiq simulate"}


@dataclass(frozen=True)
class Example:
    """One runnable unit of a doc: a block or an inline command."""

    doc: str
    line: int
    commands: tuple[str, ...]
    not_run: str | None
    operation: str | None  # docs/api.md: the "### METHOD /path" the block belongs to

    def matches(self, key: tuple[str, str]) -> bool:
        """Whether a (file, operation or command start) key names this example."""
        doc, text = key
        if doc != self.doc:
            return False
        return self.operation == text or any(c.startswith(text) for c in self.commands)


def _blocks(doc: str, lines: list[str]) -> Iterator[Example]:
    operation = None
    index = 0
    while index < len(lines):
        heading = OPERATION.match(lines[index])
        if heading:
            operation = f"{heading[1]} {heading[2]}"
        fence = FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        start, body = index, []
        index += 1
        while index < len(lines) and not lines[index].startswith("```"):
            body.append(lines[index])
            index += 1
        if fence[1] == "console":
            body = [line[2:] for line in body if line.startswith("$ ")]
        marker = NOT_RUN.search(lines[start - 1]) if start else None
        commands = tuple(line for line in body if line.strip())
        in_api = doc == "docs/api.md"
        yield Example(
            doc, start + 1, commands, marker[1] if marker else None, operation if in_api else None
        )
        index += 1


def _inline(doc: str, lines: list[str]) -> Iterator[Example]:
    for number, line in enumerate(lines, 1):
        marker = NOT_RUN.search(line)
        for command in INLINE.findall(line):
            reason = marker[1] if marker else None
            if command in LONG_RUNNING:
                reason = "a mention of a long-running command"
            # A synopsis (`homeiq query ENTITY_ID [--since 1h]`) names a shape, not a run.
            elif "[" in command or re.search(r"\b[A-Z][A-Z_]*\b", command):
                reason = "a synopsis with placeholders"
            yield Example(doc, number, (command,), reason, None)


def collect() -> list[Example]:
    """Every example of README.md and docs/*.md, in document order."""
    found = []
    for path in DOCS:
        doc = path.relative_to(REPO).as_posix()
        lines = path.read_text(encoding="utf-8").splitlines()
        found += list(_blocks(doc, lines))
        if doc == "README.md":
            found += list(_inline(doc, lines))
    return found


EXAMPLES = collect()


# -- the demo ---------------------------------------------------------------------------


@dataclass
class Demo:
    """The running demo and the real values its examples are filled with."""

    base: str
    key: str
    env: dict[str, str]
    fill: dict[str, Any]
    client: httpx.Client

    def get(self, path: str, **params: Any) -> Any:
        answer = self.client.get(path, params=params)
        answer.raise_for_status()
        return answer.json()

    def settle(self) -> None:
        """Wait for a backup job to end: the API refuses a second one (409)."""
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while self.get("/api/v1/admin/backups/last")["running"] is not None:
            assert time.monotonic() < deadline, "a backup job never finished"
            time.sleep(0.1)


def _poll(what: str, probe: Any, timeout_s: float = RUN_TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := probe()):
        assert time.monotonic() < deadline, f"the demo never {what}"
        time.sleep(0.1)
    return found


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """One `homeiq demo` for the module: its own data dir, a free API port, backups
    encrypted with a passphrase (so the backup examples run), rate limits out of reach."""
    home = tmp_path_factory.mktemp("docs-home")
    data_dir = home / "homeiq-data"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HOMEIQ_")},
        "HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOMEIQ_DATA_DIR": str(data_dir),
        "HOMEIQ_API_PORT": "0",
        "HOMEIQ_BACKUP_PASSPHRASE": "docs examples passphrase",
        "HOMEIQ_BACKUP_SCHEDULE": "off",
        **{
            f"HOMEIQ_API_RATE_LIMIT_{scope}": "100000/minute;10000/second"
            for scope in ("READ", "WRITE", "ADMIN", "IP")
        },
    }
    log = home / "demo.log"
    with log.open("w", encoding="utf-8") as output:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "homeiq"), "demo", "--rate", "50"],
            cwd=home,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        banner = _poll(
            "printed where its API is",
            lambda: re.search(r"API at http://([\d.]+:\d+)/api/v1", log.read_text("utf-8")),
        )
        key = (data_dir / "admin.key").read_text(encoding="utf-8").strip()
        client = httpx.Client(
            base_url=f"http://{banner[1]}",
            headers={"Authorization": f"Bearer {key}"},
            # A running backup stalls the API for seconds (reported for issue #10).
            timeout=RUN_TIMEOUT_S,
            # A fresh connection each time: a kept-alive one the server times out (5 s)
            # while a backup stalls it is reset under the next request.
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        with client:
            yield _ready(Demo(banner[1], key, {**env, "HOMEIQ_API_KEY": key}, {}, client))
    finally:
        process.terminate()
        process.wait(timeout=RUN_TIMEOUT_S)


def _ready(demo: Demo) -> Demo:
    """Let the demo ingest a little, then pick real values for the examples."""
    events = _poll(
        "stored an event with a device and area",
        lambda: [
            e
            for e in demo.get("/api/v1/events", limit=200, order="oldest")["events"]
            if e.get("device_id") and e.get("area_id") and e.get("context_id")
        ],
    )
    event = events[0]
    now_s = time.time()
    demo.client.post("/api/v1/admin/backups").raise_for_status()
    demo.settle()
    [target] = demo.get("/api/v1/admin/backups")
    spare = demo.client.post("/api/v1/admin/keys", json={"name": "docs", "scopes": ["read"]})
    spare.raise_for_status()
    demo.fill.update(
        entity_id=event["entity_id"],
        context_id=event["context_id"],
        device_id=event["device_id"],
        area_id=event["area_id"],
        time=event["time"],
        start=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now_s - 3600)),
        end=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now_s + 60)),
        archive=target["archives"][-1]["name"],
        key_id=spare.json()["id"],
    )
    return demo


# -- running one example ----------------------------------------------------------------


def _api_curl(line: str, operation: str, demo: Demo) -> list[str]:
    """docs/api.md's curl line as an argument list, its values replaced by real ones."""
    args = [a.replace("$HOMEIQ_API_KEY", demo.key) for a in shlex.split(line)]
    url_at = next(i for i, a in enumerate(args) if a.startswith("http://"))
    url = urlsplit(args[url_at])
    template = operation.split(" ", 1)[1].split("/")
    path = "/".join(
        quote(str(demo.fill[part[1:-1]]), safe="") if part.startswith("{") else part
        for part in template
    )
    query = [(k, str(demo.fill.get(k, v))) for k, v in parse_qsl(url.query)]
    query = list(dict.fromkeys(query))  # a list example filled with one real value
    args[url_at] = f"http://{demo.base}{path}" + (
        "?" + "&".join(f"{k}={quote(v, safe=':')}" for k, v in query) if query else ""
    )
    if "-d" in args:
        at = args.index("-d") + 1
        body = json.loads(args[at])
        if isinstance(body, dict):
            body = {k: demo.fill.get(k, v) for k, v in body.items()}
        args[at] = json.dumps(body)
    return args


def _run_curl(args: list[str], demo: Demo) -> None:
    marker = "\nHTTP-STATUS "
    args = [args[0], "-sS", "-w", f"{marker}%{{http_code}}", *args[1:]]
    done = subprocess.run(args, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    body, status = done.stdout.rsplit(marker, 1)
    assert status.startswith("2"), f"HTTP {status}: {body}"
    assert body.strip(), "empty answer"
    if "/metrics" not in args[-1]:
        assert json.loads(body) not in ({}, [], None), body


def _run_shell(example: Example, demo: Demo) -> None:
    script = "\n".join(example.commands).replace(DOC_BASE, demo.base)
    script = re.sub(r"(^|[|;&]\s*)curl ", r"\1curl -sS --fail-with-body ", script, flags=re.M)
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=demo.env["HOME"],
        env=demo.env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Traceback" not in output, output
    # A command that ran but found nothing shows the reader nothing: the doc is wrong.
    assert not re.search(r"^no (events|such)\b", done.stdout, flags=re.M), output


def _pending(example: Example, table: dict[tuple[str, str], str]) -> str | None:
    return next((reason for key, reason in table.items() if example.matches(key)), None)


def _marks(example: Example) -> list[Any]:
    reason = _pending(example, MARKER_PENDING) or _pending(example, FIX_PENDING)
    return [pytest.mark.xfail(strict=True, reason=reason)] if reason else []


@pytest.mark.parametrize(
    "example",
    [pytest.param(e, id=f"{e.doc}:{e.line}", marks=_marks(e)) for e in EXAMPLES],
)
def test_doc_example_runs(example: Example, request: pytest.FixtureRequest) -> None:
    if _pending(example, MARKER_PENDING):
        # Not run: it cannot run here. Once its owner marks it, this passes (an XPASS
        # asking for its MARKER_PENDING line to go).
        assert example.not_run, "cannot run here and has no <!-- not-run: reason -->"
        return
    if example.not_run:
        pytest.skip(f"not-run: {example.not_run}")
    assert example.commands, "an empty example block"
    for command in example.commands:
        assert not command.startswith("# not generated"), command
    demo: Demo = request.getfixturevalue("demo")
    demo.settle()
    if example.doc == "docs/api.md":
        [line] = example.commands
        assert example.operation is not None
        _run_curl(_api_curl(line, example.operation, demo), demo)
    else:
        _run_shell(example, demo)


def test_examples_are_found_in_every_doc_that_has_them() -> None:
    docs = {e.doc for e in EXAMPLES}
    assert {"README.md", "docs/api.md", "docs/simulator.md", "docs/testing.md"} <= docs
    api = [e for e in EXAMPLES if e.doc == "docs/api.md"]
    assert all(e.operation for e in api) and len(api) == len({e.operation for e in api})
    inline = {e.commands[0] for e in EXAMPLES if e.doc == "README.md" and len(e.commands) == 1}
    assert "homeiq status" in inline


def test_every_pending_entry_names_a_real_example() -> None:
    for key in [*MARKER_PENDING, *FIX_PENDING]:
        assert [e for e in EXAMPLES if e.matches(key)], key


def test_a_not_run_marker_covers_the_next_block_only(tmp_path: Path) -> None:
    lines = [
        "<!-- not-run: runs forever -->",
        "```bash",
        "homeiq run",
        "```",
        "",
        "```sh",
        "homeiq status   # counts",
        "```",
        "```console",
        "$ homeiq config show",
        "{}",
        "```",
    ]
    first, second, third = _blocks("x.md", lines)
    assert (first.line, first.commands, first.not_run) == (2, ("homeiq run",), "runs forever")
    assert (second.commands, second.not_run) == (("homeiq status   # counts",), None)
    assert second.matches(("x.md", "homeiq status")) and not first.matches(("y.md", "homeiq"))
    assert third.commands == ("homeiq config show",)
