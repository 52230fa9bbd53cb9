"""Approvals: decided once, by exactly one person, before they expire or are replaced."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from bot.state import ApprovalClosed, ApprovalRecord, NotFound, StateStore
from bot.state import schema as t

PLAN = {"target": "www-a", "router": "r1", "moves": [{"prefix": "198.51.100.32/27", "new": "192.0.2.3"}]}


def ask(store: StateStore, target: str = "www-a", minutes: int = 15) -> ApprovalRecord:
    return store.create_approval(
        plan={**PLAN, "target": target},
        requester="alice",
        reasons=["web2 failed its last check", "outside change window"],
        expires_in=timedelta(minutes=minutes),
        channel="C0OPS",
        message_ts="1700000000.000100",
    )


def status_of(store: StateStore, approval_id: str) -> str:
    approval = store.get_approval(approval_id)
    assert approval is not None
    return approval.status


def test_an_approval_starts_pending(store: StateStore, clock: Any) -> None:
    approval = ask(store)
    assert approval.status == "pending"
    assert len(approval.id) == 32
    assert approval.plan == PLAN
    assert approval.reasons == ["web2 failed its last check", "outside change window"]
    assert approval.created_at == clock.now
    assert approval.expires_at == clock.now + timedelta(minutes=15)
    assert (approval.decided_by, approval.decided_at) == ("", None)
    assert (approval.channel, approval.message_ts) == ("C0OPS", "1700000000.000100")
    assert store.get_approval(approval.id) == approval
    assert store.get_approval("f" * 32) is None


def test_an_approval_past_its_deadline_is_expired_and_stored_so(store: StateStore, clock: Any, raw: Engine) -> None:
    approval = ask(store, minutes=15)
    clock.advance(minutes=14, seconds=59)
    assert status_of(store, approval.id) == "pending"
    clock.advance(seconds=1)
    assert status_of(store, approval.id) == "expired"
    with raw.connect() as conn:
        stored = conn.execute(select(t.approvals.c.status).where(t.approvals.c.id == approval.id)).scalar_one()
    assert stored == "expired"


def test_an_expired_approval_cannot_be_decided(store: StateStore, clock: Any) -> None:
    approval = ask(store, minutes=5)
    clock.advance(minutes=6)
    with pytest.raises(ApprovalClosed, match="expired at 12:08:04Z") as caught:
        store.decide_approval(approval.id, decision="approved", by="bob")
    assert caught.value.record.status == "expired"
    assert caught.value.record.decided_by == ""
    assert status_of(store, approval.id) == "expired"


def test_an_approval_is_decided_once(store: StateStore, clock: Any) -> None:
    approval = ask(store)
    clock.advance(minutes=1)
    approved = store.decide_approval(approval.id, decision="approved", by="bob")
    assert approved.status == "approved"
    assert (approved.decided_by, approved.decided_at) == ("bob", clock.now)

    for decision in ("denied", "approved"):
        with pytest.raises(ApprovalClosed, match="already approved by bob") as caught:
            store.decide_approval(approval.id, decision=decision, by="carol")
        assert caught.value.record == approved
    # Decided before the deadline: it stays decided after it.
    clock.advance(hours=1)
    assert store.get_approval(approval.id) == approved


def test_deny_and_bad_input(store: StateStore) -> None:
    denied = store.decide_approval(ask(store).id, decision="denied", by="bob")
    assert denied.status == "denied"
    with pytest.raises(ValueError, match="'approved' or 'denied'"):
        store.decide_approval(ask(store).id, decision="yes", by="bob")
    with pytest.raises(NotFound):
        store.decide_approval("0" * 32, decision="approved", by="bob")
    with pytest.raises(ValueError, match="expires_in must be positive"):
        store.create_approval(plan=PLAN, requester="alice", reasons=[], expires_in=timedelta(0))


def test_two_concurrent_deciders_exactly_one_wins(
    store: StateStore, race: Callable[[int, Callable[[int], Any]], list[Any]]
) -> None:
    deciders = [("approved", "bob"), ("denied", "carol")]

    def decide(approval_id: str, i: int) -> ApprovalRecord:
        decision, by = deciders[i]
        return store.decide_approval(approval_id, decision=decision, by=by)

    for _ in range(5):
        approval = ask(store)
        results = race(2, functools.partial(decide, approval.id))
        won = [r for r in results if isinstance(r, ApprovalRecord)]
        lost = [r for r in results if isinstance(r, ApprovalClosed)]
        assert len(won) == 1 and len(lost) == 1, results
        assert lost[0].record == won[0]
        assert store.get_approval(approval.id) == won[0]


def test_a_newer_request_supersedes_pending_approvals_for_its_target(store: StateStore, clock: Any) -> None:
    old1, old2, newest = ask(store), ask(store), ask(store)
    other = ask(store, target="www-b")
    decided = store.decide_approval(ask(store).id, decision="approved", by="bob")
    lapsed = ask(store, minutes=1)
    clock.advance(minutes=2)

    assert store.supersede_approvals(target="www-a", except_id=newest.id) == 2
    assert status_of(store, old1.id) == "superseded"
    assert status_of(store, old2.id) == "superseded"
    assert status_of(store, newest.id) == "pending"
    assert status_of(store, other.id) == "pending"
    assert store.get_approval(decided.id) == decided
    assert status_of(store, lapsed.id) == "expired"

    with pytest.raises(ApprovalClosed, match="replaced by a newer request"):
        store.decide_approval(old1.id, decision="approved", by="bob")
    assert store.supersede_approvals(target="www-a") == 1
    assert status_of(store, newest.id) == "superseded"


def test_approval_message_location_is_recorded(store: StateStore) -> None:
    rec = store.create_approval(plan={"target": "www-a"}, requester="U1", reasons=["r"],
                                expires_in=timedelta(minutes=5))
    store.set_approval_message(rec.id, channel="C1", ts="1700000000.000100")
    got = store.get_approval(rec.id)
    assert got is not None and (got.channel, got.message_ts) == ("C1", "1700000000.000100")
    with pytest.raises(NotFound):
        store.set_approval_message("nope", channel="C1", ts="1")
