"""Schema migrations (bot/state/schema.py): a database an older lasthop left opens under this one.

The version 2 database is built by hand from the DDL that lasthop created then, not from today's
tables minus a few columns, so that it stays what an old install really has on disk.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from bot.state import LockHeld, LockInfo, StateError, StateStore
from bot.state.schema import SCHEMA_VERSION

# What lasthop of schema version 2 created on SQLite (SQLAlchemy's DDL for that schema.py, verbatim).
V2_SQLITE_DDL = """
CREATE TABLE approvals (
    id VARCHAR(32) NOT NULL, "plan" JSON NOT NULL, target TEXT NOT NULL, requester TEXT NOT NULL,
    reasons JSON NOT NULL, status VARCHAR(16) NOT NULL, created_at DATETIME NOT NULL, expires_at DATETIME NOT NULL,
    decided_by TEXT NOT NULL, decided_at DATETIME, channel TEXT NOT NULL, message_ts TEXT NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX ix_approvals_target_status ON approvals (target, status);
CREATE TABLE audit (
    id INTEGER NOT NULL, at DATETIME NOT NULL, actor TEXT NOT NULL, source TEXT NOT NULL, action TEXT NOT NULL,
    target TEXT NOT NULL, result TEXT NOT NULL, detail TEXT NOT NULL, "plan" JSON, transcript TEXT NOT NULL,
    duration_ms INTEGER, change_id VARCHAR(32),
    PRIMARY KEY (id)
);
CREATE INDEX ix_audit_at ON audit (at);
CREATE INDEX ix_audit_target ON audit (target);
CREATE INDEX ix_audit_change_id ON audit (change_id);
CREATE TABLE changes (
    seq INTEGER NOT NULL, id VARCHAR(32) NOT NULL, router TEXT NOT NULL, moves JSON NOT NULL,
    prefixes TEXT NOT NULL, status VARCHAR(16) NOT NULL, kind TEXT NOT NULL, requested_by TEXT NOT NULL,
    source TEXT NOT NULL, created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL, error TEXT NOT NULL,
    result JSON, idempotency_key TEXT,
    PRIMARY KEY (seq), UNIQUE (id), UNIQUE (idempotency_key)
);
CREATE INDEX ix_changes_status ON changes (status);
CREATE INDEX ix_changes_router ON changes (router);
CREATE INDEX ix_changes_created_at ON changes (created_at);
CREATE TABLE idempotency_keys (
    "key" TEXT NOT NULL, owner TEXT NOT NULL, claimed_at DATETIME NOT NULL, expires_at DATETIME NOT NULL,
    PRIMARY KEY ("key")
);
CREATE TABLE incidents (
    id INTEGER NOT NULL, "key" TEXT NOT NULL, title TEXT NOT NULL, severity TEXT NOT NULL,
    status VARCHAR(16) NOT NULL, opened_at DATETIME NOT NULL, resolved_at DATETIME, channel TEXT NOT NULL,
    thread_ts TEXT NOT NULL,
    PRIMARY KEY (id)
);
CREATE UNIQUE INDEX ux_incidents_open_key ON incidents ("key") WHERE status = 'open';
CREATE TABLE maintenance (
    host TEXT NOT NULL, "by" TEXT NOT NULL, reason TEXT NOT NULL, since DATETIME NOT NULL, until DATETIME,
    PRIMARY KEY (host)
);
CREATE TABLE router_locks (
    router TEXT NOT NULL, holder TEXT NOT NULL, info TEXT NOT NULL, acquired_at DATETIME NOT NULL,
    expires_at DATETIME NOT NULL,
    PRIMARY KEY (router)
);
CREATE TABLE schema_version (
    id INTEGER NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (id)
);
CREATE TABLE incident_events (
    id INTEGER NOT NULL, incident_id INTEGER NOT NULL, at DATETIME NOT NULL, kind TEXT NOT NULL,
    member TEXT NOT NULL, data JSON, text TEXT NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(incident_id) REFERENCES incidents (id) ON DELETE CASCADE
);
CREATE INDEX ix_incident_events_incident_id ON incident_events (incident_id);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
"""

START = datetime(2030, 1, 2, 12, 3, 4, tzinfo=UTC)  # the tests' FakeClock starts here (conftest.py)
LOCK_COLUMNS_OF_3 = {"node", "pid", "started", "boot_id", "pid_ns", "session_key"}
CHANGE_ID = "0123456789abcdef0123456789abcdef"
MOVES = '[{"prefix": "198.51.100.32/27", "old": "192.0.2.2", "new": "192.0.2.3"}]'
AT = "2030-01-02 12:03:04.000000"  # START, as SQLite columns of SQLAlchemy's DateTime hold it
LEASE_END = "2030-01-02 12:08:04.000000"  # five minutes on


def version_2_database(path: Path) -> str:
    """A schema 2 SQLite file with what a running lasthop of then had: a lock, a change in flight, audit."""
    db = sqlite3.connect(path)
    try:
        db.executescript(V2_SQLITE_DDL)
        db.execute("INSERT INTO schema_version (id, version) VALUES (1, 2)")
        db.execute("INSERT INTO router_locks VALUES ('r1', 'alice@old:77/abcd0123', 'change by alice (slack)', ?, ?)",
                   (AT, LEASE_END))
        db.execute("INSERT INTO changes (id, router, moves, prefixes, status, kind, requested_by, source, created_at,"
                   " updated_at, error, result, idempotency_key) VALUES (?, 'r1', ?, ' 198.51.100.32/27 ',"
                   " 'applying', 'manual', 'alice', 'slack', ?, ?, '', NULL, 'slack:evt1:r1')",
                   (CHANGE_ID, MOVES, AT, AT))
        db.execute("INSERT INTO audit (at, actor, source, action, target, result, detail, transcript, change_id)"
                   " VALUES (?, 'alice', 'slack', 'plan', 'www-a', 'ok', 'www-a: web1 -> web2', '', ?)",
                   (AT, CHANGE_ID))
        db.commit()
    finally:
        db.close()
    return f"sqlite:///{path}"


def test_a_version_2_database_is_migrated_and_keeps_its_locks_changes_and_audit(tmp_path: Path, clock: Any) -> None:
    url = version_2_database(tmp_path / "old.db")
    with StateStore(url, clock=clock) as store:
        raw = create_engine(url)
        try:
            with raw.connect() as conn:
                assert conn.execute(text("SELECT version FROM schema_version")).scalar_one() == SCHEMA_VERSION == 4
            assert {c["name"] for c in inspect(raw).get_columns("router_locks")} >= LOCK_COLUMNS_OF_3
            assert {"leadership", "health", "settings"} <= set(inspect(raw).get_table_names())
            change = store.get_change(CHANGE_ID)
            assert change is not None and (change.status, change.router, change.requested_by) == (
                "applying", "r1", "alice")
            assert change.moves == [{"prefix": "198.51.100.32/27", "old": "192.0.2.2", "new": "192.0.2.3"}]
            assert [c.id for c in store.changes_in_flight()] == [CHANGE_ID]
            (record,) = store.history()
            assert (record.actor, record.action, record.detail, record.change_id, record.at) == (
                "alice", "plan", "www-a: web1 -> web2", CHANGE_ID, START)
            with raw.begin() as conn, pytest.raises(IntegrityError, match="append-only"):
                conn.execute(text("DELETE FROM audit"))  # the old triggers still guard the trail
        finally:
            raw.dispose()
        assert store.lock_info("r1") == LockInfo(
            "r1", "alice@old:77/abcd0123", "change by alice (slack)", START, START + timedelta(minutes=5), "")
    with StateStore(url, clock=clock) as again:  # a second start migrates nothing and loses nothing
        assert again.get_change(CHANGE_ID) is not None and len(again.history()) == 1


def test_a_lock_from_before_schema_3_stands_until_its_lease_ends(tmp_path: Path, clock: Any) -> None:
    """Such a row names no process: whether its holder lives cannot be told, so only its TTL ends it."""
    url = version_2_database(tmp_path / "old.db")
    with StateStore(url, clock=clock) as store:
        clock.advance(minutes=4, seconds=59)
        with pytest.raises(LockHeld, match="r1 is busy: change by alice \\(slack\\) since 12:03:04Z"):
            store.acquire_lock("r1", holder="bob@new/1", info="change by bob (cli)")
        assert store.router_activity("r1").busy
        clock.advance(seconds=1)
        assert store.lock_info("r1") is None
        # Expired, not dead: taken by the plain lease rule, so there is no dead holder to report.
        assert store.acquire_lock("r1", holder="bob@new/1", info="change by bob (cli)") is None
        lock = store.lock_info("r1")
        assert lock is not None and lock.holder == "bob@new/1" and lock.process  # now with its process


def test_an_old_lock_row_is_refused_until_its_lease_ends_on_every_backend(
    store: StateStore, raw: Engine, open_store: Callable[..., StateStore], clock: Any,
) -> None:
    store.acquire_lock("r1", holder="alice@old:77/abcd0123", info="change by alice (slack)")
    with raw.begin() as conn:  # what a lasthop of schema version 2 left behind
        for column in sorted(LOCK_COLUMNS_OF_3):
            conn.execute(text(f"ALTER TABLE router_locks DROP COLUMN {column}"))
        conn.execute(text("UPDATE schema_version SET version = 2"))
    reopened = open_store()
    with raw.connect() as conn:
        assert conn.execute(text("SELECT version FROM schema_version")).scalar_one() == SCHEMA_VERSION
        row = conn.execute(text("SELECT node, pid, started, boot_id, pid_ns, session_key FROM router_locks")).one()
    assert tuple(row) == ("", 0, 0, "", "", None)
    with pytest.raises(LockHeld):  # SQLite: no process named; PostgreSQL: no session key to probe
        reopened.acquire_lock("r1", holder="bob@new/1", info="change by bob (cli)")
    clock.advance(minutes=5)
    assert reopened.acquire_lock("r1", holder="bob@new/1", info="change by bob (cli)") is None


def test_a_version_no_migration_starts_from_is_refused_and_left_as_it_was(
    store: StateStore, raw: Engine, open_store: Callable[..., StateStore],
) -> None:
    with raw.begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = 0"))
    with pytest.raises(StateError, match="schema version 0, which this lasthop \\(4\\) has no migration from"):
        open_store()
    with raw.connect() as conn:
        assert conn.execute(text("SELECT version FROM schema_version")).scalar_one() == 0
