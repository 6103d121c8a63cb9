"""Dead letters built and kept in one place: counted by reason, written to a real
metadata.db, and kept (not lost, not fatal) while that database refuses writes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from homeiq.metadata.store import MetadataStore
from homeiq.model import DeadLetter
from homeiq.observability.metrics import Metrics
from homeiq.pipeline.deadletters import DeadLetters, dead_letter

LOGGER = "homeiq.pipeline.deadletters"


@pytest.fixture
def metadata(tmp_path: Path) -> Iterator[MetadataStore]:
    store = MetadataStore.in_dir(tmp_path)
    yield store
    store.close()


def disk_full(metadata: MetadataStore, full: bool = True) -> None:
    """Cap metadata.db at its size (SQLite's real SQLITE_FULL), or lift the cap."""
    conn = metadata._conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0] if full else 1_073_741_823
    conn.execute(f"PRAGMA max_page_count={pages}")


def big(reason: str, n: int) -> DeadLetter:
    """A dead letter too large for the free space left in metadata.db's pages."""
    return dead_letter(reason, f"letter {n}", b"x" * 20_000 + str(n).encode(), received_at=n)


def rejected(metrics: Metrics, reason: str) -> float:
    return metrics.value("homeiq_events_rejected_total", {"reason": reason})


# -- building ---------------------------------------------------------------------------------


def test_a_parsed_message_is_kept_as_json_with_its_entity() -> None:
    letter = dead_letter("bad_state", "state is 123", {"state": 123}, entity_id="sensor.a")
    assert orjson.loads(letter.payload) == {"state": 123}
    assert (letter.reason, letter.detail, letter.entity_id) == (
        "bad_state",
        "state is 123",
        "sensor.a",
    )
    assert letter.received_at > 1_700_000_000_000_000  # now, in µs


def test_a_raw_frame_is_kept_byte_for_byte() -> None:
    assert dead_letter("invalid_json", "x", b"{\xff").payload == b"{\xff"
    assert dead_letter("invalid_json", "x", "{é").payload == "{é".encode()


def test_what_json_cannot_hold_falls_back_to_the_frame_then_the_repr() -> None:
    message = {1: "int key"}  # orjson refuses non-str keys
    assert dead_letter("r", "d", message, raw=b"frame").payload == b"frame"
    assert dead_letter("r", "d", message).payload == repr(message).encode()
    assert dead_letter("r", "d", message, received_at=7).received_at == 7


# -- keeping ----------------------------------------------------------------------------------


async def test_letters_are_stored_and_counted_by_reason(metadata: MetadataStore) -> None:
    metrics = Metrics()
    keeper = DeadLetters(metadata, metrics)
    await keeper.keep([big("bad_state", 1), big("bad_state", 2), big("invalid_json", 3)])
    assert metadata.dead_letter_counts() == {"bad_state": 2, "invalid_json": 1}
    assert rejected(metrics, "bad_state") == 2 and rejected(metrics, "invalid_json") == 1
    assert keeper.pending == 0


async def test_a_full_disk_keeps_letters_waiting_then_writes_them_in_order(
    metadata: MetadataStore, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    keeper = DeadLetters(metadata, metrics)
    disk_full(metadata)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        await keeper.keep([big("bad_state", 1)])  # does not raise
        await keeper.keep([big("invalid_json", 2)])
    assert keeper.pending == 2
    assert metadata.dead_letters() == []
    assert metrics.value("homeiq_dead_letter_write_failures_total") == 2
    assert metrics.value("homeiq_dead_letters_pending") == 2
    assert rejected(metrics, "bad_state") == 1  # counted once, when it arrived
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # once per outage, not once per batch
    assert "metadata.db: database or disk is full" in errors[0].getMessage()

    disk_full(metadata, full=False)  # the operator freed space
    await keeper.keep([big("bad_state", 3)])
    assert keeper.pending == 0
    assert [d.detail for d in reversed(metadata.dead_letters())] == [
        "letter 1",
        "letter 2",
        "letter 3",
    ]
    assert rejected(metrics, "bad_state") == 2 and rejected(metrics, "invalid_json") == 1
    assert metrics.value("homeiq_dead_letters_pending") == 0


async def test_waiting_letters_are_bounded_and_what_is_dropped_is_counted(
    metadata: MetadataStore, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    keeper = DeadLetters(metadata, metrics, max_pending=3)
    disk_full(metadata)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        await keeper.keep([big("a", 1), big("a", 2), big("b", 3), big("b", 4), big("b", 5)])
    assert keeper.pending == 3
    assert metrics.value("homeiq_dead_letters_lost_total") == 2
    assert any(
        "2 dead letters lost" in r.getMessage() and "a 2" in r.getMessage() for r in caplog.records
    )
    disk_full(metadata, full=False)
    await keeper.flush()
    assert [d.detail for d in reversed(metadata.dead_letters())] == [
        "letter 3",
        "letter 4",
        "letter 5",
    ]


async def test_what_still_cannot_be_written_at_stop_is_reported_lost(
    metadata: MetadataStore, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    keeper = DeadLetters(metadata, metrics)
    disk_full(metadata)
    await keeper.keep([big("bad_state", 1)])
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        assert await keeper.flush() == 1
    assert keeper.pending == 0
    assert metrics.value("homeiq_dead_letters_lost_total") == 1
    assert any("still refuses them at stop" in r.getMessage() for r in caplog.records)
