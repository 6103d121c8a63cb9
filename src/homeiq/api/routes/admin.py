"""Administration (admin scope): API keys, the effective configuration, dead letters."""

from __future__ import annotations

import asyncio
import base64
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from homeiq.api.auth import KEY_NAME_PATTERN, check_key_name, create_key, require
from homeiq.api.context import Host, Metadata, SettingsDep
from homeiq.api.errors import ApiError, error_responses
from homeiq.api.redrive import redrive
from homeiq.api.scopes import Scope
from homeiq.metadata.store import StoredApiKey, StoredDeadLetter
from homeiq.model import now_us
from homeiq.pipeline.normalize import format_time_us
from homeiq.settings import redacted

admin = require("admin")  # one callable: FastAPI then runs it once per request
AdminKey = Annotated[StoredApiKey, Depends(admin)]

router = APIRouter(
    prefix="/api/v1/admin",
    tags=["admin"],
    dependencies=[Depends(admin)],
    responses=error_responses(401, 403, 413, 414, 422, 429, 500),
)

REDRIVE_MAX = 1000
# Ids are SQLite INTEGERs; 2**53 - 1 is the largest a JSON number (and so the schema
# and every client) carries exactly, and far beyond any real id.
MAX_ID = 2**53 - 1


class ApiKeyOut(BaseModel):
    """An API key's record; the key itself is never shown again after creation."""

    id: int
    name: str
    scopes: list[Scope]
    created_at: str
    last_used_at: str | None = Field(description="Updated at most once a minute.")
    revoked_at: str | None


class ApiKeyList(BaseModel):
    """Every key, revoked ones included, oldest first."""

    items: list[ApiKeyOut]
    count: int


class ApiKeyCreate(BaseModel):
    """A key to create."""

    name: Annotated[str, AfterValidator(check_key_name)] = Field(
        min_length=1,
        max_length=100,
        pattern=KEY_NAME_PATTERN,
        examples=["grafana"],
        description="1 to 100 characters, no control characters (newline, ESC, NUL...).",
    )
    scopes: list[Scope] = Field(min_length=1, max_length=3, examples=[["read"]])


class ApiKeyCreated(ApiKeyOut):
    """The new key's record and the key: shown this once, store it now."""

    key: str = Field(description="`hiq_` + 43 characters; only its hash is kept.")


class DeadLetterOut(BaseModel):
    """A message that could not be stored."""

    id: int
    received_at: str
    reason: str
    detail: str
    entity_id: str | None
    payload_encoding: Literal["text", "base64"] = Field(
        description="`text` when the payload is UTF-8, else `base64`."
    )
    payload: str


class DeadLetterPage(BaseModel):
    """One page of dead letters, newest first."""

    items: list[DeadLetterOut]
    next_cursor: int | None = Field(description="Pass as `cursor` for the next page.")
    counts: dict[str, int] = Field(description="All dead letters kept, by reason.")


class RedriveByIds(BaseModel):
    """Re-drive these dead letters."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"ids": [12, 13]}]})

    ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(
        min_length=1, max_length=REDRIVE_MAX, description="Dead-letter ids."
    )


class RedriveByReason(BaseModel):
    """Re-drive the oldest dead letters of one reason."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "sink_rejected", "limit": 100}]}
    )

    reason: str = Field(min_length=1, max_length=100)
    limit: int = Field(default=100, ge=1, le=REDRIVE_MAX, description="At most this many.")


class Rejection(BaseModel):
    """A dead letter rejected again, and why this time."""

    id: int
    reason: str
    detail: str


class RedriveResult(BaseModel):
    """What re-drive did: stored letters are removed, rejected ones stay."""

    selected: int
    stored: int = Field(description="Written to the store (or its outage spool).")
    still_rejected: int
    stored_ids: list[int]
    rejected: list[Rejection]


def _key_out(key: StoredApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id,
        name=key.name,
        scopes=list(key.scopes),  # type: ignore[arg-type]  # stored from Scope values
        created_at=format_time_us(key.created_at),
        last_used_at=None if key.last_used_at is None else format_time_us(key.last_used_at),
        revoked_at=None if key.revoked_at is None else format_time_us(key.revoked_at),
    )


@router.get("/keys", summary="List API keys")
async def list_keys(metadata: Metadata) -> ApiKeyList:
    """Every key with its scopes and use; never the key or its hash."""
    keys = await asyncio.to_thread(metadata.api_keys)
    return ApiKeyList(items=[_key_out(k) for k in keys], count=len(keys))


@router.post("/keys", summary="Create an API key", status_code=201, responses=error_responses(400))
async def create_api_key(body: ApiKeyCreate, metadata: Metadata) -> ApiKeyCreated:
    """Create a key; the answer holds the key, which is never shown again."""
    key, stored = await asyncio.to_thread(create_key, metadata, body.name, body.scopes)
    return ApiKeyCreated(**_key_out(stored).model_dump(), key=key)


@router.delete("/keys/{key_id}", summary="Revoke an API key", responses=error_responses(404, 409))
async def revoke_key(
    key_id: Annotated[int, Path(ge=1, le=MAX_ID, examples=[2])],
    metadata: Metadata,
    caller: AdminKey,
) -> ApiKeyOut:
    """Revoke a key at once (revoking a revoked key changes nothing). The key making
    the request cannot revoke itself: use another admin key or `homeiq keys revoke`."""
    if key_id == caller.id:
        raise ApiError(409, "a key cannot revoke itself")
    revoked = await asyncio.to_thread(metadata.revoke_api_key, key_id, now_us())
    if revoked is None:
        raise ApiError(404, f"no API key {key_id}")
    return _key_out(revoked)


@router.get("/config", summary="Effective configuration")
async def config(settings: SettingsDep) -> dict[str, Any]:
    """Every setting as in effect, secrets replaced by `<redacted>`."""
    return redacted(settings)


def _letter_out(kept: StoredDeadLetter) -> DeadLetterOut:
    letter = kept.letter
    try:
        payload, encoding = letter.payload.decode("utf-8"), "text"
    except UnicodeDecodeError:
        payload, encoding = base64.b64encode(letter.payload).decode(), "base64"
    return DeadLetterOut(
        id=kept.id,
        received_at=format_time_us(letter.received_at),
        reason=letter.reason,
        detail=letter.detail,
        entity_id=letter.entity_id,
        payload_encoding=encoding,  # type: ignore[arg-type]
        payload=payload,
    )


@router.get("/dead-letters", summary="Browse dead letters")
async def dead_letters(
    metadata: Metadata,
    reason: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    cursor: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="`next_cursor` of a page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DeadLetterPage:
    """Messages that could not be stored, newest first, optionally of one reason."""

    def read() -> tuple[list[StoredDeadLetter], dict[str, int]]:
        page = metadata.dead_letter_page(reason=reason, before_id=cursor, limit=limit)
        return page, metadata.dead_letter_counts()

    page, counts = await asyncio.to_thread(read)
    return DeadLetterPage(
        items=[_letter_out(k) for k in page],
        next_cursor=page[-1].id if len(page) == limit else None,
        counts=counts,
    )


@router.post(
    "/dead-letters/redrive",
    summary="Re-drive dead letters",
    responses=error_responses(400, 503),
)
async def redrive_dead_letters(body: RedriveByIds | RedriveByReason, host: Host) -> RedriveResult:
    """Put dead letters back through normalization into the store. Stored ones are
    removed; the others stay, each with the reason it was rejected again."""
    metadata = host.metadata
    if isinstance(body, RedriveByIds):
        selected = await asyncio.to_thread(metadata.dead_letters_by_id, body.ids)
    else:
        selected = await asyncio.to_thread(metadata.oldest_dead_letters, body.reason, body.limit)
    # A store that cannot take the records now raises SinkUnavailable: the API's error
    # handler answers it (503 store_unavailable), like every other cause.
    outcome = await redrive(host.normalizer, host.delivery, selected)
    await asyncio.to_thread(metadata.remove_dead_letters, outcome.stored)
    return RedriveResult(
        selected=len(selected),
        stored=len(outcome.stored),
        still_rejected=len(outcome.rejected),
        stored_ids=outcome.stored,
        rejected=[Rejection(id=r.id, reason=r.reason, detail=r.detail) for r in outcome.rejected],
    )
