"""The one ULID codec, checked against a plain digit-by-digit reference."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homeiq import ulid
from homeiq.sinks.reading import ulid_time_us
from homeiq.sinks.sqlite.codec import decode_context, encode_context

REFERENCE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's, from the spec

numbers = st.integers(0, 2**128 - 1)


def spell(number: int) -> str:
    """The reference: 26 base-32 digits, most significant first, one at a time."""
    return "".join(REFERENCE_ALPHABET[(number >> (5 * i)) & 31] for i in reversed(range(26)))


@given(numbers)
def test_a_number_spells_and_reads_back(number: int) -> None:
    text = ulid.from_int(number)
    assert text == spell(number)
    assert ulid.is_ulid(text)
    assert ulid.to_int(text) == number
    assert ulid.to_int(text.lower()) == number  # the spec decodes either case


@given(numbers)
def test_pack_is_the_16_big_endian_bytes_and_unpack_inverts_it(number: int) -> None:
    text = spell(number)
    assert ulid.pack(text) == number.to_bytes(16, "big")
    assert ulid.unpack(ulid.pack(text)) == text
    assert (
        encode_context(text) == ulid.pack(text)
        and decode_context(number.to_bytes(16, "big")) == text
    )


@given(st.integers(0, 2**48 - 1), st.integers(0, 2**80 - 1))
def test_the_time_is_the_first_48_bits_in_either_case(ms: int, rest: int) -> None:
    text = spell(ms << 80 | rest)
    assert ulid.time_ms(text) == ms
    assert ulid.time_ms(text.lower()) == ms
    assert ulid_time_us(text) == ms * 1000


@given(st.text(max_size=30))
def test_what_is_not_a_canonical_ulid_is_kept_as_text(text: str) -> None:
    packed = ulid.pack(text)
    assert ulid.unpack(packed) == text
    assert isinstance(packed, bytes) == ulid.is_ulid(text)


@pytest.mark.parametrize(
    "text",
    [
        "8" + "0" * 25,  # 131 bits
        "01M8A9CZW8ENE63FBQ2PA6RTGI",  # I is not a Crockford digit
        "01M8A9CZW8ENE63FBQ2PA6RTG",  # 25 digits
        "0" * 32,  # an old HA uuid
        "",
    ],
)
def test_near_misses_are_not_ulids(text: str) -> None:
    assert not ulid.is_ulid(text)
    assert ulid.pack(text) == text
    assert ulid.time_ms(text) is None
    with pytest.raises(ValueError, match="not a ULID"):
        ulid.to_int(text)


def test_lower_case_is_read_but_never_packed() -> None:
    lower = "01m8a9czw8ene63fbq2pa6rtgs"
    assert ulid.pack(lower) == lower  # packing would come back upper case
    assert ulid.time_ms(lower) == ulid.time_ms(lower.upper())


def test_edges_and_out_of_range() -> None:
    assert ulid.from_int(0) == "0" * 26
    assert ulid.from_int(2**128 - 1) == "7" + "Z" * 25
    with pytest.raises(ValueError, match="128 bits"):
        ulid.from_int(2**128)
    with pytest.raises(ValueError, match="128 bits"):
        ulid.from_int(-1)
    assert ulid.pack(None) is None and ulid.unpack(None) is None


def test_pairs_are_two_digits_indexed_by_their_10_bits() -> None:
    assert len(ulid.DIGIT_PAIRS) == 1024
    assert all(ulid.DIGIT_PAIRS[i] == spell(i)[-2:] for i in range(1024))
    assert tuple(p.encode() for p in ulid.DIGIT_PAIRS) == ulid.DIGIT_PAIRS_BYTES
