"""Opening the store: schema, timeouts, time zones, and what a bad database looks like."""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text

from bot.state import (
    ApprovalClosed,
    ApprovalRecord,
    DuplicateRequest,
    LockHeld,
    LockInfo,
    LockLost,
    NotFound,
    StateError,
    StateStore,
)
from bot.state.schema import SCHEMA_VERSION

LOCK_COLUMNS_OF_3 = ("node", "pid", "started", "boot_id", "pid_ns", "session_key")
TABLES = {
    "audit",
    "changes",
    "idempotency_keys",
    "approvals",
    "router_locks",
    "incidents",
    "incident_events",
    "schema_version",
}


def test_first_start_creates_the_tables_and_reopening_keeps_the_data(
    open_store: Callable[..., StateStore], db_url: str, raw: Engine
) -> None:
    assert set(inspect(raw).get_table_names()) >= TABLES
    with raw.connect() as conn:
        assert conn.execute(text("SELECT version FROM schema_version")).scalar_one() == SCHEMA_VERSION
    first = open_store()
    audit_id = first.audit(actor="a", source="cli", action="x", target="r1", result="ok")
    first.close()
    assert [r.id for r in open_store().history()] == [audit_id]


def test_every_connection_has_timeouts(store: StateStore, db_url: str) -> None:
    with store._engine.connect() as conn:
        if db_url.startswith("sqlite"):
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        else:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "10s"
            assert store._engine.url.drivername == "postgresql+psycopg"


def test_times_are_aware_utc_whatever_the_clock_zone(open_store: Callable[..., StateStore]) -> None:
    local = datetime(2030, 1, 2, 14, 3, 4, 123456, tzinfo=timezone(timedelta(hours=2)))
    store = open_store(clock=lambda: local)
    store.audit(actor="a", source="cli", action="x", target="r1", result="ok")
    change = store.create_change(router="r1", moves=[], requested_by="a", source="cli")
    store.acquire_lock("r1", holder="h", info="i")
    (record,) = store.history()
    for value in (record.at, store.get_change(change.id).created_at):  # type: ignore[union-attr]
        assert value == local
        assert value.tzinfo is not None and value.utcoffset() == timedelta(0)
        assert (value.hour, value.microsecond) == (12, 123456)
    assert store.lock_info("r1").acquired_at.tzinfo == UTC  # type: ignore[union-attr]


def test_a_naive_clock_is_refused(open_store: Callable[..., StateStore]) -> None:
    store = open_store(clock=lambda: datetime(2030, 1, 1, 12, 0))
    with pytest.raises(ValueError, match="naive"):
        store.claim_key("k", owner="o")


def test_a_database_from_a_newer_lasthop_is_refused(
    store: StateStore, raw: Engine, open_store: Callable[..., StateStore]
) -> None:
    with raw.begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = 99"))
    with pytest.raises(StateError, match="schema version 99, newer than this lasthop"):
        open_store()


def test_a_version_1_database_is_migrated_and_keeps_its_incidents(
    store: StateStore, raw: Engine, open_store: Callable[..., StateStore]
) -> None:
    incident = store.open_incident(key="host:web1", title="web1 is down")
    store.add_incident_event(incident.id, "web1 is down (www-a)")
    with raw.begin() as conn:  # what a lasthop of schema version 1 left behind
        for column in ("kind", "member", "data"):
            conn.execute(text(f"ALTER TABLE incident_events DROP COLUMN {column}"))
        for column in LOCK_COLUMNS_OF_3:
            conn.execute(text(f"ALTER TABLE router_locks DROP COLUMN {column}"))
        conn.execute(text("UPDATE schema_version SET version = 1"))
    reopened = open_store()
    with raw.connect() as conn:
        assert conn.execute(text("SELECT version FROM schema_version")).scalar_one() == SCHEMA_VERSION
    (old,) = reopened.get_incident(incident.id).events  # type: ignore[union-attr]
    assert (old.text, old.kind, old.data) == ("web1 is down (www-a)", "", {})
    new = reopened.add_incident_event(incident.id, "web1 is back up", kind="up", member="host:web1",
                                      data={"failing": []})
    assert reopened.get_incident(incident.id).events[-1] == new  # type: ignore[union-attr]


def test_a_released_key_can_be_claimed_again_by_anyone_but_only_its_owner_releases(store: StateStore) -> None:
    assert store.claim_key("k", owner="first") is True
    assert store.release_key("k", owner="someone else") is False
    assert store.claim_key("k", owner="second") is False
    assert store.release_key("k", owner="first") is True
    assert store.claim_key("k", owner="second") is True


def test_the_open_constructor(db_url: str) -> None:
    store = StateStore.open(db_url)
    try:
        assert store.claim_key("k", owner="o") is True
    finally:
        store.close()


# The rest needs no database of either kind.


def test_a_bare_path_is_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state.db"
    try:
        with StateStore(str(path)) as store:
            store.audit(actor="a", source="cli", action="x", target="r1", result="ok")
        assert path.exists()
    finally:
        shutil.rmtree(tmp_path / "deep", ignore_errors=True)


def test_in_memory_sqlite_is_shared_by_threads(
    race: Callable[[int, Callable[[int], Any]], list[Any]],
) -> None:
    with StateStore("sqlite://") as store:
        results = race(8, lambda i: store.claim_key("k", owner=f"t{i}"))
        assert results.count(True) == 1 and results.count(False) == 7, results


def test_unsupported_and_unreachable_databases_are_short_errors() -> None:
    with pytest.raises(StateError, match="unsupported state database mysql://ops:\\*\\*\\*@db/x"):
        StateStore("mysql://ops:secret@db/x")
    # Port 1 on loopback: refused at once, no waiting on a timeout.
    with pytest.raises(StateError, match=r"^state database error: ") as caught:
        StateStore("postgresql://ops:pw-12345@127.0.0.1:1/lasthop")
    assert "pw-12345" not in str(caught.value) and "\n" not in str(caught.value)


def test_errors_are_short_and_survive_pickling() -> None:
    at = datetime(2030, 1, 2, 12, 3, 4, tzinfo=UTC)
    info = LockInfo("r1", "change-1", "change by alice (slack)", at, at + timedelta(minutes=5))
    approval = ApprovalRecord("a" * 32, {"target": "www-a"}, "alice", [], "approved", at, at, "bob", at, "", "")
    errors: list[StateError] = [
        LockHeld(info),
        LockLost("r1", "change-2", info),
        ApprovalClosed(approval),
        DuplicateRequest("b" * 32),
        NotFound("change", "c1"),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error) and vars(copy) == vars(error)
        assert "\n" not in str(error) and len(str(error)) < 100
    assert str(errors[0]) == "r1 is busy: change by alice (slack) since 12:03:04Z"
    assert str(errors[2]) == "approval aaaaaaaa is closed: already approved by bob"
    assert isinstance(errors[4], LookupError)
