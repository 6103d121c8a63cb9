"""Times in the API's parameters: ISO 8601 with a UTC offset, as integer microseconds.

Two traps of times in URLs are closed here. A ``+`` written unencoded in a query string
arrives as a space (form encoding), so ``...T12:00:00+00:00`` reaches us as
``...T12:00:00 00:00``: a space before a trailing ``HH:MM`` can only be that ``+``, and is
read as one. And a time whose UTC instant falls outside years 1 to 9999 (year 1 with
offset +23:59 is in year 0) is refused with a 422: an answer echoes its times, and could
not write such a one as a date.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Query
from pydantic import BeforeValidator

from homeiq.api.errors import ApiError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# A time's UTC offset written with + in a URL arrives as a space when the client did not
# encode it as %2B (form encoding decodes + to a space): "...T12:00:00 00:00". A space
# followed by HH:MM (or HHMM) at the end of a date-time can only be that +.
_DECODED_PLUS = re.compile(
    r"(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?) (\d{2}:?\d{2})"
)
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
TIME_HELP = (
    "ISO 8601 with a UTC offset, e.g. 2026-12-01T00:00:00Z. In a URL write + as %2B;"
    " a + sent unencoded arrives as a space, which is read as the + it was."
)


def _iso_only(value: object) -> object:
    """Only ISO 8601 strings: pydantic would also read ``0.5`` as a Unix timestamp. A
    space before a trailing HH:MM offset is read as the URL-decoded + it was."""
    if not isinstance(value, str) or _NUMBER.fullmatch(value.strip()):
        raise ValueError("expected an ISO 8601 date-time, e.g. 2026-11-25T21:00:00+00:00")
    text = value.strip()
    found = _DECODED_PLUS.fullmatch(text)
    return f"{found[1]}+{found[2]}" if found else text


Iso = Annotated[datetime, BeforeValidator(_iso_only)]
When = Annotated[Iso | None, Query(description=TIME_HELP)]
# The time examples: fixed, valid, and recent enough to hold the demo's events.
TIME_EXAMPLE = "2026-12-01T00:00:00Z"
ENTITY_EXAMPLE = "sensor.living_room_multisensor_temperature"


def to_us(when: datetime | None, name: str) -> int | None:
    """A query time as integer µs (None stays None); 422 for a time without a UTC offset
    (ambiguous) or one outside years 1 to 9999 once in UTC (0001-01-01T00:00+23:59 is in
    year 0): every time an answer echoes must be one it can write as a date."""
    if when is None:
        return None
    if when.tzinfo is None:
        raise ApiError(422, f"{name} needs a UTC offset, e.g. 2026-11-25T21:00:00+00:00")
    at = (when - _EPOCH) // _ONE_US
    if not MIN_TIME_US <= at <= MAX_TIME_US:
        raise ApiError(422, f"{name} must fall within years 1 to 9999 in UTC")
    return at


_ONE_US = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH
MIN_TIME_US = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _ONE_US
MAX_TIME_US = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - _EPOCH) // _ONE_US


def or_now(when: int | None, now: int) -> int:
    """``when``, or ``now`` when not given (0, the epoch, is a time like any other)."""
    return now if when is None else when


def now_us() -> int:
    """Wall-clock time in integer microseconds."""
    return time.time_ns() // 1000
