"""Low: API key names cannot hold control characters. A name is logged and printed by
`keys list`: a newline forged a whole log line, an ANSI escape recoloured a terminal."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from homeiq.api.auth import check_key_name, create_key
from tests.api.conftest import Api, assert_error

FORGED = [
    "grafana\n2026-12-04 12:00:00 INFO homeiq.api.auth created API key 1 (root)",
    "grafana\r\nX-Injected: 1",
    "\x1b[31mred\x1b[0m",
    "nul\x00byte",
    "bell\x07",
    "del\x7f",
    "c1\x85next line",
    "bidi\u202etxt.exe",
    "zero\u200bwidth",
    "line\u2028separator",
]


def names(api: Api) -> list[tuple[int, str]]:
    return [(k.id, k.name) for k in api.runtime.metadata.api_keys()]


@pytest.mark.parametrize("name", FORGED)
async def test_the_api_refuses_a_forged_name_and_logs_nothing(
    api: Api, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = names(api)
    with caplog.at_level(logging.INFO):
        response = await api.client.post(
            "/api/v1/admin/keys",
            json={"name": name, "scopes": ["read"]},
            headers=api.keys.auth("admin"),
        )
    error = assert_error(response, 422, "validation_error")
    assert name not in error["message"]  # the rejected input is never echoed
    assert names(api) == before
    assert not [r for r in caplog.records if "INFO homeiq" in r.getMessage()]
    assert not [r for r in caplog.records if "created API key" in r.getMessage()]


async def test_a_blank_name_is_refused(api: Api) -> None:
    response = await api.client.post(
        "/api/v1/admin/keys",
        json={"name": "  ", "scopes": ["read"]},
        headers=api.keys.auth("admin"),
    )
    assert_error(response, 422, "validation_error")


@pytest.mark.parametrize("name", FORGED)
async def test_create_key_refuses_a_forged_name(api: Api, name: str) -> None:
    # The CLI's `keys create` goes through create_key too.
    before = names(api)
    with pytest.raises(ValueError, match="control characters"):
        create_key(api.runtime.metadata, name, ["read"])
    assert names(api) == before


async def test_ordinary_names_are_kept_as_given(api: Api) -> None:
    response = await api.client.post(
        "/api/v1/admin/keys",
        json={"name": "  Grafana – salle de séjour 🌡  ", "scopes": ["read"]},
        headers=api.keys.auth("admin"),
    )
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Grafana – salle de séjour 🌡"


@given(
    st.text(st.characters(categories=["Cc", "Cf", "Zl", "Zp"], max_codepoint=0xFFFF), min_size=1)
)
def test_no_control_or_format_character_passes(bad: str) -> None:
    with pytest.raises(ValueError):
        check_key_name(f"ok{bad}name")
