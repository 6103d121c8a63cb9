"""Turning dead-letter payloads back into records, and a record the real store refuses
again staying dead-lettered with the store's new message."""

from __future__ import annotations

import orjson
import pytest

from homeiq.api.redrive import record_of, redrive
from homeiq.errors import InvalidEvent
from homeiq.metadata.store import StoredDeadLetter
from homeiq.model import DeadLetter, EventRecord, Origin, Source
from homeiq.pipeline.normalize import Normalizer
from tests.api.conftest import Api

T0 = 1_700_000_000_000_000


def as_refused(record: EventRecord) -> bytes:
    """A record as the delivery wrapper dead-letters it when the store refuses it."""
    return orjson.dumps(record, default=lambda v: v.decode() if isinstance(v, bytes) else str(v))


def letter(payload: bytes, entity_id: str | None = None) -> DeadLetter:
    return DeadLetter("some_reason", "detail", payload, T0, entity_id)


def test_a_refused_record_is_rebuilt_as_it_was() -> None:
    record = EventRecord(
        "sensor.x",
        T0,
        "21.5",
        value=21.5,
        previous_state="21.0",
        attributes={"unit_of_measurement": "°C"},
        attributes_json=b'{"unit_of_measurement":"\xc2\xb0C"}',
        context_id="01HXK5QG6V9Z8T0AB1CDEFGHJK",
        area_id="kitchen",
        origin=Origin.REMOTE,
        source=Source.BACKFILL,
    )
    assert record_of(Normalizer(), letter(as_refused(record))) == record


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff not json", "invalid_json"),
        (b"[1, 2]", "not_redrivable"),
        (b'"a string"', "not_redrivable"),
        (b'{"something": "else"}', "not_redrivable"),
        (b'{"type": "result", "id": 3}', "unknown_message"),
        (b'{"entity_id": "bad id", "time": 1, "attributes_json": "{}"}', "not_redrivable"),
        (b'{"entity_id": "sensor.x", "time": 1.5, "attributes_json": "{}"}', "not_redrivable"),
        (b'{"entity_id": "sensor.x", "time": 1, "attributes_json": {}}', "not_redrivable"),
        (
            b'{"entity_id": "sensor.x", "time": 1, "attributes_json": "{}", "origin": 7}',
            "not_redrivable",
        ),
        (b'{"entity_id": "sensor.x", "time": 1, "attributes_json": "{}", "state": []}', None),
    ],
)
def test_payloads_that_are_no_storable_state_change(payload: bytes, reason: str | None) -> None:
    if reason is None:
        # Well-formed enough to rebuild; the store is the judge of the rest.
        assert record_of(Normalizer(), letter(payload)).entity_id == "sensor.x"
        return
    with pytest.raises(InvalidEvent) as caught:
        record_of(Normalizer(), letter(payload))
    assert caught.value.reason == reason


def test_a_history_row_needs_the_letters_entity_id() -> None:
    row = b'{"state": "on", "last_updated": "2023-11-14T22:13:20+00:00", "attributes": {}}'
    with pytest.raises(InvalidEvent):
        record_of(Normalizer(), letter(row))
    record = record_of(Normalizer(), letter(row, "switch.porch"))
    assert (record.entity_id, record.state, record.source) == (
        "switch.porch",
        "on",
        Source.BACKFILL,
    )


async def test_a_record_the_store_refuses_again_stays_with_the_stores_message(api: Api) -> None:
    runtime = api.runtime
    fine = EventRecord("sensor.fine", T0, "1")
    # Past SQLite's signed 64 bits (JSON carries it): the store refuses the row for good.
    unstorable = EventRecord("sensor.far_future", 2**63, "1")
    letters = [
        StoredDeadLetter(1, letter(as_refused(fine))),
        StoredDeadLetter(2, letter(as_refused(unstorable))),
        StoredDeadLetter(3, letter(as_refused(fine))),  # the same event kept twice
    ]
    outcome = await redrive(runtime.normalizer, runtime.delivery, letters)
    assert outcome.stored == [1, 3]
    [again] = outcome.rejected
    assert (again.id, again.reason) == (2, "sink_rejected")
    assert "sqlite cannot store a value" in again.detail
    assert [r.time for r in await runtime.reader.history("sensor.fine", None, None, 5)] == [T0]
