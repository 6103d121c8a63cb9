"""Compact encodings for the SQLite event table.

Home Assistant context ids are 26-character ULIDs; stored as 16-byte blobs they take
less than two thirds of the space, which matters at tens of millions of rows. Ids that
are not ULIDs (older HA used 32-char hex uuids) are stored as text unchanged, so the
round trip is exact either way.
"""

from __future__ import annotations

import re

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TO_INT_DIGITS = str.maketrans(_CROCKFORD, "0123456789abcdefghijklmnopqrstuv")
# A ULID's first character is at most 7: 26 chars x 5 bits = 130 bits, the top 2 zero.
_ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")


def encode_context(context_id: str | None) -> bytes | str | None:
    """A context id as stored: 16 bytes for a ULID, else the text itself."""
    if context_id is None or _ULID.fullmatch(context_id) is None:
        return context_id
    return int(context_id.translate(_TO_INT_DIGITS), 32).to_bytes(16, "big")


def decode_context(stored: bytes | str | None) -> str | None:
    """Inverse of :func:`encode_context`."""
    if stored is None or isinstance(stored, str):
        return stored
    number = int.from_bytes(stored, "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[number & 31])
        number >>= 5
    return "".join(reversed(chars))
