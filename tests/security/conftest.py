"""The security regression tests reuse the API's fixtures: a started Runtime and its app
over httpx's ASGI transport (tests/api/conftest.py)."""

from tests.api.conftest import api, make_api

__all__ = ["api", "make_api"]
