"""events.db schema steps (see :mod:`homeiq.sqlitedb`).

Size per event is the design constraint (tens of millions of rows on a Raspberry Pi):
``events`` is a WITHOUT ROWID table clustered on its idempotency key (entity, time), so
the key needs no second index; entity ids, users, placements and attribute sets are
small-integer references to shared rows (attribute sets compressed, see
:mod:`~homeiq.sinks.sqlite.codec`); times are integer microseconds; ``last_changed``
is NULL when it equals ``time`` (attribute-only updates are the exception).

There is deliberately no index on ``time`` alone: it would cost ~12 bytes and a second
B-tree update per event. Queries over all entities seek each entity's range instead
(a few hundred to a few thousand seeks, each O(log n)): see ````_SPAN`` in store.py``.
"""

from __future__ import annotations

import sqlite3

from homeiq.sqlitedb import run_script


def _v1(conn: sqlite3.Connection) -> None:
    run_script(
        conn,
        """
        CREATE TABLE entities (
            id INTEGER PRIMARY KEY, entity_id TEXT NOT NULL UNIQUE);
        CREATE TABLE attributes (
            id INTEGER PRIMARY KEY, hash INTEGER NOT NULL, json BLOB NOT NULL,
            codec INTEGER NOT NULL);
        CREATE INDEX attributes_hash ON attributes (hash);
        CREATE TABLE placements (
            id INTEGER PRIMARY KEY, device_id TEXT, area_id TEXT, floor_id TEXT);
        CREATE TABLE users (
            id INTEGER PRIMARY KEY, user_id TEXT NOT NULL UNIQUE);
        CREATE TABLE events (
            entity INTEGER NOT NULL REFERENCES entities (id),
            time INTEGER NOT NULL,
            state TEXT,
            value REAL,
            previous_state TEXT,
            last_changed INTEGER,
            duration_us INTEGER,
            attributes INTEGER REFERENCES attributes (id),
            placement INTEGER REFERENCES placements (id),
            context_id,
            context_parent_id,
            context_user INTEGER REFERENCES users (id),
            origin INTEGER NOT NULL,
            source INTEGER NOT NULL,
            dropped_attributes_bytes INTEGER,
            PRIMARY KEY (entity, time)
        ) WITHOUT ROWID;
        """,
    )


STEPS = (_v1,)
