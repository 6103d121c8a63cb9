"""No Python traceback ever reaches a user: every ``homeiq`` subcommand, run as the real
console command in a subprocess, in the situations that used to print one (an unknown
setting, a data dir that is a file or cannot be written, a busy or impossible port,
output piped into a closed pipe, the store down, a missing optional extra). Each case
asserts the message, the documented exit code and that no "Traceback" was printed.

The processes run at once (a thread waits for each), so a group costs about as much
as its slowest command. Every subcommand and every situation is covered by the fast
group; the sweep of every command through every situation is marked slow.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from homeiq.cli.failures import describe
from homeiq.metadata.store import MetadataStore
from homeiq.model import EventRecord
from homeiq.sinks.sqlite import EVENTS_DB, SQLiteEventStore

EVERY_COMMAND = [
    ["run"],
    ["demo"],
    ["simulate", "--port", "0"],
    ["query", "sensor.x"],
    ["status"],
    ["rollups", "rebuild", "--since", "1d"],
    ["keys", "create", "--name", "x", "--scope", "read"],
    ["keys", "list"],
    ["keys", "revoke", "1"],
    ["quality"],
    ["backup", "create"],
    ["backup", "list"],
    ["backup", "verify", "homeiq-x.tar.age"],
    ["backup", "restore", "homeiq-x.tar.age", "--dry-run"],
    ["backup", "prune", "--dry-run"],
    ["backup", "keygen", "{tmp}/identity.txt"],
    ["config", "show"],
    ["purge", "--dry-run"],
]
DATA_DIR_COMMANDS = [c for c in EVERY_COMMAND if c[0] not in ("simulate", "config")]
DATA_DIR_COMMANDS = [c for c in DATA_DIR_COMMANDS if c[:2] != ["backup", "keygen"]]
WRITING_COMMANDS = [
    ["run"],
    ["demo"],
    ["keys", "create", "--name", "x", "--scope", "read"],
    ["keys", "revoke", "1"],
    ["rollups", "rebuild", "--since", "1d"],
    ["purge", "--dry-run"],
]
TABLE_COMMANDS = [["status"], ["query", "sensor.x"], ["keys", "list"], ["config", "show"]]
STORE_COMMANDS = [["status"], ["query", "sensor.x"], ["rollups", "rebuild", "--since", "1d"]]
STORE_COMMANDS += [["purge", "--dry-run"]]
ROOT = os.geteuid() == 0  # root writes anywhere: an unwritable directory cannot be made


@dataclass
class Case:
    """One command in one bad situation, and what the user must see."""

    situation: str
    argv: list[str]
    code: int
    message: str  # a part of stderr ("" = stderr must be empty)
    env: dict[str, str] = field(default_factory=dict)
    closed_stdout: bool = False
    skip: str | None = None

    @property
    def id(self) -> str:
        return f"{self.situation}:{' '.join(self.argv)}"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens on it once the socket is closed


HA = {"HOMEIQ_HA_URL": "http://127.0.0.1:{closed}", "HOMEIQ_HA_TOKEN": "t" * 20}
ON_DATA = {"HOMEIQ_DATA_DIR": "{tmp}/data"}
STORE_DOWN = {"HOMEIQ_STORE": "influxdb", "HOMEIQ_INFLUXDB_URL": "http://127.0.0.1:{closed}"}
NO_BOTO3 = {
    "PYTHONPATH": "{tmp}/shim",
    "HOMEIQ_BACKUP_TARGETS": "s3://bucket/homeiq",
    "HOMEIQ_BACKUP_PASSPHRASE": "correct horse battery staple",
}

# Placeholders, filled in by the fixture: {tmp} its directory, {busy} a port something
# listens on, {closed} a port nothing listens on.
CASES = (
    [
        Case("unknown-setting", argv, 2,
             "HOMEIQ_STOER: unknown setting; did you mean HOMEIQ_STORE?",
             {"HOMEIQ_STOER": "sqlite"})
        for argv in EVERY_COMMAND
    ]
    + [
        Case("data-dir-is-a-file", argv, 2, "{tmp}/not-a-dir is a file, not a directory",
             {"HOMEIQ_DATA_DIR": "{tmp}/not-a-dir", **HA})
        for argv in DATA_DIR_COMMANDS
    ]
    + [
        Case("unwritable-data-dir", argv, 2, "{tmp}/locked is not writable",
             {"HOMEIQ_DATA_DIR": "{tmp}/locked", **HA},
             skip="root can write any directory" if ROOT else None)
        for argv in WRITING_COMMANDS
    ]
    + [
        Case("unopenable-database", argv, 1,
             "sqlite cannot open {tmp}/broken/metadata.db: unable to open database file",
             {"HOMEIQ_DATA_DIR": "{tmp}/broken", "HOMEIQ_API_ENABLED": "false", **HA})
        for argv in (["run"], ["keys", "create", "--name", "x", "--scope", "read"])
    ]
    + [
        Case("busy-port", ["simulate", "--port", "{busy}"], 2,
             "cannot listen on 127.0.0.1:{busy} (already in use)"),
        Case("busy-port", ["run"], 2, "port {busy} on 127.0.0.1",
             {"HOMEIQ_API_PORT": "{busy}", "HOMEIQ_DATA_DIR": "{tmp}/d1", **HA}),
        Case("busy-port", ["demo"], 2, "port {busy} on 127.0.0.1",
             {"HOMEIQ_API_PORT": "{busy}", "HOMEIQ_DATA_DIR": "{tmp}/d2"}),
        Case("bad-port", ["simulate", "--port", "99999"], 2, "99999 is not a port"),
        Case("bad-port", ["simulate", "--port=-1"], 2, "-1 is not a port"),
        Case("bad-url-port", ["run"], 2, "HOMEIQ_HA_URL: 'http://127.0.0.1:abc' has a port",
             {"HOMEIQ_HA_URL": "http://127.0.0.1:abc", "HOMEIQ_HA_TOKEN": "t" * 20}),
    ]
    + [Case("closed-pipe", argv, 1, "", ON_DATA, closed_stdout=True) for argv in TABLE_COMMANDS]
    + [Case("store-down", argv, 1, "InfluxDB at http://127.0.0.1:{closed} is unreachable",
            {**STORE_DOWN, **ON_DATA}) for argv in STORE_COMMANDS]
    + [
        Case("missing-extra", argv, 2,
             "HOMEIQ_BACKUP_TARGETS: s3:// targets need the s3 extra: pip install 'homeiq[s3]'",
             {**NO_BOTO3, **ON_DATA})
        for argv in (["backup", "list"], ["backup", "create"])
    ]
)  # fmt: skip


def make_situations(tmp: Path) -> None:
    """The directories and files the cases name."""
    store = SQLiteEventStore(tmp / "data" / EVENTS_DB)  # a readable store with one entity
    try:
        store.write([EventRecord("sensor.x", 1_700_000_000_000_000, "1")])
    finally:
        store.close()
    MetadataStore.in_dir(tmp / "data").close()
    (tmp / "not-a-dir").write_text("x")
    (tmp / "broken" / "metadata.db").mkdir(parents=True)  # SQLite cannot open a directory
    SQLiteEventStore(tmp / "locked" / EVENTS_DB).close()
    if not ROOT:
        (tmp / "locked").chmod(0o500)
    shim = tmp / "shim" / "boto3"  # `import boto3` fails as if the s3 extra were missing
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'boto3'\", name='boto3')\n"
    )


# Every subcommand at least once, and every situation at least once: run on every test
# run. The rest (every command in every situation) is marked slow.
FAST = {
    "unopenable-database:run",
    "unopenable-database:keys create --name x --scope read",
    "unwritable-data-dir:run",
    "unwritable-data-dir:keys create --name x --scope read",
    "busy-port:demo",
    "busy-port:simulate --port {busy}",
    "bad-port:simulate --port 99999",
    "bad-url-port:run",
    "closed-pipe:query sensor.x",
    "closed-pipe:keys list",
    "closed-pipe:config show",
    "store-down:status",
    "store-down:purge --dry-run",
    "data-dir-is-a-file:rollups rebuild --since 1d",
    "data-dir-is-a-file:backup verify homeiq-x.tar.age",
    "data-dir-is-a-file:backup prune --dry-run",
    "data-dir-is-a-file:quality",
    "unknown-setting:keys revoke 1",
    "unknown-setting:backup restore homeiq-x.tar.age --dry-run",
    "unknown-setting:backup keygen {tmp}/identity.txt",
    "missing-extra:backup create",
    "missing-extra:backup list",
}


def command(argv: list[str]) -> tuple[str, ...]:
    """The subcommand of ``argv`` ("keys create", "status"), without its arguments."""
    return tuple(argv[:2]) if argv[0] in ("keys", "backup", "rollups", "config") else (argv[0],)


assert {c.id for c in CASES} >= FAST
assert {command(c.argv) for c in CASES if c.id in FAST} == {command(a) for a in EVERY_COMMAND}


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def run_case(case: Case, fill: dict[str, str], cwd: Path) -> Outcome:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMEIQ_")}
    env.update(HOMEIQ_API_PORT="0", HOMEIQ_DATA_DIR=str(cwd / "homeiq-data"), COLUMNS="100")
    env.update({k: v.format(**fill) for k, v in case.env.items()})
    if "PYTHONPATH" in case.env:  # the shim first, then the repository (for `tests`)
        env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], os.getcwd()])
    argv = [sys.executable, "-m", "homeiq.cli", *(a.format(**fill) for a in case.argv)]
    cwd.mkdir(parents=True, exist_ok=True)
    if not case.closed_stdout:
        proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True,
                              stdin=subprocess.DEVNULL, timeout=90, text=True)  # fmt: skip
        return Outcome(proc.returncode, proc.stdout, proc.stderr)
    read, write = os.pipe()
    os.close(read)  # the reader (`head`) already went away
    try:
        proc = subprocess.run(argv, env=env, cwd=cwd, stdout=write, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, timeout=90, text=True)  # fmt: skip
    finally:
        os.close(write)
    return Outcome(proc.returncode, "", proc.stderr)


Results = tuple[dict[str, str], dict[str, Outcome]]


def run_all(tmp: Path, todo: list[Case]) -> Results:
    """Run ``todo`` at once; (the placeholders' values, outcome by case id)."""
    make_situations(tmp)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        fill = {"tmp": str(tmp), "busy": str(busy.getsockname()[1]), "closed": str(closed_port())}
        with ThreadPoolExecutor(max_workers=12) as pool:
            results = list(
                pool.map(
                    lambda ic: run_case(ic[1], fill, tmp / "cwd" / str(ic[0])), enumerate(todo)
                )
            )
    return fill, {c.id: r for c, r in zip(todo, results, strict=True)}


@pytest.fixture(scope="module")
def fast_outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Results]:
    tmp = tmp_path_factory.mktemp("no-traceback")
    yield run_all(tmp, [c for c in CASES if c.id in FAST and c.skip is None])
    (tmp / "locked").chmod(0o700)  # let pytest clean it up


@pytest.fixture(scope="module")
def sweep_outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Results]:
    tmp = tmp_path_factory.mktemp("no-traceback-sweep")
    yield run_all(tmp, [c for c in CASES if c.id not in FAST and c.skip is None])
    (tmp / "locked").chmod(0o700)


def params(fast: bool) -> list[object]:
    return [
        pytest.param(c, id=c.id, marks=[pytest.mark.skip(c.skip)] if c.skip else [])
        for c in CASES
        if (c.id in FAST) is fast
    ]


@pytest.mark.parametrize("case", params(fast=True))
def test_a_bad_situation_is_one_message_and_an_exit_code(
    case: Case, fast_outcomes: Results
) -> None:
    check(case, fast_outcomes)


@pytest.mark.slow
@pytest.mark.parametrize("case", params(fast=False))
def test_every_command_in_every_bad_situation(case: Case, sweep_outcomes: Results) -> None:
    check(case, sweep_outcomes)


def check(case: Case, outcomes: Results) -> None:
    fill, done = outcomes
    got = done[case.id]
    assert "Traceback" not in got.out + got.err, got.err
    assert "ssl:default" not in got.err, got.err  # aiohttp's noise, never the user's problem
    assert got.code == case.code, (got.code, got.err)
    if not case.message:
        assert got.err == ""  # a closed pipe: nothing to say
        return
    assert case.message.format(**fill) in got.err, got.err
    said = [line for line in got.err.splitlines() if line.startswith("homeiq")]
    assert len(said) == 1, got.err  # one message, not one per layer


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (PermissionError(13, "Permission denied", "/srv/x"), 1,
         "cannot use /srv/x (Permission denied): check its owner and permissions"),
        (FileNotFoundError(2, "No such file or directory", "/srv/y"), 1,
         "/srv/y: No such file or directory"),
        (sqlite3.OperationalError("attempt to write a readonly database"), 2,
         "configuration error: HOMEIQ_DATA_DIR: the databases in /data are read-only for this"
         " user (attempt to write a readonly database); make it writable by this user, or"
         " choose another HOMEIQ_DATA_DIR"),
        (sqlite3.DatabaseError("file is not a database"), 1,
         "sqlite: file is not a database (in /data)"),
        (ModuleNotFoundError("No module named 'boto3'", name="boto3"), 2,
         "the Python module boto3 is not installed: pip install 'homeiq[s3]'"),
        (RuntimeError("surprise"), 1, "internal error: RuntimeError: surprise"),
    ],
)  # fmt: skip
def test_describe_maps_each_kind_of_failure(error: Exception, code: int, message: str) -> None:
    """The mapping for failures a subprocess cannot provoke on every machine (as root,
    no database is read-only)."""
    assert describe(error, Path("/data")) == (message, code)
