"""The audit trail: appended, read newest first, and never holding a secret."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError

from bot.state import StateStore, register_secret
from bot.state import schema as t


def test_audit_appends_and_history_is_newest_first(store: StateStore, clock: Any) -> None:
    ids, times = [], []
    for n, target in enumerate(["www-a", "www-b", "www-a"]):
        times.append(clock.now)
        ids.append(
            store.audit(
                actor="alice",
                source="slack",
                action="failover",
                target=target,
                result="ok",
                detail=f"step {n}",
                plan={"target": target, "moves": [{"prefix": "198.51.100.32/27"}]},
                duration_ms=1200 + n,
                change_id=f"{n:032x}",
            )
        )
        clock.advance(seconds=1)
    assert ids == sorted(ids) and len(set(ids)) == 3

    newest = store.history()
    assert [r.id for r in newest] == ids[::-1]
    assert [r.at for r in newest] == times[::-1]
    assert all(r.at.utcoffset() == timedelta(0) for r in newest)
    first = newest[-1]
    assert (first.actor, first.source, first.action, first.target, first.result) == (
        "alice",
        "slack",
        "failover",
        "www-a",
        "ok",
    )
    assert first.detail == "step 0"
    assert first.plan == {"target": "www-a", "moves": [{"prefix": "198.51.100.32/27"}]}
    assert first.duration_ms == 1200
    assert first.change_id == f"{0:032x}"
    assert first.transcript == ""

    assert [r.id for r in store.history(limit=2)] == ids[:0:-1]
    assert [r.id for r in store.history(target="www-a")] == [ids[2], ids[0]]
    assert store.history(target="nothing") == []


def test_optional_audit_fields_come_back_empty(store: StateStore) -> None:
    store.audit(actor="scheduler", source="health", action="check", target="web1", result="down")
    (record,) = store.history()
    assert record.plan is None
    assert record.duration_ms is None
    assert record.change_id is None
    assert record.detail == ""


def test_a_registered_secret_is_never_stored(store: StateStore, raw: Engine) -> None:
    secret = f"hunter2-{uuid.uuid4().hex[:12]}"
    register_secret(secret)
    store.audit(
        actor="alice",
        source="slack",
        action="failover",
        target="www-a",
        result="failed",
        detail=f"login failed with {secret}; db postgresql://ops:dbpass123@db/lasthop",
        plan={"target": "www-a", "note": f"used {secret}"},
        transcript=f"r1# password {secret}\nr1# show ip route\n",
    )
    change = store.create_change(router="r1", moves=[], requested_by="alice", source="slack")
    store.set_change_status(change.id, "failed", error=f"ssh: password={secret} rejected")
    incident = store.open_incident(key="www-a", title="www-a down")
    store.add_incident_event(incident.id, f"tried {secret}")

    (record,) = store.history()
    assert secret not in record.detail and "***" in record.detail
    assert "dbpass123" not in record.detail
    assert secret not in record.transcript
    assert secret not in str(record.plan)

    # What is on disk, not just what the store hands back.
    with raw.connect() as conn:
        for table in (t.audit, t.changes, t.incident_events):
            for row in conn.execute(select(table)):
                assert secret not in str(tuple(row)), table.name


def test_the_audit_table_refuses_updates_and_deletes(store: StateStore, raw: Engine) -> None:
    store.audit(actor="alice", source="slack", action="failover", target="www-a", result="ok")
    for statement in ("UPDATE audit SET result = 'changed'", "DELETE FROM audit"):
        with pytest.raises(DBAPIError, match="append-only"), raw.begin() as conn:
            conn.execute(text(statement))
    assert store.history()[0].result == "ok"
    assert not any(name.startswith(("update", "delete", "remove")) for name in dir(StateStore))
