"""Dead-letter re-drive: put kept messages back through the normalizer into the store.

A dead letter's payload is what HomeIQ received, so it goes the way it first went:

* a WebSocket ``state_changed`` message -> :meth:`Normalizer.message` (source live);
* a Home Assistant history row (backfill) -> :meth:`Normalizer.state_row` (source
  backfill), its entity id taken from the letter;
* an event record the store refused (``sink_rejected``) -> rebuilt as is: it was
  normalized already, and the store may take it now (a schema conflict fixed, say).

The records then go through :meth:`Delivery.deliver`, the writer's own path into the
store (retries, breaker, spool), which answers at once with whatever the store refuses
for good. Letters whose record was stored (or spooled, which is as durable) are removed;
the others stay, and the answer says why each was rejected this time. Writes are
idempotent on (entity_id, time), so re-driving a letter twice stores it once.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

import orjson

from homeiq.errors import InvalidEvent
from homeiq.metadata.store import StoredDeadLetter
from homeiq.model import DeadLetter, EventRecord, Origin, Source
from homeiq.pipeline.delivery import Delivery
from homeiq.pipeline.normalize import Normalizer, valid_entity_id

log = logging.getLogger(__name__)

_RECORD_FIELDS = {f.name for f in dataclasses.fields(EventRecord)}


@dataclass(slots=True, frozen=True)
class StillRejected:
    """A letter that could not be stored this time either."""

    id: int
    reason: str
    detail: str


@dataclass(slots=True)
class RedriveOutcome:
    """Which letters were stored and which were rejected again."""

    stored: list[int] = field(default_factory=list)
    rejected: list[StillRejected] = field(default_factory=list)


def record_of(normalizer: Normalizer, letter: DeadLetter) -> EventRecord:
    """The event record a dead letter's payload stands for; InvalidEvent when none."""
    try:
        payload = orjson.loads(letter.payload)
    except orjson.JSONDecodeError:
        raise InvalidEvent("invalid_json", "the payload is not JSON") from None
    if isinstance(payload, dict):
        if "type" in payload:
            return normalizer.message(payload, Source.LIVE)
        if {"entity_id", "time", "attributes_json"} <= payload.keys():
            return _rebuilt(payload)
        if "state" in payload and "last_updated" in payload and letter.entity_id:
            return normalizer.state_row(letter.entity_id, payload, None, Source.BACKFILL)
    raise InvalidEvent("not_redrivable", "the payload is not a state change HomeIQ can store")


def _rebuilt(data: dict[str, Any]) -> EventRecord:
    """An event record from its JSON form (how a refused record is dead-lettered)."""
    kwargs = {k: v for k, v in data.items() if k in _RECORD_FIELDS}
    try:
        entity_id, time = kwargs["entity_id"], kwargs["time"]
        if not isinstance(entity_id, str) or not valid_entity_id(entity_id):
            raise ValueError("entity_id")
        if type(time) is not int:
            raise ValueError("time")
        attributes_json = kwargs.get("attributes_json", "{}")
        if not isinstance(attributes_json, str):
            raise ValueError("attributes_json")
        kwargs["attributes_json"] = attributes_json.encode()
        kwargs["origin"] = Origin(kwargs.get("origin", Origin.LOCAL))
        kwargs["source"] = Source(kwargs.get("source", Source.LIVE))
        return EventRecord(**kwargs)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidEvent("not_redrivable", f"not a valid event record ({exc})") from None


async def redrive(
    normalizer: Normalizer, delivery: Delivery, letters: list[StoredDeadLetter]
) -> RedriveOutcome:
    """Normalize and deliver ``letters``; the caller removes the stored ones."""
    outcome = RedriveOutcome()
    # A key may stand for several letters (the same event kept twice): one write decides.
    by_key: dict[tuple[str, int], list[int]] = {}
    records: list[EventRecord] = []
    for kept in letters:
        try:
            record = record_of(normalizer, kept.letter)
        except InvalidEvent as exc:
            outcome.rejected.append(StillRejected(kept.id, exc.reason, exc.detail))
            continue
        if record.dropped_attributes_bytes:
            # It would be stored without its attributes again: keep the full message.
            detail = f"{record.dropped_attributes_bytes} bytes of attributes exceed the cap"
            outcome.rejected.append(StillRejected(kept.id, "attributes_too_large", detail))
            continue
        key = (record.entity_id, record.time)
        if key not in by_key:
            by_key[key] = []
            records.append(record)
        by_key[key].append(kept.id)
    refused = await delivery.deliver(records) if records else []
    for letter in refused:
        for letter_id in by_key.pop(_key_of(letter), []):
            outcome.rejected.append(StillRejected(letter_id, letter.reason, letter.detail))
    outcome.stored = sorted(i for ids in by_key.values() for i in ids)
    log.info(
        "re-drove %d dead letters: %d stored, %d still rejected",
        len(letters),
        len(outcome.stored),
        len(outcome.rejected),
    )
    return outcome


def _key_of(letter: DeadLetter) -> tuple[str, int]:
    try:
        data = orjson.loads(letter.payload)
        return str(data["entity_id"]), int(data["time"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return "", -1
