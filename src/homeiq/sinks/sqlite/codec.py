"""Compact encodings for the SQLite event table.

Home Assistant context ids are 26-character ULIDs; stored as 16-byte blobs
(:func:`homeiq.ulid.pack`) they take less than two thirds of the space, which matters at
tens of millions of rows. Ids that are not ULIDs (older HA used 32-char hex uuids) are
stored as text unchanged, so the round trip is exact either way.
"""

from __future__ import annotations

import zlib

from homeiq import ulid

# The ULID codec is homeiq.ulid's; these are its names in the stored format.
encode_context = ulid.pack
decode_context = ulid.unpack


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
