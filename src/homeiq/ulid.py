"""ULIDs, the ids Home Assistant gives contexts, written once: the Crockford base-32
alphabet, the 128-bit number a ULID spells, its creation time, and the packed 16-byte
form the SQLite store keeps.

A ULID is 26 digits of Crockford's base 32 (``0-9`` and ``A-Z`` without ``I L O U``):
48 bits of milliseconds since the epoch, then 80 random bits. 26 digits hold 130 bits,
so the first digit is at most ``7``. Home Assistant writes them in upper case; the spec
decodes either case (:func:`time_ms` does), but :func:`pack` only packs the canonical
upper-case form, so whatever it packs unpacks to the very same text.

Decoding runs once per row a query returns, so it takes two digits (10 bits) per step
from a table of all 1024 pairs: 13 lookups instead of 26.
"""

from __future__ import annotations

import re
from typing import Final

ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH: Final = 26
# Every pair of digits, indexed by the 10 bits it spells; as bytes for building JSON.
DIGIT_PAIRS: Final = tuple(a + b for a in ALPHABET for b in ALPHABET)
DIGIT_PAIRS_BYTES: Final = tuple(pair.encode() for pair in DIGIT_PAIRS)
_PAIR_SHIFTS: Final = tuple(range(120, -10, -10))  # 13 pairs, the first holds 0-7

_CANONICAL = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")
_ANY_CASE = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}", re.IGNORECASE)
# Crockford digits -> the digits int(..., 32) reads, in either case.
_TO_INT_DIGITS: Final = str.maketrans(
    ALPHABET + ALPHABET.lower(), "0123456789abcdefghijklmnopqrstuv" * 2
)


def is_ulid(text: str) -> bool:
    """True for a ULID in its canonical, upper-case spelling."""
    return len(text) == LENGTH and _CANONICAL.fullmatch(text) is not None


def to_int(ulid: str) -> int:
    """The 128-bit number ``ulid`` spells (either case); ValueError if it is no ULID."""
    if len(ulid) != LENGTH or _ANY_CASE.fullmatch(ulid) is None:
        raise ValueError(f"not a ULID: {ulid!r}")
    return int(ulid.translate(_TO_INT_DIGITS), 32)


def from_int(number: int) -> str:
    """The canonical ULID spelling of a 128-bit number."""
    if not 0 <= number < 1 << 128:
        raise ValueError(f"{number} does not fit in a ULID's 128 bits")
    return "".join([DIGIT_PAIRS[(number >> shift) & 1023] for shift in _PAIR_SHIFTS])


def time_ms(text: str) -> int | None:
    """Creation time of a ULID in ms since the epoch (either case); None if no ULID."""
    if len(text) != LENGTH or _ANY_CASE.fullmatch(text) is None:
        return None
    return int(text[:10].translate(_TO_INT_DIGITS), 32)


def pack(text: str | None) -> bytes | str | None:
    """A canonical ULID as its 16 bytes; anything else (None, a uuid, a lower-case id)
    unchanged, so :func:`unpack` always gives the text back exactly."""
    if text is None or len(text) != LENGTH or _CANONICAL.fullmatch(text) is None:
        return text
    return int(text.translate(_TO_INT_DIGITS), 32).to_bytes(16, "big")


def unpack(stored: bytes | str | None) -> str | None:
    """Inverse of :func:`pack`."""
    if stored is None or isinstance(stored, str):
        return stored
    number = int.from_bytes(stored, "big")
    return "".join([DIGIT_PAIRS[(number >> shift) & 1023] for shift in _PAIR_SHIFTS])
