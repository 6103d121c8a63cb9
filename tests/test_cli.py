"""The ``homeiq`` command: argument parsing, configuration errors and exit codes, the
query/status tables over a real store, and run/demo end to end against the simulator."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import socket
import stat
import time
from collections.abc import Awaitable, Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

import homeiq.cli.serve as serve_cli
from homeiq.api.auth import hash_key
from homeiq.cli import main, parse_since
from homeiq.cli import reading as reading_cli
from homeiq.ha.simulator import Simulator
from homeiq.lockfile import DataDirLock
from homeiq.maintenance.rollups import RollupStore
from homeiq.metadata.store import METADATA_DB, MetadataStore
from homeiq.model import DeadLetter, EventRecord, Source
from homeiq.pipeline.normalize import format_time_us, parse_time_us
from homeiq.runtime import Runtime
from homeiq.settings import ENV_PREFIX
from homeiq.sinks.sqlite import EVENTS_DB, SQLiteEventStore
from tests.support.loopthread import LoopThread
from tests.support.wait import async_wait_until

TOKEN = "cli-test-token-0123456789abcdef"
NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
NOW_US = 1_700_000_000_000_000
ULID = "01HXK5QG6V9Z8T0AB1CDEFGHJK"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No outside HOMEIQ_* variable reaches a test; the root logger main() reconfigures
    (pointing at capsys's stream) is put back afterwards."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    # run and demo serve the API: on any free port, never a fixed one two runs share.
    monkeypatch.setenv("HOMEIQ_API_PORT", "0")
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    access = logging.getLogger("aiohttp.access")
    saved = (root.handlers[:], root.level, access.level)
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    access.setLevel(saved[2])


def us(iso: str) -> int:
    return parse_time_us(iso, "test")


def stop_after(seconds: float) -> Callable[[asyncio.Event], None]:
    """A replacement for _install_signal_handlers: 'press Ctrl-C' after ``seconds``."""

    def install(stop: asyncio.Event) -> None:
        asyncio.get_running_loop().call_later(seconds, stop.set)

    return install


def parse_table(block: str) -> list[list[str]]:
    """Rows of a table printed by the CLI, split on its column boundaries."""
    lines = block.splitlines()
    assert len(lines) >= 2 and set(lines[1]) <= {"-", " "}, block
    # Column starts: where each run of dashes in the rule line begins.
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", lines[1])]
    rows = []
    for line in [lines[0], *lines[2:]]:
        cells = []
        for i, (start, _end) in enumerate(spans):
            stop = spans[i + 1][0] if i + 1 < len(spans) else None
            cells.append(line[start:stop].strip())
        rows.append(cells)
    return rows


# -- parse_since ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds_ago"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("2d", 2 * 86400),
        ("1w", 7 * 86400),
        ("1.5h", 5400),
        ("0.5m", 30),
        (" 45s ", 45),
    ],
)
def test_parse_since_spans(text: str, seconds_ago: int) -> None:
    assert parse_since(text, now=NOW) == NOW_US - seconds_ago * 1_000_000


def test_parse_since_span_keeps_sub_second_now() -> None:
    assert parse_since("1h", now=NOW + 0.25) == NOW_US - 3_600_000_000 + 250_000


def test_parse_since_span_defaults_to_wall_clock() -> None:
    before = int(time.time() * 1_000_000)
    got = parse_since("1h")
    after = int(time.time() * 1_000_000)
    assert before - 3_600_000_000 <= got <= after - 3_600_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T10:00:00+00:00", 1_714_557_600_000_000),
        ("2024-05-01T12:00:00+02:00", 1_714_557_600_000_000),
        ("2024-05-01T05:30:00-04:30", 1_714_557_600_000_000),
        ("2024-05-01T10:00:00Z", 1_714_557_600_000_000),
        ("2024-05-01T10:00:00.000123+00:00", 1_714_557_600_000_123),
        # No offset: UTC, not the machine's local zone.
        ("2024-05-01T10:00:00", 1_714_557_600_000_000),
        ("2024-05-01", 1_714_521_600_000_000),
    ],
)
def test_parse_since_iso(text: str, expected: int) -> None:
    assert parse_since(text, now=NOW) == expected
    # ISO times do not depend on now.
    assert parse_since(text, now=0.0) == expected


def test_parse_since_naive_iso_is_utc_whatever_the_local_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert parse_since("2024-05-01T10:00:00") == 1_714_557_600_000_000
    finally:
        monkeypatch.undo()
        time.tzset()


def test_parse_since_round_trips_stored_times() -> None:
    for t in (NOW_US, NOW_US + 1, NOW_US + 999_999, 1_714_557_600_123_457):
        assert parse_since(format_time_us(t)) == t


@pytest.mark.parametrize(
    "text", ["", "yesterday", "1x", "h", "-1h", "1 h ago", "1H", "1h30m", "2024-13-01", "12:00:00x"]
)
def test_parse_since_rejects_garbage(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="neither a span"):
        parse_since(text, now=NOW)


def test_bad_since_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["query", "sensor.x", "--since", "yesterday"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--since" in err
    assert "'yesterday' is neither a span" in err


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"homeiq {version('homeiq')}\n"


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "exit codes:" in out
    for line in ("0    success", "1    runtime failure", "2    configuration or usage"):
        assert line in out


def test_run_help_lists_the_settings_it_needs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    for name in ("HOMEIQ_HA_URL", "HOMEIQ_HA_TOKEN", "HOMEIQ_HA_TOKEN_FILE", "HOMEIQ_DATA_DIR",
                 "HOMEIQ_STORE", "HOMEIQ_API_PORT"):  # fmt: skip
        assert name in out


def test_query_help_example_is_an_entity_of_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["query", "--help"])
    out = capsys.readouterr().out
    examples = set(re.findall(r"sensor\.[a-z_]+", out))
    assert examples == {"sensor.living_room_multisensor_temperature"}
    sim = Simulator(seed=1)
    assert examples <= {e.entity_id for e in sim.home.entities}


def test_files_made_by_a_command_are_private(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    old = os.umask(0o022)
    try:
        monkeypatch.setenv("HOMEIQ_DATA_DIR", str(tmp_path / "data"))
        assert main(["keys", "create", "--name", "x", "--scope", "read"]) == 0
    finally:
        os.umask(old)
    made = [p for p in (tmp_path / "data").iterdir() if p.is_file()]
    assert made
    assert {p.name: stat.S_IMODE(p.stat().st_mode) & 0o077 for p in made} == {
        p.name: 0 for p in made
    }


# -- configuration -------------------------------------------------------------------


def test_config_show_prints_effective_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOMEIQ_BATCH_MAX_EVENTS", "250")
    monkeypatch.setenv("HOMEIQ_HA_URL", "http://ha.local:8123/")
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    data = orjson.loads(out)
    assert data["batch_max_events"] == 250
    assert data["ha_url"] == "http://ha.local:8123"
    assert data["ha_token"] is None
    assert data["data_dir"] == "homeiq-data"
    assert data["store"] == "sqlite"
    assert data["log_level"] == "INFO"


def test_config_show_redacts_the_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOMEIQ_HA_TOKEN", TOKEN)
    assert main(["config", "show"]) == 0
    captured = capsys.readouterr()
    assert orjson.loads(captured.out)["ha_token"] == "<redacted>"
    assert TOKEN not in captured.out
    assert TOKEN not in captured.err


def test_config_show_redacts_a_token_read_from_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n", encoding="utf-8")
    monkeypatch.setenv("HOMEIQ_HA_TOKEN_FILE", str(path))
    assert main(["config", "show"]) == 0
    captured = capsys.readouterr()
    assert orjson.loads(captured.out)["ha_token"] == "<redacted>"
    assert TOKEN not in captured.out + captured.err


def test_bad_setting_exits_2_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOMEIQ_BATCH_MAX_EVENTS", "0")
    monkeypatch.setenv("HOMEIQ_HA_TOKEN", TOKEN)
    assert main(["config", "show"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("homeiq: configuration error: HOMEIQ_BATCH_MAX_EVENTS")
    assert "greater than 0" in captured.err
    assert TOKEN not in captured.err


def test_bad_setting_fails_every_command_before_it_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("HOMEIQ_HA_URL", "ftp://ha.local")
    monkeypatch.setenv("HOMEIQ_DATA_DIR", str(tmp_path / "data"))
    assert main(["status"]) == 2
    assert "HOMEIQ_HA_URL" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


def test_unreadable_token_file_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("HOMEIQ_HA_TOKEN_FILE", str(tmp_path / "missing"))
    assert main(["config", "show"]) == 2
    err = capsys.readouterr().err
    assert "HOMEIQ_HA_TOKEN_FILE" in err
    assert "cannot read" in err


def test_run_without_url_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("HOMEIQ_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HOMEIQ_HA_TOKEN", TOKEN)
    assert main(["run"]) == 2
    captured = capsys.readouterr()
    assert "configuration error: HOMEIQ_HA_URL" in captured.err
    assert TOKEN not in captured.out + captured.err


def test_run_without_token_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("HOMEIQ_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HOMEIQ_HA_URL", "http://127.0.0.1:1")
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "configuration error: HOMEIQ_HA_TOKEN" in err
    assert "HOMEIQ_HA_TOKEN_FILE" in err  # says how else to give it


@pytest.mark.parametrize("argv", [["query", "sensor.x"], ["status"]])
def test_reading_commands_without_a_store_exit_2(
    argv: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    data = tmp_path / "empty"
    data.mkdir()
    monkeypatch.setenv("HOMEIQ_DATA_DIR", str(data))
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "configuration error: HOMEIQ_DATA_DIR" in captured.err
    assert str(data / EVENTS_DB) in captured.err
    assert "no event store" in captured.err
    assert not (data / EVENTS_DB).exists()  # reading never creates a store


def test_unreadable_store_is_a_runtime_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / EVENTS_DB).mkdir(parents=True)  # exists, but SQLite cannot open it
    monkeypatch.setenv("HOMEIQ_DATA_DIR", str(data))
    assert main(["status"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("homeiq: sqlite")
    assert "Traceback" not in captured.err


@pytest.mark.parametrize("content", [b"", b"this is not an SQLite database\n" * 200])
@pytest.mark.parametrize("command", [["status"], ["query", "sensor.x"]])
def test_corrupt_store_is_reported_not_a_traceback(
    content: bytes,
    command: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / EVENTS_DB).write_bytes(content)
    monkeypatch.setenv("HOMEIQ_DATA_DIR", str(data))
    assert main(command) == 1
    assert capsys.readouterr().err.startswith("homeiq: ")


# -- query and status over a real store ----------------------------------------------

T0 = us("2024-05-01T10:00:00+00:00")
MIN = 60_000_000


def _records() -> list[EventRecord]:
    x = "sensor.x"
    return [
        # Written out of order on purpose: the table must come out in time order.
        EventRecord(
            x,
            T0 + 2 * MIN,
            None,
            previous_state="21.0",
            duration_in_state_s=60.0,
            area_id="kitchen",
            context_id="ctx-removal",
            source=Source.BACKFILL,
        ),
        EventRecord(x, T0, "20.5", value=20.5, area_id="kitchen", context_id="ctx-first"),
        EventRecord(
            x,
            T0 + MIN,
            "21.0",
            value=21.0,
            previous_state="20.5",
            duration_in_state_s=60.0,
            area_id="kitchen",
            context_id=ULID,
        ),
        EventRecord(x, T0 + 3 * MIN, "22.25", previous_state=None, area_id="kitchen"),
        EventRecord("sensor.y", T0 + 30_000_000, "7", area_id="garage", context_id="ctx-y"),
        EventRecord("light.hall", T0 + 4 * MIN, "on", context_id="ctx-l1"),
        EventRecord(
            "light.hall",
            T0 + 5 * MIN,
            "off",
            previous_state="on",
            context_id="ctx-l2",
            source=Source.IMPORT,
        ),
    ]


DEAD_LETTERS = [
    DeadLetter("bad_timestamp", "last_updated is int", b'{"a":1}', T0, "sensor.x"),
    DeadLetter("bad_timestamp", "no offset", b'{"b":2}', T0 + 1, None),
    DeadLetter("attributes_too_large", "20000 bytes", b"{}", T0 + 2, "sensor.big"),
]


def build_data_dir(
    data: Path,
    records: list[EventRecord],
    dead_letters: list[DeadLetter] | None = None,
) -> Path:
    store = SQLiteEventStore(data / EVENTS_DB)
    try:
        assert store.write(records) == len(records)
    finally:
        store.close()
    if dead_letters is not None:
        meta = MetadataStore.in_dir(data)
        try:
            meta.add_dead_letters(dead_letters)
        finally:
            meta.close()
    return data


@pytest.fixture
def data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    data = build_data_dir(tmp_path / "data", _records(), DEAD_LETTERS)
    monkeypatch.setenv("HOMEIQ_DATA_DIR", str(data))
    return data


def query(capsys: pytest.CaptureFixture[str], *argv: str) -> list[list[str]]:
    assert main(["query", *argv]) == 0
    captured = capsys.readouterr()
    return parse_table(captured.out.rstrip("\n"))


def test_query_prints_history_in_time_order(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = query(capsys, "sensor.x", "--since", "2024-05-01T09:00:00+00:00")
    assert rows[0] == ["time", "state", "previous", "prev_s", "area", "context_id", "source"]
    assert rows[1:] == [
        ["2024-05-01T10:00:00+00:00", "20.5", "", "", "kitchen", "ctx-first", "live"],
        ["2024-05-01T10:01:00+00:00", "21.0", "20.5", "60.0", "kitchen", ULID, "live"],
        ["2024-05-01T10:02:00+00:00", "(removed)", "21.0", "60.0", "kitchen", "ctx-removal",
         "backfill"],
        ["2024-05-01T10:03:00+00:00", "22.25", "", "", "kitchen", "", "live"],
    ]  # fmt: skip


def test_query_without_since_shows_everything(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = query(capsys, "light.hall")
    assert [(r[0], r[1], r[2], r[4], r[5], r[6]) for r in rows[1:]] == [
        ("2024-05-01T10:04:00+00:00", "on", "", "", "ctx-l1", "live"),
        ("2024-05-01T10:05:00+00:00", "off", "on", "", "ctx-l2", "import"),
    ]


def test_query_since_is_inclusive_and_until_exclusive(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = query(
        capsys,
        "sensor.x",
        "--since",
        "2024-05-01T10:01:00+00:00",
        "--until",
        "2024-05-01T12:03:00+02:00",
    )
    # The state at the start (10:00, held until 10:01) comes first, then the range.
    assert [r[0] for r in rows[1:]] == [
        "2024-05-01T10:00:00+00:00",
        "2024-05-01T10:01:00+00:00",
        "2024-05-01T10:02:00+00:00",
    ]


def test_query_since_naive_iso_is_utc(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = query(capsys, "sensor.x", "--since", "2024-05-01T10:02:00")
    assert [r[1] for r in rows[1:]] == ["21.0", "(removed)", "22.25"]


def test_query_limit_keeps_the_oldest_rows(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = query(capsys, "sensor.x", "--since", "2024-05-01T00:00:00Z", "--limit", "2")
    assert [r[1] for r in rows[1:]] == ["20.5", "21.0"]


def test_query_of_an_unknown_entity_names_close_matches(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["query", "sensor.xx"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("homeiq: no such entity: sensor.xx; did you mean sensor.x, sensor.y?\n")
    # Malformed (no domain): matched on the object id.
    assert main(["query", "hall"]) == 1
    assert capsys.readouterr().err == "homeiq: no such entity: hall; did you mean light.hall?\n"
    assert main(["query", "climate.nothing_like_it"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("homeiq: no such entity: climate.nothing_like_it")
    assert "did you mean" not in err


def test_query_of_a_known_entity_with_nothing_in_the_range(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["query", "sensor.x", "--until", "2024-05-01T09:00:00+00:00"]) == 0
    assert capsys.readouterr().out == "no events for sensor.x in that range\n"


def test_query_answers_the_state_at_the_start_of_a_quiet_range(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing changed after 10:03: a range starting later still says what the state was.
    rows = query(capsys, "sensor.x", "--since", "2024-05-01T11:00:00+00:00")
    assert [(r[0], r[1]) for r in rows[1:]] == [("2024-05-01T10:03:00+00:00", "22.25")]


@pytest.mark.parametrize("limit", ["0", "-1", "x"])
def test_query_limit_must_be_at_least_one(limit: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["query", "sensor.x", "--limit", limit])
    assert exc.value.code == 2
    assert "--limit" in capsys.readouterr().err


def test_query_spans_are_relative_to_now(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    now = int(time.time() * 1_000_000)
    records = [
        EventRecord("sensor.t", now - 3 * 3_600_000_000, "old"),
        EventRecord("sensor.t", now - 20 * MIN, "recent"),
        EventRecord("sensor.t", now - 5 * MIN, "newest"),
    ]
    data = build_data_dir(tmp_path / "data", records)
    monkeypatch.setenv("HOMEIQ_DATA_DIR", str(data))
    rows = query(capsys, "sensor.t", "--since", "1h")
    assert [r[1] for r in rows[1:]] == ["old", "recent", "newest"]  # "old": state at start
    rows = query(capsys, "sensor.t", "--since", "1d", "--until", "10m")
    assert [r[1] for r in rows[1:]] == ["old", "recent"]


def _sections(out: str) -> list[str]:
    return out.rstrip("\n").split("\n\n")


def test_status_totals(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status"]) == 0
    sections = _sections(capsys.readouterr().out)
    assert sections[0] == ("events stored: 7  entities: 3  last event: 2024-05-01T10:05:00+00:00")
    tables = [parse_table(s) for s in sections[1:-1]]  # the last: disk and server use
    assert tables == [
        [["domain", "events"], ["light", "2"], ["sensor", "5"]],
        [["area", "events"], ["(no area)", "2"], ["garage", "1"], ["kitchen", "4"]],
        [["source", "events"], ["backfill", "1"], ["import", "1"], ["live", "5"]],
        [
            ["dead-letter reason", "messages"],
            ["attributes_too_large", "1"],
            ["bad_timestamp", "2"],
        ],
    ]


def test_status_without_metadata_or_dead_letters(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = build_data_dir(tmp_path / "data", _records()[:2])
    monkeypatch.setenv("HOMEIQ_DATA_DIR", str(data))
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "dead-letter reason" not in out
    assert _sections(out)[-2] == "dead letters: none"
    assert not (data / METADATA_DB).exists()  # status never creates it
    assert out.startswith("events stored: 2  entities: 1  last event: 2024-05-01T10:02:00+00:00")

    # An empty metadata.db: the same line.
    MetadataStore.in_dir(data).close()
    assert main(["status"]) == 0
    assert _sections(capsys.readouterr().out)[-2] == "dead letters: none"


def test_status_of_an_empty_store(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = build_data_dir(tmp_path / "data", [])
    monkeypatch.setenv("HOMEIQ_DATA_DIR", str(data))
    assert main(["status"]) == 0
    sections = _sections(capsys.readouterr().out)
    assert sections[0] == "events stored: 0  entities: 0  last event: never"
    assert [parse_table(s) for s in sections[1:-2]] == [
        [["domain", "events"]],
        [["area", "events"]],
        [["source", "events"]],
    ]
    assert sections[-2] == "dead letters: none"


def test_query_and_status_read_while_a_writer_is_open(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The CLI reads a store that `homeiq run` is writing at the same time."""
    data = tmp_path / "data"
    writer = SQLiteEventStore(data / EVENTS_DB)
    try:
        writer.write(_records()[:2])
        monkeypatch.setenv("HOMEIQ_DATA_DIR", str(data))
        assert main(["status"]) == 0
        assert capsys.readouterr().out.startswith("events stored: 2 ")
        writer.write(_records()[2:4])
        rows = query(capsys, "sensor.x")
        assert len(rows) == 1 + 4
    finally:
        writer.close()


# -- demo ------------------------------------------------------------------------------

LIVE_LINE = re.compile(
    r"^\s*\d+ events/s \| stored\s+(\d+) \| entities\s+(\d+) \| rejected\s+(\d+)"
    r" \| queue\s+(\d+)(?: \| spooled\s+(\d+))? \| (connected|connecting)$"
)
STOPPED = re.compile(
    r"^Stopped\. Simulator sent (\d+) events; stored (\d+)"
    r"(?: \((?:(\d+) baseline states)?(?:, )?"
    r"(?:(\d+) backfilled from Home Assistant's history)?\))?"
    r"(?:, spooled (\d+) \(kept on disk; written when the store is back\))?"
    r", duplicates (\d+), rejected (\d+)\.$"
)


def run_demo(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], data: Path, seconds: float
) -> tuple[str, dict[str, int]]:
    monkeypatch.setenv("HOMEIQ_DATA_DIR", str(data))
    monkeypatch.setenv("HOMEIQ_BATCH_MAX_AGE_S", "0.1")
    monkeypatch.setattr(serve_cli, "_install_signal_handlers", stop_after(seconds))
    assert main(["demo", "--rate", "200"]) == 0
    out = capsys.readouterr().out
    last = out.rstrip("\n").splitlines()[-1]
    match = STOPPED.match(last)
    assert match, out
    sent, stored, baseline, backfilled, spooled, duplicates, rejected = (
        int(g or 0) for g in match.groups()
    )
    return out, {
        "sent": sent,
        "stored": stored,
        "baseline": baseline,
        "backfilled": backfilled,
        "spooled": spooled,
        "duplicates": duplicates,
        "rejected": rejected,
    }


def test_demo_ingests_the_simulated_home_and_stops(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    out, final = run_demo(monkeypatch, capsys, data, 1.5)
    lines = out.splitlines()
    assert lines[0].startswith("HomeIQ demo: simulated home at http://127.0.0.1:")
    assert lines[0].endswith(f"storing in {data.resolve()}")
    assert re.fullmatch(
        rf"API at http://127\.0\.0\.1:\d+/api/v1 \(admin key in {re.escape(str(data.resolve()))}"
        r"/admin\.key\)",
        lines[1],
    ), lines[1]
    assert lines[2] == "Press Ctrl-C to stop."
    live = [m for m in map(LIVE_LINE.match, lines) if m]
    assert live, out
    assert all(int(m[3]) == 0 for m in live)  # nothing rejected
    stored_seen = [int(m[1]) for m in live]
    assert stored_seen == sorted(stored_seen)
    assert live[-1][6] == "connected"
    assert all(m[5] is None for m in live)  # nothing spooled: no spooled column
    assert int(live[-1][2]) > 0  # entities

    # Whatever the simulator sent (how much depends on the machine's load): all of it
    # stored, none rejected or duplicated.
    assert final["sent"] > 0
    assert final["stored"] == final["sent"] + final["baseline"]
    assert final["rejected"] == 0
    assert final["duplicates"] == 0
    assert final["stored"] >= stored_seen[-1]

    assert main(["status"]) == 0
    assert capsys.readouterr().out.startswith(f"events stored: {final['stored']} ")


def test_demo_refuses_a_busy_data_dir_before_its_banner(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    other = DataDirLock(data)  # another HomeIQ running on the same data directory
    other.acquire()
    try:
        monkeypatch.setenv("HOMEIQ_DATA_DIR", str(data))
        assert main(["demo"]) == 1
    finally:
        other.release()
    captured = capsys.readouterr()
    assert captured.out == ""  # no banner, no API line
    assert captured.err == (
        f"homeiq: HomeIQ (pid {os.getpid()}) is running against {data}: stop it first"
        f" (kill {os.getpid()}), or choose another HOMEIQ_DATA_DIR\n"
    )
    assert not (data / METADATA_DB).exists()  # nothing opened


def test_demo_with_the_store_down_says_what_was_spooled(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("HOMEIQ_STORE", "influxdb")
    monkeypatch.setenv("HOMEIQ_INFLUXDB_URL", f"http://127.0.0.1:{free_port()}")  # closed
    monkeypatch.setenv("HOMEIQ_API_ENABLED", "false")
    out, final = run_demo(monkeypatch, capsys, tmp_path / "data", 2.5)
    assert final["sent"] > 0
    assert final["stored"] == 0
    assert final["spooled"] == final["sent"]  # every event safe on disk
    live = [m for m in map(LIVE_LINE.match, out.splitlines()) if m]
    assert live and live[-1][5] is not None and int(live[-1][5]) > 0, out


def test_demo_after_a_restart_names_what_it_backfilled(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    _, first = run_demo(monkeypatch, capsys, data, 1.0)
    _, second = run_demo(monkeypatch, capsys, data, 1.5)
    assert first["stored"] == first["sent"] + first["baseline"]
    # Stored beyond what this run's simulator sent came from Home Assistant's history or
    # is the baseline of states, and the summary says so.
    beyond = second["stored"] - second["sent"]
    assert beyond <= second["backfilled"] + second["baseline"]


def test_demo_holds_the_home_still_until_subscribed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A runtime slow to start (slow disk, cold imports) must not miss the first events:
    the simulated home may only move once HomeIQ is subscribed."""
    original_start = Runtime.start

    async def slow_start(self: Runtime) -> None:
        await asyncio.sleep(0.3)
        await original_start(self)

    monkeypatch.setattr(Runtime, "start", slow_start)
    _, final = run_demo(monkeypatch, capsys, tmp_path / "data", 0.8)
    assert final["sent"] > 0
    assert final["stored"] == final["sent"] + final["baseline"]
    assert final["rejected"] == 0


# -- run against the simulator, end to end -----------------------------------------------


class SimThread(LoopThread):
    """A Simulator on its own thread and event loop, as a separate Home Assistant."""

    name = "test-simulator"
    timeout_s = 5.0

    def __init__(self, configure: Callable[[Simulator], None] | None = None, **kwargs: Any):
        super().__init__()
        self._kwargs = kwargs
        self._configure = configure
        self.sim: Simulator | None = None

    async def serve(self, ready: Callable[[], None], stopped: Awaitable[bool]) -> None:
        sim = Simulator(**self._kwargs)
        if self._configure is not None:
            self._configure(sim)
        await sim.start()
        try:
            self.sim = sim
            ready()
            await stopped
        finally:
            await sim.stop()

    def __enter__(self) -> Simulator:
        self.start()
        assert self.sim is not None
        return self.sim

    def __exit__(self, *exc: object) -> None:
        self.stop()


def test_run_captures_the_simulator_until_stopped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")  # trailing newline is stripped
    sim_thread = SimThread(token=TOKEN, rate=200)
    with sim_thread as sim:
        monkeypatch.setenv("HOMEIQ_HA_URL", sim.url)
        monkeypatch.setenv("HOMEIQ_HA_TOKEN_FILE", str(token_file))
        monkeypatch.setenv("HOMEIQ_DATA_DIR", str(data))
        monkeypatch.setenv("HOMEIQ_BATCH_MAX_AGE_S", "0.1")
        monkeypatch.setattr(serve_cli, "_install_signal_handlers", stop_after(1.5))
        assert main(["run"]) == 0
    # The simulator has stopped: its record is complete and no longer changing.
    emitted = sim.emitted.keys()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "connected to Home Assistant" in captured.err
    assert TOKEN not in captured.err

    store = SQLiteEventStore(data / EVENTS_DB, readonly=True)
    try:
        stored = store.keys()
        records = store.all_records()
    finally:
        store.close()
    assert len(stored) >= 100  # ~1.5 s at 200/s
    as_iso = {(entity_id, format_time_us(t)) for entity_id, t in stored}
    assert as_iso <= emitted
    # The same comparison the other way round: emitted ISO times parse to the stored µs.
    assert stored <= {(e, parse_time_us(t, "last_updated")) for e, t in emitted}
    assert all(r.source is Source.LIVE for r in records)
    assert any(r.area_id is not None for r in records)  # enriched from the registry

    assert main(["status"]) == 0
    assert capsys.readouterr().out.startswith(f"events stored: {len(stored)} ")


def test_run_with_a_rejected_token_fails_without_retrying(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    wrong = "wrong-token-abcdef0123456789"
    sim_thread = SimThread(token=TOKEN, rate=200)
    with sim_thread as sim:
        monkeypatch.setenv("HOMEIQ_HA_URL", sim.url)
        monkeypatch.setenv("HOMEIQ_HA_TOKEN", wrong)
        monkeypatch.setenv("HOMEIQ_DATA_DIR", str(tmp_path / "data"))
        # If `run` kept retrying, this would end it (with exit 0) after 10 s.
        monkeypatch.setattr(serve_cli, "_install_signal_handlers", stop_after(10.0))
        assert main(["run"]) == 1
    assert sim.stats.auth_invalid == 1
    assert sim.stats.auth_ok == 0
    captured = capsys.readouterr()
    assert "homeiq: Home Assistant rejected the access token" in captured.err
    assert "Not retrying" in captured.err
    assert wrong not in captured.out + captured.err


def test_run_fails_when_home_assistant_rejects_every_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def reject(sim: Simulator) -> None:
        sim.reject_tokens = True

    with SimThread(reject, token=TOKEN, rate=50) as sim:
        monkeypatch.setenv("HOMEIQ_HA_URL", sim.url)
        monkeypatch.setenv("HOMEIQ_HA_TOKEN", TOKEN)
        monkeypatch.setenv("HOMEIQ_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setattr(serve_cli, "_install_signal_handlers", stop_after(10.0))
        assert main(["run"]) == 1
    assert sim.stats.auth_invalid == 1
    assert "rejected the access token" in capsys.readouterr().err


# -- API keys ------------------------------------------------------------------------------


def test_keys_create_list_and_revoke(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("HOMEIQ_DATA_DIR", str(data))
    assert main(["keys", "list"]) == 2  # nothing to list from yet
    assert "no metadata at" in capsys.readouterr().err

    assert main(["keys", "create", "--name", "grafana", "--scope", "read"]) == 0
    captured = capsys.readouterr()
    key = captured.out.strip()
    assert re.fullmatch(r"hiq_[A-Za-z0-9_-]{43}", key)  # alone on stdout, for scripts
    assert "store it now, it is not shown again" in captured.err
    assert key not in captured.err
    assert main(["keys", "create", "--name", "ops", "--scope", "admin", "--scope", "read"]) == 0
    capsys.readouterr()
    metadata = MetadataStore.in_dir(data)
    try:
        stored = metadata.api_key_by_hash(hash_key(key))
        assert stored is not None and (stored.name, stored.scopes) == ("grafana", ("read",))
    finally:
        metadata.close()

    assert main(["keys", "list"]) == 0
    out = capsys.readouterr().out
    rows = parse_table(out)
    assert rows[0] == ["id", "name", "scopes", "created", "last used", "revoked"]
    assert [r[:3] for r in rows[1:]] == [["1", "grafana", "read"], ["2", "ops", "read admin"]]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", r[3]) for r in rows[1:])
    assert [r[5] for r in rows[1:]] == ["", ""]
    assert key not in out

    assert main(["keys", "revoke", "1"]) == 0
    assert capsys.readouterr().out == "revoked key 1 (grafana)\n"
    assert main(["keys", "revoke", "1"]) == 0
    assert capsys.readouterr().out == "key 1 (grafana) was already revoked\n"
    assert main(["keys", "revoke", "99"]) == 1
    assert "homeiq: no API key with id 99" in capsys.readouterr().err
    assert main(["keys", "list"]) == 0
    rows = parse_table(capsys.readouterr().out)
    assert rows[1][5] != "" and rows[2][5] == ""


def test_keys_create_refuses_an_unknown_scope(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("HOMEIQ_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(SystemExit) as exc:
        main(["keys", "create", "--name", "x", "--scope", "root"])
    assert exc.value.code == 2
    assert "invalid choice: 'root'" in capsys.readouterr().err
    assert main(["keys", "create", "--name", "   ", "--scope", "read"]) == 2
    assert "a key needs a name" in capsys.readouterr().err


# -- serving the API -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def probe_api_then_stop(
    port: int, data: Path, results: dict[str, Any]
) -> Callable[[asyncio.Event], None]:
    """A replacement for _install_signal_handlers: use the API `run` serves, then 'press
    Ctrl-C'."""

    async def probe(stop: asyncio.Event) -> None:
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

                async def ready() -> bool:
                    with contextlib.suppress(httpx.TransportError):
                        return (await client.get("/readyz")).status_code == 200
                    return False

                # The API comes up after the runtime.
                await async_wait_until(ready, timeout=20, interval=0.05, message="API not ready")
                key = (await asyncio.to_thread((data / "admin.key").read_text)).strip()
                auth = {"Authorization": f"Bearer {key}"}
                results["health"] = (await client.get("/api/v1/health", headers=auth)).json()
                results["without_key"] = (await client.get("/api/v1/health")).status_code
                results["key"] = key
        finally:
            stop.set()

    def install(stop: asyncio.Event) -> None:
        results["task"] = asyncio.get_running_loop().create_task(probe(stop))

    return install


def test_run_serves_the_api_with_an_admin_key_made_on_first_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    port = free_port()
    with SimThread(token=TOKEN, rate=50) as sim:
        monkeypatch.setenv("HOMEIQ_HA_URL", sim.url)
        monkeypatch.setenv("HOMEIQ_HA_TOKEN", TOKEN)
        monkeypatch.setenv("HOMEIQ_DATA_DIR", str(data))
        monkeypatch.setenv("HOMEIQ_API_PORT", str(port))
        first: dict[str, Any] = {}
        monkeypatch.setattr(
            serve_cli, "_install_signal_handlers", probe_api_then_stop(port, data, first)
        )
        assert main(["run"]) == 0
        err = capsys.readouterr().err
        key_file = data / "admin.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert first["health"]["ha"]["connected"] is True
        assert first["health"]["sink"]["name"] == "sqlite"
        assert first["without_key"] == 401
        assert f"wrote it to {key_file} (mode 0600)" in err
        assert f"API listening on http://127.0.0.1:{port}/api/v1" in err
        assert first["key"] not in err
        assert TOKEN not in err

        # The next start finds a key: no new one, the file untouched, nothing said.
        second: dict[str, Any] = {}
        monkeypatch.setattr(
            serve_cli, "_install_signal_handlers", probe_api_then_stop(port, data, second)
        )
        assert main(["run"]) == 0
        err = capsys.readouterr().err
        assert second["key"] == first["key"]
        assert second["health"]["ha"]["connected"] is True
        assert "admin.key" not in err
    metadata = MetadataStore.in_dir(data, readonly=True)
    try:
        assert [k.name for k in metadata.api_keys()] == ["admin (first start)"]
    finally:
        metadata.close()


@pytest.mark.parametrize("command", ["run", "demo"])
def test_a_taken_api_port_fails_startup_with_exit_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    command: str,
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("HOMEIQ_HA_URL", "http://127.0.0.1:9")  # never reached
    monkeypatch.setenv("HOMEIQ_HA_TOKEN", TOKEN)
    monkeypatch.setenv("HOMEIQ_DATA_DIR", str(data))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("HOMEIQ_API_PORT", str(port))
        assert main([command]) == 2
    err = capsys.readouterr().err
    assert f"homeiq: configuration error: HOMEIQ_API_PORT: port {port} on 127.0.0.1" in err
    assert "already in use" in err
    assert not data.exists()  # nothing started, nothing written


def test_demo_without_the_api(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("HOMEIQ_API_ENABLED", "false")
    data = tmp_path / "data"
    out, final = run_demo(monkeypatch, capsys, data, 0.5)
    assert "API at" not in out
    assert out.splitlines()[1] == "Press Ctrl-C to stop."
    assert not (data / "admin.key").exists()
    assert final["stored"] == final["sent"]


def test_logs_never_show_influxdb_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every secret setting is scrubbed from log lines, not only the Home Assistant token."""
    password, token = "influx-pass-0123456789", "influx-token-0123456789"
    monkeypatch.setenv("HOMEIQ_INFLUXDB_PASSWORD", password)
    monkeypatch.setenv("HOMEIQ_INFLUXDB_TOKEN", token)

    def careless_status(_settings: object, _args: object) -> int:
        logging.getLogger("homeiq.somewhere").error("connecting with %s and %s", password, token)
        return 0

    monkeypatch.setattr(reading_cli, "cmd_status", careless_status)
    assert main(["status"]) == 0
    err = capsys.readouterr().err
    assert "connecting with <redacted> and <redacted>" in err
    assert password not in err and token not in err


def test_rollups_rebuild_recomputes_statistics_from_the_events(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rollups", "rebuild", "--since", "2024-05-01T00:00:00+00:00"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("rebuilt ") and "of 3 entities since 2024-05-01T00:00:00+00:00" in out
    store = RollupStore.in_dir(data_dir, readonly=True)
    try:
        (hour,) = store.buckets("1h", "sensor.x", 0, 2**62)
    finally:
        store.close()
    assert (hour.count, hour.last_state) == (4, "22.25")


def test_tables_escape_control_characters_of_stored_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A key named before names were checked: printing it must not forge a line or colour.
    meta = MetadataStore.in_dir(tmp_path)
    try:
        meta.add_api_key(
            name="evil\nkey 9 admin\x1b[31m", scopes=["read"], key_hash="h" * 64, created_at=1
        )
    finally:
        meta.close()
    monkeypatch.setenv("HOMEIQ_DATA_DIR", str(tmp_path))
    assert main(["keys", "list"]) == 0
    out = capsys.readouterr().out
    assert "evil\\nkey 9 admin\\x1b[31m" in out
    assert "\x1b" not in out and len(out.splitlines()) == 3


def test_a_writing_command_makes_an_older_install_private(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # An install from before file modes were set: a 0755 dir with a 0644 metadata.db.
    data = tmp_path / "data"
    MetadataStore.in_dir(data).close()
    data.chmod(0o755)
    (data / "metadata.db").chmod(0o644)
    monkeypatch.setenv("HOMEIQ_DATA_DIR", str(data))
    assert main(["keys", "create", "--name", "x", "--scope", "read"]) == 0
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "metadata.db").stat().st_mode) == 0o600
