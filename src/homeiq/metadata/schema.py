"""metadata.db schema steps (see :mod:`homeiq.sqlitedb`)."""

from __future__ import annotations

import sqlite3

from homeiq.sqlitedb import run_script


def _v1(conn: sqlite3.Connection) -> None:
    run_script(
        conn,
        """
        CREATE TABLE floors (
            floor_id TEXT PRIMARY KEY, name TEXT NOT NULL, level INTEGER);
        CREATE TABLE areas (
            area_id TEXT PRIMARY KEY, name TEXT NOT NULL, floor_id TEXT);
        CREATE TABLE devices (
            device_id TEXT PRIMARY KEY, name TEXT, area_id TEXT,
            manufacturer TEXT, model TEXT);
        CREATE TABLE entities (
            entity_id TEXT PRIMARY KEY, device_id TEXT, area_id TEXT,
            platform TEXT, name TEXT);
        CREATE INDEX entities_device ON entities (device_id);
        CREATE TABLE dead_letters (
            id INTEGER PRIMARY KEY,
            received_at INTEGER NOT NULL,
            reason TEXT NOT NULL,
            detail TEXT NOT NULL,
            entity_id TEXT,
            payload BLOB NOT NULL);
        CREATE INDEX dead_letters_reason ON dead_letters (reason, received_at);
        CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        """,
    )


def _v2(conn: sqlite3.Connection) -> None:
    # gaps: spans whose live events were not stored (spool overflow, a crash, a
    # disconnect) and that backfill from Home Assistant's history still has to fill.
    # quality_events: what HomeIQ knows it is missing or did, for users to see.
    run_script(
        conn,
        """
        CREATE TABLE gaps (
            id INTEGER PRIMARY KEY,
            start_us INTEGER NOT NULL,
            end_us INTEGER NOT NULL,
            reason TEXT NOT NULL,
            created_at INTEGER NOT NULL);
        CREATE TABLE quality_events (
            id INTEGER PRIMARY KEY,
            time INTEGER NOT NULL,
            kind TEXT NOT NULL,
            start_us INTEGER,
            end_us INTEGER,
            events INTEGER,
            detail TEXT NOT NULL);
        CREATE INDEX quality_events_kind ON quality_events (kind, time);
        """,
    )


def _v3(conn: sqlite3.Connection) -> None:
    # api_keys: only a hash of each key is kept (the key is shown once, at creation).
    # AUTOINCREMENT: an id never comes back, so a revoked key's id stays unambiguous
    # in logs and audits. scopes: space-separated.
    run_script(
        conn,
        """
        CREATE TABLE api_keys (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL,
            key_hash TEXT NOT NULL UNIQUE,
            scopes TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            last_used_at INTEGER,
            revoked_at INTEGER);
        """,
    )


def _v4(conn: sqlite3.Connection) -> None:
    # One row per archive written to a target and per verify: what the API shows as the
    # last result, and what the overdue-backup alert reads after a restart.
    run_script(
        conn,
        """
        CREATE TABLE backup_runs (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            started_at INTEGER NOT NULL,
            finished_at INTEGER NOT NULL,
            ok INTEGER NOT NULL,
            archive TEXT,
            target TEXT,
            bytes INTEGER,
            detail TEXT NOT NULL);
        CREATE INDEX backup_runs_kind ON backup_runs (kind, ok, finished_at);
        """,
    )


def _cleanup(conn: sqlite3.Connection) -> None:
    # cleanup_runs: every deletion of stored events by a cleanup (CLI or saved rule),
    # written as "running" before the first row goes and finished after: a run killed
    # in between stays "running" until the next run or start resumes it.
    # entity_provenance: which kind of Home Assistant each entity was seen from (a real
    # one, or HomeIQ's simulator): what `homeiq cleanup --source simulator` selects by.
    run_script(
        conn,
        """
        CREATE TABLE cleanup_runs (
            id INTEGER PRIMARY KEY,
            started_at INTEGER NOT NULL,
            finished_at INTEGER,
            who TEXT NOT NULL,
            pid INTEGER NOT NULL,
            rule TEXT NOT NULL,
            spec TEXT NOT NULL,
            status TEXT NOT NULL,
            planned INTEGER,
            deleted INTEGER NOT NULL DEFAULT 0,
            detail TEXT NOT NULL DEFAULT '');
        CREATE INDEX cleanup_runs_status ON cleanup_runs (status);
        CREATE TABLE entity_provenance (
            entity_id TEXT NOT NULL,
            origin TEXT NOT NULL,
            first_seen INTEGER NOT NULL,
            PRIMARY KEY (entity_id, origin)) WITHOUT ROWID;
        """,
    )


def _alerts_v1(conn: sqlite3.Connection) -> None:
    # Alert history: one row per firing and per resolve (maintenance/alerts/history.py),
    # pruned by age and row count. The last row of an alert tells whether it was still
    # firing when HomeIQ stopped.
    run_script(
        conn,
        """
        CREATE TABLE alert_history (
            id INTEGER PRIMARY KEY,
            alert TEXT NOT NULL,
            status TEXT NOT NULL,
            message TEXT NOT NULL,
            at INTEGER NOT NULL);
        CREATE INDEX alert_history_alert ON alert_history (alert, id);
        CREATE INDEX alert_history_at ON alert_history (at);
        """,
    )


def _quality(conn: sqlite3.Connection) -> None:
    # Data quality kept as a daily history (homeiq.maintenance.quality.history): one row
    # per day overall ('overall', '') and per domain ('domain', name), kept 400 days;
    # one row per entity and day (its counters and interval state, so a restart does not
    # zero the day), kept 31 days. detail/state: JSON of the measures.
    run_script(
        conn,
        """
        CREATE TABLE quality_days (
            day TEXT NOT NULL,
            scope TEXT NOT NULL,
            name TEXT NOT NULL,
            score REAL,
            events INTEGER NOT NULL,
            detail TEXT NOT NULL,
            saved_at INTEGER NOT NULL,
            PRIMARY KEY (day, scope, name)) WITHOUT ROWID;
        CREATE TABLE quality_entities (
            day TEXT NOT NULL,
            entity_id TEXT NOT NULL,
            score REAL,
            state TEXT NOT NULL,
            saved_at INTEGER NOT NULL,
            PRIMARY KEY (day, entity_id)) WITHOUT ROWID;
        """,
    )


STEPS = (_v1, _v2, _v3, _v4, _cleanup, _alerts_v1, _quality)
