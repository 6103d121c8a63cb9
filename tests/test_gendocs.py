"""Generated reference docs: docs/cli.md, docs/settings.md and docs/api.md match the code,
writing is idempotent, and ``--check`` catches drift (and the repository's own copies are
current)."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import pytest

from homeiq import gendocs
from homeiq.api.app import openapi_schema
from homeiq.gendocs import (
    GENERATED,
    MissingExample,
    api_markdown,
    cli_markdown,
    main,
    missing_examples,
    settings_markdown,
    stale,
)
from homeiq.settings import Settings, settings_table

REPO = Path(__file__).resolve().parents[1]


SUBCOMMAND_USAGES = {
    "run": "usage: homeiq run [-h]",
    "demo": "usage: homeiq demo [-h] [--rate RATE] [--seed SEED]",
    "simulate": (
        "usage: homeiq simulate [-h] [--host HOST] [--port PORT] [--token TOKEN] [--rate RATE]"
    ),
    "query": "usage: homeiq query [-h] [--since SINCE] [--until UNTIL] [--limit LIMIT] entity_id",
    "status": "usage: homeiq status [-h]",
    "keys": "usage: homeiq keys [-h] ACTION ...",
    "keys create": "usage: homeiq keys create [-h] --name NAME --scope {read,write,admin}",
    "keys list": "usage: homeiq keys list [-h]",
    "keys revoke": "usage: homeiq keys revoke [-h] key_id",
    "rollups": "usage: homeiq rollups [-h] ACTION ...",
    "rollups rebuild": "usage: homeiq rollups rebuild [-h] --since SINCE [--entity ENTITY]",
    "backup": "usage: homeiq backup [-h] ACTION ...",
    "backup create": "usage: homeiq backup create [-h] [--target NAME]",
    "backup list": "usage: homeiq backup list [-h]",
    "backup verify": (
        "usage: homeiq backup verify [-h] [--identity FILE] [--no-test-restore] archive"
    ),
    "backup restore": "usage: homeiq backup restore [-h] [--identity FILE] [--dry-run] [--stop]",
    "backup prune": "usage: homeiq backup prune [-h] [--dry-run]",
    "backup keygen": "usage: homeiq backup keygen [-h] output",
    "cleanup": "usage: homeiq cleanup [-h] [--entity GLOB] [--source",
    "purge": "usage: homeiq purge [-h] [--dry-run] [--vacuum]",
    "quality": "usage: homeiq quality [-h] [--worst WORST] [--days DAYS]",
    "config": "usage: homeiq config [-h] ACTION ...",
    "config show": "usage: homeiq config show [-h]",
}


@pytest.fixture(autouse=True)
def restore_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """cli_markdown() sets COLUMNS; have monkeypatch put the caller's value back."""
    monkeypatch.setenv("COLUMNS", os.environ.get("COLUMNS", "80"))


# -- docs/cli.md -----------------------------------------------------------------------


def test_cli_markdown_has_every_subcommand() -> None:
    text = cli_markdown()
    assert text.startswith(f"# Command-line reference\n\n{GENERATED}\n")
    assert "usage: homeiq [-h] [--version] COMMAND ..." in text
    headings = [line[len("## homeiq ") :] for line in text.splitlines() if line.startswith("## ")]
    assert headings == list(SUBCOMMAND_USAGES)
    for name, usage in SUBCOMMAND_USAGES.items():
        section = text.split(f"## homeiq {name}\n", 1)[1]
        assert section.lstrip().startswith(f"```text\n{usage}"), name


def test_cli_markdown_lists_options_and_help_texts() -> None:
    text = cli_markdown()
    for needle in (
        "--since SINCE  1h, 30m, 2d or ISO time",
        "--limit LIMIT  at most this many rows (≥ 1)",
        "entity_id      e.g. sensor.living_room_multisensor_temperature",
        "--count COUNT  stop the stream after N events",
        "show      print effective settings, secrets redacted",
        "query     print an entity's stored history",
    ):
        assert needle in text, needle


def test_cli_markdown_code_blocks_are_balanced() -> None:
    lines = cli_markdown().splitlines()
    fences = [line for line in lines if line.startswith("```")]
    assert fences == ["```text", "```"] * (1 + len(SUBCOMMAND_USAGES))


@pytest.mark.parametrize("columns", ["40", "100", "250"])
def test_cli_markdown_does_not_depend_on_the_terminal_width(
    monkeypatch: pytest.MonkeyPatch, columns: str
) -> None:
    monkeypatch.delenv("COLUMNS")
    reference = cli_markdown()
    monkeypatch.setenv("COLUMNS", columns)
    assert cli_markdown() == reference
    assert max(len(line) for line in reference.splitlines()) <= 100


def test_cli_markdown_leaves_the_environment_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    cli_markdown()
    assert os.environ["COLUMNS"] == "80"


# -- docs/settings.md ------------------------------------------------------------------


def _rows(text: str) -> dict[str, list[str]]:
    """Table rows keyed by the setting's variable name."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| `HOMEIQ_"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[cells[0].split("`")[1]] = cells
    return rows


def test_settings_markdown_has_a_row_for_every_setting() -> None:
    text = settings_markdown()
    assert GENERATED in text
    assert "| variable | type | default | description |" in text
    rows = _rows(text)
    # Grouped settings (settings.influxdb.url) keep their flat variable (HOMEIQ_INFLUXDB_URL).
    table = settings_table(Settings)
    assert list(rows) == [setting.env for setting in table]
    assert "HOMEIQ_INFLUXDB_URL" in rows and "HOMEIQ_API_PORT" in rows
    for setting in table:
        cells = rows[setting.env]
        assert len(cells) == 4, cells  # no stray | splitting a cell
        assert cells[3] == (setting.info.description or "").replace("|", "\\|")
        assert cells[3], f"{setting.name} has no description"


def test_settings_markdown_names_the_file_variable_of_credentials_only() -> None:
    rows = _rows(settings_markdown())
    assert rows["HOMEIQ_HA_TOKEN"][0] == "`HOMEIQ_HA_TOKEN` or `HOMEIQ_HA_TOKEN_FILE`"
    credentials = {
        "HOMEIQ_HA_TOKEN",
        "HOMEIQ_INFLUXDB_TOKEN",
        "HOMEIQ_INFLUXDB_USERNAME",
        "HOMEIQ_INFLUXDB_PASSWORD",
        "HOMEIQ_BACKUP_PASSPHRASE",
    }
    for var in credentials:
        assert rows[var][0] == f"`{var}` or `{var}_FILE`"
    others = [cells[0] for var, cells in rows.items() if var not in credentials]
    # No other setting offers a *_FILE alternative (HOMEIQ_BACKUP_IDENTITY_FILE is a path).
    assert others and all(" or " not in cell for cell in others)


def test_settings_markdown_types_and_defaults() -> None:
    rows = _rows(settings_markdown())
    assert rows["HOMEIQ_DATA_DIR"][1:3] == ["Path", "`homeiq-data`"]
    assert rows["HOMEIQ_HA_URL"][1:3] == ["str or None", "unset"]
    assert rows["HOMEIQ_HA_TOKEN"][1:3] == ["SecretStr or None", "unset"]
    assert rows["HOMEIQ_BATCH_MAX_EVENTS"][1:3] == ["int", "`5000`"]
    assert rows["HOMEIQ_BATCH_MAX_AGE_S"][1:3] == ["float", "`1.0`"]
    assert rows["HOMEIQ_QUEUE_MAX_EVENTS"][1:3] == ["int", "`50000`"]
    assert rows["HOMEIQ_STORE"][1:3] == ["Literal['sqlite', 'influxdb']", "`sqlite`"]
    assert rows["HOMEIQ_LOG_FORMAT"][1:3] == ["Literal['text', 'json']", "`text`"]


# -- main: write and --check -----------------------------------------------------------


def test_main_writes_both_files_then_check_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_md, settings_md = tmp_path / "docs" / "cli.md", tmp_path / "docs" / "settings.md"
    api_md = tmp_path / "docs" / "api.md"
    assert main(["--root", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"wrote {cli_md}",
        f"wrote {settings_md}",
        f"wrote {api_md}",
    ]
    assert cli_md.read_text(encoding="utf-8") == cli_markdown()
    assert settings_md.read_text(encoding="utf-8") == settings_markdown()
    assert api_md.read_text(encoding="utf-8") == api_markdown()

    # Up to date: a second write touches nothing, --check passes silently.
    before = {p: p.stat().st_mtime_ns for p in (cli_md, settings_md, api_md)}
    assert main(["--root", str(tmp_path)]) == 0
    assert capsys.readouterr().out == ""
    assert {p: p.stat().st_mtime_ns for p in (cli_md, settings_md, api_md)} == before
    assert main(["--check", "--root", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "")


def test_check_reports_the_edited_file_and_does_not_rewrite_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--root", str(tmp_path)]) == 0
    cli_md, settings_md = tmp_path / "docs" / "cli.md", tmp_path / "docs" / "settings.md"
    edited = settings_md.read_text(encoding="utf-8").replace("Minimum log level.", "Log level.")
    settings_md.write_text(edited, encoding="utf-8")
    capsys.readouterr()

    assert main(["--check", "--root", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{settings_md} is out of date" in captured.err
    assert str(cli_md) not in captured.err
    assert settings_md.read_text(encoding="utf-8") == edited  # --check only reports

    # Regenerating repairs it.
    assert main(["--root", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"wrote {settings_md}\n"
    assert main(["--check", "--root", str(tmp_path)]) == 0


def test_check_reports_missing_and_trailing_whitespace_edits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "docs" / "cli.md") in err
    assert str(tmp_path / "docs" / "settings.md") in err
    assert not (tmp_path / "docs").exists()

    assert main(["--root", str(tmp_path)]) == 0
    cli_md = tmp_path / "docs" / "cli.md"
    cli_md.write_text(cli_md.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["--check", "--root", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (f"{cli_md} is out of date: run python -m homeiq.gendocs\n")


def test_root_defaults_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    assert (tmp_path / "docs" / "cli.md").is_file()
    assert (tmp_path / "docs" / "settings.md").is_file()
    assert main(["--check"]) == 0


@pytest.mark.parametrize("name", ["cli.md", "settings.md", "api.md"])
def test_check_detects_a_one_character_drift_in_each_file(tmp_path: Path, name: str) -> None:
    main(["--root", str(tmp_path)])
    assert stale(tmp_path) == {}  # a fresh render is current
    edited = tmp_path / "docs" / name
    text = edited.read_text(encoding="utf-8")
    middle = len(text) // 2
    drifted = text[:middle] + ("x" if text[middle] != "x" else "y") + text[middle + 1 :]
    edited.write_text(drifted, encoding="utf-8")

    assert list(stale(tmp_path)) == [edited]
    assert stale(tmp_path)[edited] == text  # what it must hold: the render, not the edit
    main(["--root", str(tmp_path)])
    assert edited.read_text(encoding="utf-8") == text
    assert stale(tmp_path) == {}


def test_check_exit_code_follows_the_drift(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--root", str(tmp_path)]) == 0
    api_md = tmp_path / "docs" / "api.md"
    api_md.write_text(api_md.read_text(encoding="utf-8").replace("curl", "curk", 1))
    capsys.readouterr()
    assert main(["--check", "--root", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"{api_md} is out of date: run python -m homeiq.gendocs\n"
    assert main(["--root", str(tmp_path)]) == 0
    assert main(["--check", "--root", str(tmp_path)]) == 0


def test_repository_docs_are_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert (REPO / "docs" / "cli.md").is_file()
    assert main(["--check", "--root", str(REPO)]) == 0, capsys.readouterr().err


# -- docs/api.md -----------------------------------------------------------------------


def test_api_markdown_documents_every_operation_with_its_scope_and_a_curl() -> None:
    text = api_markdown()
    assert text.startswith(f"# HTTP API reference\n\n{GENERATED}\n")
    spec = openapi_schema()
    operations = [(m.upper(), p, op) for p, item in spec["paths"].items() for m, op in item.items()]
    headings = re.findall(r"^### ([A-Z]+ /\S*)$", text, flags=re.M)
    assert headings == [f"{m} {p}" for m, p, _ in operations]
    for method, path, operation in operations:
        section = text.split(f"### {method} {path}\n", 1)[1].split("\n### ", 1)[0]
        assert f"**{operation['summary']}.**" in section
        scope = operation.get("x-required-scope")
        assert (f"Key scope: `{scope}`" if scope else "No key needed.") in section
        [curl] = re.findall(r"^curl .*$", section, flags=re.M)
        assert ("Authorization: Bearer $HOMEIQ_API_KEY" in curl) is bool(scope)
        assert "{" not in curl.split("http://", 1)[1]  # path parameters filled in
        if method != "GET":
            assert f"-X {method}" in curl
        row = f"| {method} | `{path}` | {scope or 'none'} | {operation['summary']} |"
        assert row in text


def test_api_markdown_has_the_error_table_and_every_schema() -> None:
    text = api_markdown()
    errors = text.split("## Errors\n", 1)[1].split("\n## ", 1)[0]
    for status in ("401", "403", "404", "413", "414", "422", "429", "500"):
        assert re.search(rf"^\| {status} \| .+ \|$", errors, flags=re.M), status
    for name in openapi_schema()["components"]["schemas"]:
        assert f"\n### {name}\n" in text
    assert "| `error` | `ErrorDetail` | yes |" in text
    assert '-d \'{"name":"grafana","scopes":["read"]}\'' in text


def test_api_markdown_does_not_depend_on_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    reference = api_markdown()
    monkeypatch.setenv("HOMEIQ_API_PORT", "9999")
    monkeypatch.setenv("HOMEIQ_API_CORS_ORIGINS", "https://a.example")
    monkeypatch.setenv("HOMEIQ_API_RATE_LIMIT_READ", "1/second")
    assert api_markdown() == reference


def _operation(*params: dict[str, Any], body: dict[str, Any] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"parameters": list(params), "security": [{"key": []}]}
    if body is not None:
        operation["requestBody"] = {"content": {"application/json": {"schema": body}}}
    return operation


def test_curl_fills_every_required_parameter_with_its_example_percent_encoded() -> None:
    operation = _operation(
        {
            "name": "context_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            "examples": {"one": {"value": "01J/X"}},
        },
        {
            "name": "entity_id",
            "in": "query",
            "required": True,
            "schema": {"type": "array", "examples": [["sensor.a", "sensor.b"]]},
        },
        {
            "name": "start",
            "in": "query",
            "required": True,
            "schema": {"type": "string", "examples": ["2026-11-26T12:00:00+00:00"]},
        },
        {"name": "minimal", "in": "query", "required": True, "example": True, "schema": {}},
        {"name": "end", "in": "query", "required": False, "schema": {"type": "string"}},
    )
    curl = gendocs._curl("get", "/api/v1/x/{context_id}", operation, {})
    assert curl == (
        'curl -H "Authorization: Bearer $HOMEIQ_API_KEY" '
        "'http://127.0.0.1:8642/api/v1/x/01J%2FX?entity_id=sensor.a&entity_id=sensor.b"
        "&start=2026-11-26T12:00:00%2B00:00&minimal=true'"
    )


def test_curl_refuses_required_parameters_without_an_example() -> None:
    operation = _operation(
        {"name": "entity_id", "in": "query", "required": True, "schema": {"type": "string"}},
        {
            "name": "start",
            "in": "query",
            "required": True,
            "schema": {"anyOf": [{"type": "string", "examples": ["2026-11-26T12:00:00Z"]}]},
        },
        {"name": "time", "in": "query", "required": True, "schema": {"type": "string"}},
    )
    with pytest.raises(MissingExample) as caught:
        gendocs._curl("get", "/api/v1/x", operation, {})
    assert str(caught.value) == (
        "required query parameter `entity_id`, query parameter `time` without an example"
    )


def test_curl_body_comes_from_the_field_examples_and_needs_one_per_required_field() -> None:
    components = {
        "RebuildIn": {
            "properties": {
                "start": {"type": "string", "examples": ["2026-11-26T00:00:00+00:00"]},
                "entity_id": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            },
            "required": ["start"],
        }
    }
    body = {"$ref": "#/components/schemas/RebuildIn"}
    curl = gendocs._curl("post", "/r", _operation(body=body), components)
    assert "-X POST" in curl
    assert """-d '{"start":"2026-11-26T00:00:00+00:00"}'""" in curl
    del components["RebuildIn"]["properties"]["start"]["examples"]
    with pytest.raises(MissingExample, match="required body field `start` without"):
        gendocs._curl("post", "/r", _operation(body=body), components)


def test_main_fails_naming_the_route_and_parameter_without_an_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = copy.deepcopy(openapi_schema())
    operation = spec["paths"]["/api/v1/registry/areas/{area_id}"]["get"]
    [area_id] = [p for p in operation["parameters"] if p["name"] == "area_id"]
    area_id["schema"].pop("examples")  # the one the schema gives today
    monkeypatch.setattr(gendocs, "openapi_schema", lambda: spec)
    main(["--root", str(tmp_path)])
    capsys.readouterr()
    assert main(["--check", "--root", str(tmp_path)]) == 1
    assert (
        "docs/api.md: GET /api/v1/registry/areas/{area_id}: required path parameter"
        " `area_id` without an example" in capsys.readouterr().err
    )
    text = (tmp_path / "docs" / "api.md").read_text(encoding="utf-8")
    assert "# not generated: required path parameter `area_id` without an example" in text


def test_every_required_parameter_of_the_api_has_an_example() -> None:
    assert missing_examples() == []
    for curl in re.findall(r"^curl .*$", api_markdown(), flags=re.M):
        assert "START" not in curl and "CONTEXT_ID" not in curl
    assert "# not generated" not in api_markdown()


def test_optional_settings_are_not_marked_required() -> None:
    rows = _rows(settings_markdown())
    for setting in settings_table(Settings):
        cells = rows[setting.env]
        assert (cells[2] == "(required)") is setting.info.is_required(), setting.name
    for var in ("HOMEIQ_API_CORS_ORIGINS", "HOMEIQ_BACKUP_TARGETS", "HOMEIQ_BACKUP_RECIPIENTS"):
        assert rows[var][2] == "empty", var
