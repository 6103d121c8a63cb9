"""What every reader does the same way, whatever its backend: so the answers are identical.

* Page cursors (:func:`encode_cursor`, :func:`decode_cursor`): the (time, entity_id) of
  the last record of a page and the direction, as url-safe base64 of a small JSON array.
  The format is not a contract (clients pass it back as they got it), but a version
  number leads, so a later format can refuse an old cursor with a clear message.
* Context time windows (:func:`context_window`, :func:`context_searches`): where to look
  for the events of a context without an index on context ids.
* Activity assembly (:func:`bucket_starts`, :func:`build_activity`): a backend counts,
  this module turns counts into an :class:`~homeiq.sinks.base.Activity`.

The time bound of a context search. Home Assistant's context ids are ULIDs: the first 10
of their 26 characters encode the creation time in milliseconds. A state change carrying
a context (``context_id``), or a context created because of it (a child's
``context_parent_id``, e.g. an automation triggered by a motion sensor's change),
happens at or after that creation, and in practice within seconds. Readers therefore search
``[created - CONTEXT_BEFORE_US, created + CONTEXT_AFTER_US)``: one second before (the
millisecond truncation, and clock adjustments between the two readings), one hour after
(a script that waits longer than an hour before acting is not traced past that hour).
An event is returned only when its time lies in the window of the id it matched, so the
answer for one id does not depend on which other ids were asked with it.

Ids that are not ULIDs (older Home Assistant used 32-character hex uuids; imports may
carry anything) say nothing about time: they are searched within ``NON_ULID_SPAN_US`` on
either side of an anchor, the caller's ``around`` (the time of the event the id came
from, typically) or else the newest stored event. What lies outside is not found.
"""

from __future__ import annotations

import base64
import binascii
import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import orjson

from homeiq import ulid
from homeiq.sinks.base import Activity

NO_AREA = "(no area)"
CURSOR_VERSION = 1
SECOND_US = 1_000_000
CONTEXT_BEFORE_US = SECOND_US
CONTEXT_AFTER_US = 3600 * SECOND_US
NON_ULID_SPAN_US = 24 * 3600 * SECOND_US
# An activity request makes one count per bucket; more than this is a chart nobody reads.
MAX_BUCKETS = 10_000
# Activity times (and bucket widths) stay within ±2**62 µs (146,000 years), so bucket
# arithmetic never leaves the 64 bits SQLite and InfluxDB compute in.
TIME_LIMIT_US = 2**62


# -- cursors ---------------------------------------------------------------------------


def encode_cursor(time: int, entity_id: str, newest_first: bool) -> str:
    """The opaque cursor after the record (time, entity_id) in the given order."""
    raw = orjson.dumps([CURSOR_VERSION, "desc" if newest_first else "asc", time, entity_id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, newest_first: bool) -> tuple[int, str]:
    """(time, entity_id) of a cursor from :func:`encode_cursor`; ValueError if it is not one
    or belongs to the other order."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
        version, order, time, entity_id = orjson.loads(raw)
    except (UnicodeEncodeError, binascii.Error, orjson.JSONDecodeError, TypeError, ValueError):
        raise ValueError("malformed cursor: pass back next_cursor as received") from None
    if (
        version != CURSOR_VERSION
        or order not in ("asc", "desc")
        or type(time) is not int
        or not -(2**63) <= time < 2**63
        or not isinstance(entity_id, str)
    ):
        raise ValueError("malformed cursor: pass back next_cursor as received")
    if (order == "desc") != newest_first:
        raise ValueError("the cursor belongs to a page in the other order (newest_first)")
    return time, entity_id


# -- context windows -------------------------------------------------------------------


def ulid_time_us(context_id: str) -> int | None:
    """Creation time (µs) of a ULID context id; None when the id is not a ULID."""
    ms = ulid.time_ms(context_id)
    return None if ms is None else ms * 1000


def context_window(context_id: str, anchor: int | None) -> tuple[int, int] | None:
    """``[low, high)`` in µs where events of ``context_id`` are searched (module docstring).

    ``anchor`` is the time non-ULID ids are searched around; None = do not search them.
    """
    created = ulid_time_us(context_id)
    if created is not None:
        return created - CONTEXT_BEFORE_US, created + CONTEXT_AFTER_US
    if anchor is None:
        return None
    return anchor - NON_ULID_SPAN_US, anchor + NON_ULID_SPAN_US + 1


def needs_anchor(context_ids: Iterable[str]) -> bool:
    """True when some id is not a ULID (the reader must find an anchor time for it)."""
    return any(ulid_time_us(c) is None for c in context_ids)


@dataclass(slots=True)
class ContextSearch:
    """One time range to search, and the ids whose windows make it up (with each window)."""

    start: int
    end: int
    windows: dict[str, tuple[int, int]]

    def wanted(self, context_id: str | None, time: int) -> bool:
        """Whether an event found in this range lies in the window of the id it matched."""
        window = None if context_id is None else self.windows.get(context_id)
        return window is not None and window[0] <= time < window[1]


def context_searches(context_ids: Sequence[str], anchor: int | None) -> list[ContextSearch]:
    """The windows of ``context_ids``, overlapping ones merged: one query each."""
    windows = []
    for context_id in dict.fromkeys(context_ids):
        window = context_window(context_id, anchor)
        if window is not None:
            windows.append((window, context_id))
    searches: list[ContextSearch] = []
    for (low, high), context_id in sorted(windows):
        if searches and low <= searches[-1].end:
            searches[-1].end = max(searches[-1].end, high)
        else:
            searches.append(ContextSearch(low, high, {}))
        searches[-1].windows[context_id] = (low, high)
    return searches


# -- activity --------------------------------------------------------------------------


def bucket_starts(start: int, end: int, bucket_s: int, top: int = 0) -> list[int]:
    """Starts (µs, epoch-aligned) of the buckets overlapping ``[start, end)``; ValueError
    for arguments :meth:`~homeiq.sinks.base.EventReader.activity` refuses."""
    if top < 0:
        raise ValueError(f"top must not be negative, not {top}")
    if bucket_s < 1:
        raise ValueError(f"bucket_s must be at least 1, not {bucket_s}")
    width = bucket_s * SECOND_US
    if not (-TIME_LIMIT_US <= start <= TIME_LIMIT_US and -TIME_LIMIT_US <= end <= TIME_LIMIT_US):
        raise ValueError(f"start and end must be within ±{TIME_LIMIT_US} µs of 1970")
    if width > TIME_LIMIT_US:
        raise ValueError(f"bucket_s must be at most {TIME_LIMIT_US // SECOND_US}")
    if end <= start:
        return []
    first = start - start % width  # Python's % floors, so this holds before 1970 too
    count = (end - first + width - 1) // width
    if count > MAX_BUCKETS:
        raise ValueError(
            f"{count} buckets of {bucket_s} s in the range; at most {MAX_BUCKETS}:"
            " use a larger bucket or a shorter range"
        )
    return [first + i * width for i in range(count)]


def build_activity(
    start: int,
    end: int,
    bucket_s: int,
    top: int,
    counts: Iterable[tuple[str, str | None, int]],
    per_bucket: dict[int, int],
) -> Activity:
    """An :class:`Activity` from counts per (entity_id, area_id) and per bucket start."""
    starts = bucket_starts(start, end, bucket_s, top)
    activity = Activity(start=start, end=end, bucket_s=bucket_s)
    per_entity: dict[str, int] = {}
    for entity_id, area_id, count in counts:
        if count <= 0:
            continue
        per_entity[entity_id] = per_entity.get(entity_id, 0) + count
        domain = entity_id.partition(".")[0]
        area = area_id or NO_AREA
        activity.total += count
        activity.by_domain[domain] = activity.by_domain.get(domain, 0) + count
        activity.by_area[area] = activity.by_area.get(area, 0) + count
    activity.top_entities = heapq.nsmallest(
        top, per_entity.items(), key=lambda item: (-item[1], item[0])
    )
    activity.buckets = [(s, per_bucket.get(s, 0)) for s in starts]
    return activity
