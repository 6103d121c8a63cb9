"""The REST API: ``/api/``, config, states and history."""

from __future__ import annotations

import hmac
import re
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import unquote_plus

import orjson
from aiohttp import web

from homeiq.ha.simulator.edits import Edits
from homeiq.ha.simulator.history import History

US_PER_DAY: Final = 86_400_000_000
_ENTITY_ID_RE: Final = re.compile(r"^(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)$")


class RestAPI(History, Edits):
    """HA's REST endpoints the client and tests use, with HA's validation and answers."""

    def _authorize(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if (
            scheme != "Bearer"
            or self.reject_tokens
            or not hmac.compare_digest(token.encode(), self.token.encode())
        ):
            raise web.HTTPUnauthorized()

    @staticmethod
    def _json(data: Any, status: int = 200) -> web.Response:
        return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")

    async def _api_root(self, request: web.Request) -> web.Response:
        self._authorize(request)
        return self._json({"message": "API running."})

    async def _api_config(self, request: web.Request) -> web.Response:
        self._authorize(request)
        return self._json(self._config())

    async def _api_states(self, request: web.Request) -> web.Response:
        self._authorize(request)
        return self._json(
            [orjson.Fragment(e.state_json) for e in self._entities if e.state_json is not None]
        )

    async def _api_state_get(self, request: web.Request) -> web.Response:
        self._authorize(request)
        ent = self._by_id.get(request.match_info["entity_id"])
        if ent is None or ent.state_json is None:
            return self._json({"message": "Entity not found."}, 404)
        return self._json(orjson.Fragment(ent.state_json))

    async def _api_state_post(self, request: web.Request) -> web.Response:
        self._authorize(request)
        entity_id = request.match_info["entity_id"]
        if not _ENTITY_ID_RE.match(entity_id):
            return self._json({"message": "Invalid entity ID specified."}, 400)
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return self._json({"message": "Invalid JSON specified."}, 400)
        if not isinstance(body, dict) or (state := body.get("state")) is None:
            return self._json({"message": "No state specified."}, 400)
        attributes = body.get("attributes") or {}
        if not isinstance(attributes, dict):
            return self._json({"message": "Invalid attributes specified."}, 400)
        created = self.set_state(entity_id, str(state), attributes, user_id=self.home.owner_user_id)
        ent = self._by_id[entity_id]
        resp = self._json(orjson.Fragment(ent.state_json or b"null"), 201 if created else 200)
        resp.headers["Location"] = f"/api/states/{entity_id}"
        return resp

    async def _api_state_delete(self, request: web.Request) -> web.Response:
        self._authorize(request)
        ent = self._by_id.get(request.match_info["entity_id"])
        if ent is None or ent.removed:
            return self._json({"message": "Entity not found."}, 404)
        self._remove_state(ent)
        self._after_batch()
        return self._json({"message": "Entity removed."})

    async def _api_history(self, request: web.Request) -> web.Response:
        self._authorize(request)
        self._stats.history_requests += 1
        # Decode the raw path ourselves, form-style: an unencoded "+" of "+00:00" becomes
        # a space and the timestamp fails to parse, which is what a real HA answers too.
        raw = request.rel_url.raw_path.removeprefix("/api/history/period").lstrip("/")
        now = self._clock.now_us()
        if raw:
            start = _parse_time(unquote_plus(raw))
            if start is None:
                return self._json({"message": "Invalid datetime"}, 400)
        else:
            start = now - US_PER_DAY
        if (end_raw := request.query.get("end_time")) is not None:
            end = _parse_time(end_raw)
            if end is None:
                return self._json({"message": "Invalid end_time"}, 400)
        else:
            end = start + US_PER_DAY
        filt = request.query.get("filter_entity_id")
        if not filt:
            return self._json({"message": "filter_entity_id is missing"}, 400)
        entity_ids = filt.strip().lower().split(",")
        for entity_id in entity_ids:
            if entity_id not in self._by_id and not _ENTITY_ID_RE.match(entity_id):
                return self._json({"message": "Invalid filter_entity_id"}, 400)
        if start > now:
            return self._json([])
        rows = self.history(
            entity_ids,
            start,
            end,
            significant_changes_only=request.query.get("significant_changes_only", "1") != "0",
            minimal_response="minimal_response" in request.query,
            no_attributes="no_attributes" in request.query,
        )
        return self._json(rows)


def _parse_time(text: str) -> int | None:
    """ISO 8601 to µs since the epoch (naive means UTC); None if it does not parse."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
