"""Gap backfill: refetch what Home Assistant recorded while HomeIQ was not listening.

After a crash, a restart or a lost connection, the span ``start_us < time <= end_us`` may
be missing from the store. Home Assistant's recorder still has it, so :class:`Backfiller`
asks ``GET /api/history/period/<start>`` for it and hands the rows to ``emit`` as
``Source.BACKFILL`` records. The design follows from what HA 2024.3.3 does (DESIGN §6):

* ``filter_entity_id`` is required, so the entity list is HA's current states plus the
  entities HomeIQ knows (one removed during the gap is gone from ``/api/states`` but still
  in the recorder), sorted and asked for in chunks to keep URLs short.
* Timestamps in the URL must be percent-encoded (``+`` would decode to a space and HA
  answers 400), so the URL is built already encoded and yarl is told not to touch it.
* HA's ``end_time`` is exclusive and our gaps include their end, so we ask for one
  microsecond more.
* Each entity's list starts with its state *at* ``start``, with both timestamps clamped to
  ``start``: not an event, but the previous state of the first real row. Its real
  ``last_changed`` is unknown, so that first row gets no ``duration_in_state_s``.
* History rows carry one placeholder context for every row: it is dropped, so backfill
  records have no context ids and can never pass for live ones.
* Idempotency is by ``(entity_id, time)``: keys ``stored_keys`` reports are skipped, so a
  backfill row never replaces a live row, and rerunning a gap after a failure is safe.
* The recorder purges old rows (10 days by default): the part of a gap older than
  ``max_age_s`` is not asked for but reported as a ``gap_beyond_history`` quality event.

A 401/403 is final (HA bans IPs that retry bad tokens); unreachable or 5xx is transient
and the caller retries the whole gap later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

from homeiq.errors import AuthenticationFailed, InvalidEvent, ProtocolError, SourceUnavailable
from homeiq.metadata.store import MetadataStore
from homeiq.model import DeadLetter, EventRecord, QualityEvent, Source, now_us
from homeiq.observability.metrics import Metrics
from homeiq.pipeline.deadletters import DeadLetters, dead_letter
from homeiq.pipeline.normalize import Normalizer, format_time_us, parse_time_us, valid_entity_id

log = logging.getLogger(__name__)

# Records per ``emit`` call: large enough for efficient batches, small enough that one
# call never holds a whole week of history in one list downstream.
EMIT_BATCH = 2_000
StoredKeys = Callable[[Sequence[str], int, int], Awaitable[set[tuple[str, int]]]]
Emit = Callable[[list[EventRecord]], Awaitable[None]]
KnownEntities = Callable[[], Awaitable[Iterable[str]]]


@dataclass(frozen=True, slots=True)
class BackfillResult:
    """What one :meth:`Backfiller.fill` did (the span is after clamping to the horizon)."""

    start_us: int
    end_us: int
    entities: int
    fetched: int
    stored: int
    present: int
    invalid: int
    clamped: bool


@dataclass(slots=True)
class HistoryRows:
    """The events of one history response: ``fetched`` = records + dead letters."""

    records: list[EventRecord] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    fetched: int = 0


def rest_base_url(base_url: str) -> str:
    """The configured HA URL (``http(s)``, ``ws(s)``, maybe ``/api/websocket``) for REST."""
    url = base_url.strip().rstrip("/").removesuffix("/api/websocket").rstrip("/")
    if url.startswith("ws"):  # ws:// -> http://, wss:// -> https://
        url = "http" + url[len("ws") :]
    return url


def history_url(base: str, entity_ids: Sequence[str], start_us: int, end_us: int) -> URL:
    """The history request for ``start_us < time <= end_us``, already percent-encoded."""
    start = quote(format_time_us(start_us), safe="")
    # end_time is exclusive in HA's recorder; the gap includes its end.
    end = quote(format_time_us(end_us + 1), safe="")
    ids = ",".join(entity_ids)  # valid entity ids need no encoding; HA expects bare commas
    return URL(
        f"{base}/api/history/period/{start}?filter_entity_id={ids}"
        f"&end_time={end}&significant_changes_only=0",
        encoded=True,
    )


def parse_history(
    response: Any, normalizer: Normalizer, start_us: int, end_us: int, *, received_at: int
) -> HistoryRows:
    """Normalize a history response (a list of per-entity row lists) into backfill records.

    Rows at or before ``start_us`` (the clamped start row) only serve as the previous
    state; rows past ``end_us`` are ignored; rows failing validation become dead letters.
    """
    if not isinstance(response, list):
        raise ProtocolError(f"history response is {type(response).__name__}, not a list")
    out = HistoryRows()
    for rows in response:
        if not isinstance(rows, list):
            raise ProtocolError(f"history entry is {type(rows).__name__}, not a list of rows")
        if rows:
            _walk(rows, normalizer, start_us, end_us, received_at, out)
    return out


def _walk(
    rows: list[Any],
    normalizer: Normalizer,
    start_us: int,
    end_us: int,
    received_at: int,
    out: HistoryRows,
) -> None:
    first = rows[0]
    # Later rows may omit entity_id (minimal responses); the first one always has it.
    raw_id = first.get("entity_id") if isinstance(first, dict) else None
    entity_id = raw_id if isinstance(raw_id, str) else ""
    previous: dict[str, Any] | None = None
    for row in rows:
        if not isinstance(row, dict):
            out.fetched += 1
            detail = f"history row is {type(row).__name__}"
            out.dead_letters.append(
                dead_letter(
                    "not_an_object",
                    detail,
                    row,
                    entity_id=entity_id or None,
                    received_at=received_at,
                )
            )
            previous = None
            continue
        # HA puts one placeholder context on every history row: never let it pass as real.
        bare = {k: v for k, v in row.items() if k != "context"}
        try:
            record = normalizer.state_row(entity_id, bare, previous, Source.BACKFILL)
        except InvalidEvent as exc:
            when = _row_time(row)
            if when is None or start_us < when <= end_us:
                out.fetched += 1
                out.dead_letters.append(
                    dead_letter(
                        exc.reason,
                        exc.detail,
                        row,
                        entity_id=entity_id or None,
                        received_at=received_at,
                    )
                )
            previous = row
            continue
        if record.time <= start_us:
            # The state at start, clamped: its state is right, its last_changed is not.
            previous = {**bare, "last_changed": None}
            continue
        previous = row
        if record.time <= end_us:
            out.fetched += 1
            out.records.append(record)


def _row_time(row: dict[str, Any]) -> int | None:
    try:
        return parse_time_us(row.get("last_updated"), "last_updated")
    except InvalidEvent:
        return None


class Backfiller:
    """Fetches gaps from Home Assistant's REST history and emits them idempotently."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        normalizer: Normalizer,
        metadata: MetadataStore,
        metrics: Metrics,
        stored_keys: StoredKeys,
        emit: Emit,
        known_entities: KnownEntities,
        entities_per_request: int = 50,
        max_age_s: float = 10 * 86400,
        timeout_s: float = 30.0,
        clock: Callable[[], int] = now_us,
        dead_letters: DeadLetters | None = None,
    ) -> None:
        """``dead_letters`` keeps invalid history rows (the writer's, so they are counted
        in ``homeiq_events_rejected_total`` and retried like every other dead letter)."""
        if entities_per_request < 1:
            raise ValueError("entities_per_request must be >= 1")
        self.base_url = rest_base_url(base_url)
        self._headers = {"Authorization": f"Bearer {token}"}
        self.normalizer = normalizer
        self.metadata = metadata
        self.metrics = metrics
        self.dead_letters = dead_letters or DeadLetters(metadata, metrics)
        self._stored_keys = stored_keys
        self._emit = emit
        self._known_entities = known_entities
        self.entities_per_request = entities_per_request
        self.max_age_s = max_age_s
        self.timeout_s = timeout_s
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None

    async def fill(self, start_us: int, end_us: int) -> BackfillResult:
        """Fetch and emit what HA recorded in ``start_us < time <= end_us``.

        Raises AuthenticationFailed (do not retry), SourceUnavailable (retry the gap
        later) or ProtocolError.
        """
        began = time.monotonic()
        horizon = self._clock() - int(self.max_age_s * 1_000_000)
        clamped = start_us < horizon
        start = max(start_us, horizon)
        entities: list[str] = []
        totals = [0, 0, 0, 0]  # fetched, stored, present, invalid
        try:
            if end_us > start:
                entities = await self._entities()
                step = self.entities_per_request
                for i in range(0, len(entities), step):
                    counts = await self._fill_chunk(entities[i : i + step], start, end_us)
                    totals = [a + b for a, b in zip(totals, counts, strict=True)]
            if clamped:  # once the run succeeded: a retried gap reports its loss once
                await self._report_beyond_history(start_us, min(end_us, horizon))
        except Exception:
            self.metrics.backfill_runs.labels("failed").inc()
            raise
        self.metrics.backfill_runs.labels("ok").inc()
        log.info(
            "backfilled %s .. %s: %d entities, %d fetched, %d stored, %d present,"
            " %d invalid in %.2fs",
            format_time_us(start),
            format_time_us(end_us),
            len(entities),
            *totals,
            time.monotonic() - began,
        )
        fetched, stored, present, invalid = totals
        return BackfillResult(
            start, end_us, len(entities), fetched, stored, present, invalid, clamped
        )

    async def close(self) -> None:
        """Close the HTTP session (a later fill opens a new one)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _entities(self) -> list[str]:
        states = await self._get_json(URL(f"{self.base_url}/api/states", encoded=True), "states")
        if not isinstance(states, list):
            raise ProtocolError(f"/api/states answered {type(states).__name__}, not a list")
        ids = {s.get("entity_id") for s in states if isinstance(s, dict)}
        ids.update(await self._known_entities())
        # An id HA would reject (a comma, say) would fail the whole chunk with a 400.
        return sorted(i for i in ids if isinstance(i, str) and valid_entity_id(i))

    async def _fill_chunk(
        self, chunk: list[str], start: int, end: int
    ) -> tuple[int, int, int, int]:
        url = history_url(self.base_url, chunk, start, end)
        body = await self._get_json(url, f"history of {len(chunk)} entities")
        rows = parse_history(body, self.normalizer, start, end, received_at=self._clock())
        if rows.dead_letters:
            await self.dead_letters.keep(rows.dead_letters)
        new: list[EventRecord] = []
        present = 0
        if rows.records:
            asked = sorted(set(chunk).union(r.entity_id for r in rows.records))
            seen = await self._stored_keys(asked, start, end)
            for record in rows.records:
                key = (record.entity_id, record.time)
                if key in seen:
                    present += 1
                else:
                    seen.add(key)  # HA listing a row twice must not store it twice
                    new.append(record)
        new.sort(key=lambda r: r.time)  # stores write time-ordered batches best
        for i in range(0, len(new), EMIT_BATCH):
            await self._emit(new[i : i + EMIT_BATCH])
        invalid = len(rows.dead_letters)
        self.metrics.backfill_events.labels("stored").inc(len(new))
        self.metrics.backfill_events.labels("present").inc(present)
        self.metrics.backfill_events.labels("invalid").inc(invalid)
        return rows.fetched, len(new), present, invalid

    async def _report_beyond_history(self, start_us: int, end_us: int) -> None:
        now = self._clock()
        detail = (
            f"{format_time_us(start_us)} .. {format_time_us(end_us)} is older than the"
            f" {self.max_age_s:g} s Home Assistant keeps; events in it are lost"
        )
        log.warning("gap beyond history: %s", detail)
        event = QualityEvent(now, "gap_beyond_history", start_us, end_us, None, detail)
        await asyncio.to_thread(self.metadata.add_quality_event, event)
        self.metrics.quality_events.labels("gap_beyond_history").inc()

    async def _get_json(self, url: URL, what: str) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
        try:
            # No redirects: following one could send the token to another host.
            async with self._session.get(url, headers=self._headers, allow_redirects=False) as r:
                status, body = r.status, await r.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise SourceUnavailable(
                f"cannot fetch {what} from Home Assistant at {self.base_url}:"
                f" {type(exc).__name__}: {exc}"
            ) from exc
        if status in (401, 403):
            raise AuthenticationFailed(
                f"Home Assistant rejected the access token (HTTP {status} for {what})."
                " Not retrying (Home Assistant bans clients that retry bad tokens)."
            )
        if status >= 500:
            raise SourceUnavailable(f"Home Assistant answered {status} for {what}: {_msg(body)}")
        if status != 200:
            raise ProtocolError(f"Home Assistant answered {status} for {what}: {_msg(body)}")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ProtocolError(f"Home Assistant sent non-JSON {what}: {exc}") from exc


def _msg(body: bytes) -> str:
    """HA's ``{"message": ...}`` error text, or the start of whatever it sent."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return str(parsed["message"])[:200]
    return body[:200].decode(errors="replace") or "(empty body)"
