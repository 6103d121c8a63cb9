"""Compact encodings for the SQLite event table.

Home Assistant context ids are 26-character ULIDs; stored as 16-byte blobs they take
less than two thirds of the space, which matters at tens of millions of rows. Ids that
are not ULIDs (older HA used 32-char hex uuids) are stored as text unchanged, so the
round trip is exact either way.
"""

from __future__ import annotations

import re
import zlib

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


_TO_INT_DIGITS = str.maketrans(_CROCKFORD, "0123456789abcdefghijklmnopqrstuv")
# A ULID's first character is at most 7: 26 chars x 5 bits = 130 bits, the top 2 zero.
_ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")


def encode_context(context_id: str | None) -> bytes | str | None:
    """A context id as stored: 16 bytes for a ULID, else the text itself."""
    if context_id is None or len(context_id) != 26 or _ULID.fullmatch(context_id) is None:
        return context_id
    return int(context_id.translate(_TO_INT_DIGITS), 32).to_bytes(16, "big")


# Every pair of base-32 digits (10 bits), so decoding takes 13 steps rather than 26.
_DIGIT_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]
_PAIR_SHIFTS = tuple(range(120, -10, -10))


def decode_context(stored: bytes | str | None) -> str | None:
    """Inverse of :func:`encode_context`."""
    if stored is None or isinstance(stored, str):
        return stored
    number = int.from_bytes(stored, "big")
    return "".join([_DIGIT_PAIRS[(number >> shift) & 1023] for shift in _PAIR_SHIFTS])


# Attribute sets are small JSON objects full of the same keys; a preset dictionary of
# those keys lets deflate shrink them by about half where plain zlib manages a third.
# The dictionary is part of the stored format: never change ATTRIBUTES_ZDICT_V1; add a
# new codec number with a new dictionary instead.
RAW = 0
ZLIB_DICT_V1 = 1
ATTRIBUTES_ZDICT_V1 = (
    b'"friendly_name":"unit_of_measurement":"device_class":"state_class":"measurement"'
    b'"total_increasing""last_triggered":"+00:00""current":0"id":"mode":"single"'
    b'"brightness":"color_mode":"color_temp_kelvin":"supported_color_modes":'
    b'"supported_features":"hvac_modes":"hvac_action":"temperature":"current_temperature":'
    b'"target_temp_high":"target_temp_low":"icon":"mdi:"entity_picture":"source":'
    b'"editable":true,"restored":null,"attribution":"battery_level":"last_reset":'
    b'"options":["state","device_class":"temperature","humidity","power","energy","\xc2\xb0C",'
)
# Small window and memory level: these inputs are a few hundred bytes, and the
# defaults' 256 KiB of state per call cost more time than the compression itself.
_WBITS = -12
_MEMLEVEL = 4


def encode_attributes(blob: bytes) -> tuple[bytes, int]:
    """Compress an attributes JSON blob; returns (stored bytes, codec)."""
    if len(blob) < 48:  # too small to gain anything
        return blob, RAW
    compressor = zlib.compressobj(6, zlib.DEFLATED, _WBITS, _MEMLEVEL, zdict=ATTRIBUTES_ZDICT_V1)
    packed = compressor.compress(blob) + compressor.flush()
    return (packed, ZLIB_DICT_V1) if len(packed) < len(blob) else (blob, RAW)


def decode_attributes(stored: bytes, codec: int) -> bytes:
    """Inverse of :func:`encode_attributes`."""
    if codec == RAW:
        return stored
    if codec != ZLIB_DICT_V1:
        raise ValueError(f"unknown attributes codec {codec}")
    decompressor = zlib.decompressobj(_WBITS, zdict=ATTRIBUTES_ZDICT_V1)
    return decompressor.decompress(stored) + decompressor.flush()
