"""The cleanup history table: its schema step over an older metadata.db, and how a run's
status reads (running, done, failed, interrupted when its process is gone)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from homeiq.maintenance.cleanup import CleanupHistory, Provenance
from homeiq.maintenance.cleanup.history import process_alive
from homeiq.maintenance.cleanup.provenance import HOME_ASSISTANT, SIMULATOR, origin_of
from homeiq.metadata import schema
from homeiq.metadata.store import METADATA_DB, MetadataStore
from homeiq.sqlitedb import connect, migrate


def test_an_older_metadata_db_gains_the_cleanup_tables_and_keeps_its_data(
    tmp_path: Path,
) -> None:
    step = schema.STEPS.index(schema._cleanup)
    conn = connect(str(tmp_path / METADATA_DB))
    migrate(conn, schema.STEPS[:step])  # the database as it was before this step
    conn.execute("INSERT INTO kv VALUES ('durable_until_us', '42')")
    conn.close()
    store = MetadataStore.in_dir(tmp_path)
    try:
        assert store.get("durable_until_us") == "42"
        assert CleanupHistory(store).runs() == []
        assert Provenance(store).simulator_only() == set()
    finally:
        store.close()


def test_statuses_of_runs(tmp_path: Path) -> None:
    store = MetadataStore.in_dir(tmp_path)
    try:
        history = CleanupHistory(store)
        ok = history.start("erin", "sensor.test_*", '{"entity_ids": []}', 5)
        history.finish(ok, "done", 5)
        bad = history.start("schedule", "light.*", '{"entity_ids": []}', 2)
        history.finish(bad, "failed", 0, "store unavailable")
        mine = history.start("erin", "switch.*", '{"entity_ids": []}', 1)
        runs = {r.id: r for r in history.runs()}
        assert [runs[i].shown_status for i in (ok, bad, mine)] == ["done", "failed", "running"]
        assert runs[bad].detail == "store unavailable"
        assert history.interrupted() == []  # this process runs it: not interrupted
    finally:
        store.close()


def test_a_process_that_ended_is_not_alive() -> None:
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, check=True)  # fmt: skip
    assert not process_alive(int(ended.stdout))
    assert process_alive(os.getpid())


def test_the_simulator_says_what_it_is_and_home_assistant_does_not() -> None:
    assert origin_of({"location_name": "Home", "homeiq_simulator": True}) == SIMULATOR
    assert origin_of({"location_name": "Home", "version": "2024.3.3"}) == HOME_ASSISTANT
    assert origin_of(None) == HOME_ASSISTANT


def test_an_interrupted_run_is_taken_over_once(tmp_path: Path) -> None:
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, check=True)  # fmt: skip
    store = MetadataStore.in_dir(tmp_path)
    try:
        history = CleanupHistory(store)
        run_id = history.start("frank", "sensor.test_*", '{"entity_ids": []}', 4)
        with store._writing() as conn:  # as a killed process leaves it: its pid is gone
            conn.execute(
                "UPDATE cleanup_runs SET pid = ? WHERE id = ?", (int(ended.stdout), run_id)
            )
        (run,) = history.interrupted()
        assert run.shown_status == "interrupted"
        assert history.take_over(run, 1, "resumed")
        assert not history.take_over(run, 1, "resumed")  # a second resume backs off
        assert history.interrupted() == []
    finally:
        store.close()
