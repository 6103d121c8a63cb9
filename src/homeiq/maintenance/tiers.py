"""What the retention leaves of the rollup tiers: purging a tier's old buckets in
chunks, never one whose time the next coarser tier does not hold, and the marks that
say what was purged (a tier's buckets, an entity's raw events) so statistics and
rebuilds know. The tables are ``rollups.db``'s (its schema step 3)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from homeiq.maintenance.buckets import PERIODS, US, align
from homeiq.sqlitedb import SQLiteFile, Step

log = logging.getLogger(__name__)

# Which tier must hold a bucket's time before the bucket may be purged.
COARSER = {"5m": "1h", "1h": "1d"}


def checked(period: str) -> str:
    """``period`` if it is a tier's (table names are formatted in: only known ones)."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}")
    return period


# Buckets of a tier that may go: ended by the entity's cutoff, and (below the coarsest
# tier) whose time the next coarser tier holds, so no statistic loses what they knew.
def _purgeable(period: str) -> str:
    where = "entity_id = ? AND start <= ?"  # the start: the primary key's order
    coarser = COARSER.get(period)
    if coarser is None:
        return where
    step = PERIODS[coarser] * US
    return (
        f"{where} AND EXISTS (SELECT 1 FROM rollup_{coarser} c WHERE"
        f" c.entity_id = rollup_{period}.entity_id"
        f" AND c.start = rollup_{period}.start - rollup_{period}.start % {step})"
    )


class TierStore(SQLiteFile):
    """The retention's side of :class:`~homeiq.maintenance.rollups.RollupStore`."""

    def __init__(self, path: Path, steps: Sequence[Step], *, readonly: bool = False) -> None:
        super().__init__(path, steps, readonly=readonly)
        self.raw_purges = 0  # raw purges recorded by this process (caches read it)

    @staticmethod
    def _marks(conn: sqlite3.Connection, entity_id: str) -> tuple[int | None, int | None]:
        found = conn.execute(
            "SELECT (SELECT through FROM rollup_folded WHERE entity_id = ?),"
            " (SELECT before FROM rollup_raw_purged WHERE entity_id = ?)",
            (entity_id, entity_id),
        ).fetchone()
        return found[0], found[1]

    def marks(self, entity_id: str) -> tuple[int | None, int | None]:
        """The entity's (watermark, raw purged before): see :meth:`folded_through` and
        :meth:`raw_purged_before`; None where there is none."""
        with self._reading() as conn:
            return self._marks(conn, entity_id)

    def _entities(self, conn: sqlite3.Connection, period: str) -> Iterator[str]:
        """The tier's entities: one index seek each, not a scan of its rows."""
        row = conn.execute(f"SELECT MIN(entity_id) FROM rollup_{period}").fetchone()
        while row is not None and row[0] is not None:
            yield row[0]
            row = conn.execute(
                f"SELECT MIN(entity_id) FROM rollup_{period} WHERE entity_id > ?", (row[0],)
            ).fetchone()

    def count_before(self, period: str, cutoff_for: Callable[[str], int | None]) -> int:
        """Buckets of the tier whose end is at or before the entity's cutoff (None: keep
        the entity's) that :meth:`purge` would delete: the dry run. Buckets whose time the
        next coarser tier does not hold yet are not counted: they are kept."""
        where = _purgeable(checked(period))
        step = PERIODS[period] * US
        total = 0
        with self._reading() as conn:
            for entity_id in list(self._entities(conn, period)):
                cutoff = cutoff_for(entity_id)
                if cutoff is not None:
                    (n,) = conn.execute(
                        f"SELECT COUNT(*) FROM rollup_{period} WHERE {where}",
                        (entity_id, cutoff - step),
                    ).fetchone()
                    total += n
        return total

    def purge(
        self, period: str, cutoff_for: Callable[[str], int | None], *, chunk_rows: int
    ) -> int:
        """Delete what :meth:`count_before` counts, at most ``chunk_rows`` rows per
        transaction (writers wait for one chunk, never for the whole purge); returns the
        rows deleted. A bucket whose time the next coarser tier does not hold (5m before
        1h has it, 1h before 1d) is kept: the purge clamps, never loses a statistic.
        Records the entity's cutoff, so statistics over the purged range say so."""
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
        where = _purgeable(checked(period))
        step = PERIODS[period] * US
        with self._reading() as conn:
            entities = list(self._entities(conn, period))
        deleted = held = 0
        for entity_id in entities:
            cutoff = cutoff_for(entity_id)
            if cutoff is None:
                continue
            while True:
                with self._writing() as conn:
                    n = conn.execute(
                        f"DELETE FROM rollup_{period} WHERE (entity_id, start) IN"
                        f" (SELECT entity_id, start FROM rollup_{period} WHERE {where}"
                        " ORDER BY start LIMIT ?)",
                        (entity_id, cutoff - step, chunk_rows),
                    ).rowcount
                    # With the rows, in their transaction: a purge killed half-way
                    # leaves a range statistics already refuse, not one with holes.
                    conn.execute(
                        "INSERT INTO rollup_tier_purged (period, entity_id, before)"
                        " VALUES (?, ?, ?) ON CONFLICT (period, entity_id)"
                        " DO UPDATE SET before = MAX(before, excluded.before)",
                        (period, entity_id, align(cutoff, PERIODS[period])),
                    )
                deleted += n
                if n < chunk_rows:
                    break
            held += self._held_back(period, entity_id, cutoff - step)
        if held:
            log.warning(
                "kept %d %s buckets past their keep period: the %s tier does not hold their"
                " time (homeiq rollups rebuild recomputes it; the next purge deletes them)",
                held,
                period,
                COARSER[period],
            )
        return deleted

    def _held_back(self, period: str, entity_id: str, last_start: int) -> int:
        """The entity's buckets past the cutoff that :meth:`purge` kept."""
        with self._reading() as conn:
            (n,) = conn.execute(
                f"SELECT COUNT(*) FROM rollup_{period} WHERE entity_id = ? AND start <= ?",
                (entity_id, last_start),
            ).fetchone()
        return int(n)

    def tier_purged_before(self, period: str, entity_id: str) -> int | None:
        """Before when the tier's buckets of the entity were purged (None: never)."""
        with self._reading() as conn:
            row = conn.execute(
                "SELECT before FROM rollup_tier_purged WHERE period = ? AND entity_id = ?",
                (checked(period), entity_id),
            ).fetchone()
        return None if row is None else int(row[0])

    def mark_raw_purged(self, entity_id: str, before: int) -> None:
        """Record that the entity's raw events before ``before`` were purged: no rebuild
        recomputes buckets of the UTC day holding it or older from the few events left
        (they would clobber exact buckets), and a late event that old is not folded."""
        with self._writing() as conn:
            conn.execute(
                "INSERT INTO rollup_raw_purged (entity_id, before) VALUES (?, ?)"
                " ON CONFLICT (entity_id) DO UPDATE SET before = MAX(before, excluded.before)",
                (entity_id, before),
            )
        self.raw_purges += 1

    def raw_purged_before(self, entity_id: str) -> int | None:
        """Before when the entity's raw events were purged (None: never)."""
        return self.marks(entity_id)[1]

    def counter(self, name: str) -> int:
        """A persistent counter (``late_beyond_retention``: late events older than the
        raw purge, not folded)."""
        with self._reading() as conn:
            row = conn.execute("SELECT value FROM rollup_counters WHERE name = ?", (name,))
            found = row.fetchone()
        return 0 if found is None else int(found[0])
