"""The move transaction: router locks, the change record's status steps, and what it adds up to.

Over a real SQLite store and memory routers: no root, no network.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
from support.fakes import ManualClock
from support.memory import MemoryRouter, Rig, memory_rig

from bot.drivers.base import RouteMove, Transcript
from bot.engine.model import MoveRequest, Plan, PlannedMove
from bot.engine.transaction import MoveTransaction, RouterChange, took_over
from bot.inventory import Inventory
from bot.state import LockInfo, StateStore
from bot.state.errors import BadTransition, DuplicateRequest, LockHeld, LockLost
from bot.state.transitions import CHANGE_TRANSITIONS

REQUEST = MoveRequest(kind="host", target="web1", actor="alice", source="cli")
INFO = "change by alice (cli)"


@pytest.fixture
def rig(inv: Inventory, tmp_path: Path) -> Iterator[Rig]:
    r = memory_rig(inv, tmp_path, {"www-a": "web1", "www-b": "web2", "www-d": "web1"})
    yield r
    r.close()


def planned(inv: Inventory, service: str, from_host: str | None, to_host: str) -> PlannedMove:
    svc = inv.services[service]
    return PlannedMove(service, svc.router, svc.prefix, from_host,
                       inv.hosts[from_host].address if from_host else None,
                       to_host, inv.hosts[to_host].address, svc.vips)


def plan_of(*moves: PlannedMove, request: MoveRequest = REQUEST) -> Plan:
    return Plan(request, tuple(moves), tuple(f"{m.service} -> {m.to_host}" for m in moves))


def two_routers(inv: Inventory) -> Plan:
    # r2's move first: the transaction, not the plan's order, decides the lock order.
    return plan_of(planned(inv, "www-d", "web1", "web2"), planned(inv, "www-a", "web1", "web3"))


def open_tx(store: StateStore, plan: Plan, holder: str = "alice@test/1", **kw: Any) -> MoveTransaction:
    return MoveTransaction.open(store, plan, holder=holder, info=INFO, **kw)


def begun(store: StateStore, inv: Inventory, key: str | None = None, **kw: Any) -> RouterChange:
    """A change on r1 with its record created (planned), outside any lock."""
    change = RouterChange(store, "r1", (planned(inv, "www-a", "web1", "web2").route,), requested_by="alice",
                          source="cli", **kw)
    change.begin(key)
    return change


def holders(store: StateStore, *routers: str) -> list[str | None]:
    return [lock.holder if (lock := store.lock_info(r)) else None for r in routers]


# -- locks ----------------------------------------------------------------------------


def test_locks_are_taken_in_sorted_order_and_released_on_exit(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[str] = []
    acquire = rig.store.acquire_lock

    def recording(router: str, **kw: Any) -> None:
        taken.append(router)
        acquire(router, **kw)

    monkeypatch.setattr(rig.store, "acquire_lock", recording)
    with open_tx(rig.store, two_routers(rig.inv)) as tx:
        assert taken == ["r1", "r2"]
        assert holders(rig.store, "r1", "r2") == ["alice@test/1", "alice@test/1"]
        assert [c.router for c in tx.each_router()] == ["r1", "r2"]
    assert holders(rig.store, "r1", "r2") == [None, None]


def test_locks_are_released_when_the_block_raises(rig: Rig) -> None:
    with pytest.raises(RuntimeError, match="ssh died"), open_tx(rig.store, two_routers(rig.inv)):
        assert holders(rig.store, "r1", "r2") == ["alice@test/1", "alice@test/1"]
        raise RuntimeError("ssh died")
    assert holders(rig.store, "r1", "r2") == [None, None]


def test_a_held_router_refuses_and_keeps_none_of_the_locks_taken_before_it(rig: Rig) -> None:
    rig.store.acquire_lock("r2", holder="bob@other/9", info="change by bob (slack)")
    with pytest.raises(LockHeld, match="r2 is busy: change by bob"):
        open_tx(rig.store, two_routers(rig.inv))
    assert holders(rig.store, "r1", "r2") == [None, "bob@other/9"]  # r1 was taken first, and given back


def test_hold_after_the_lock_was_taken_over_raises_lock_lost_and_exit_leaves_the_new_holder(rig: Rig) -> None:
    with open_tx(rig.store, two_routers(rig.inv)) as tx:
        change = next(tx.each_router())
        tx.hold("r1")
        change.hold()  # ours: both renew it
        rig.clock.advance(minutes=6)  # stalled past the lock's lifetime; another process takes r1
        rig.store.acquire_lock("r1", holder="bob@other/9", info="change by bob (slack)")
        with pytest.raises(LockLost, match="lost the lock on r1"):
            tx.hold("r1")
        with pytest.raises(LockLost):
            change.hold()
    assert holders(rig.store, "r1", "r2") == ["bob@other/9", None]


def test_a_dead_holders_lock_is_taken_over_audited_and_named_first_in_the_outcome(rig: Rig) -> None:
    dead = rig.dead_lock("r1", holder="bob@edge9:4321/0badc0de", info="change by bob (slack)")
    rig.clock.advance(seconds=30)
    node, _, pid = dead.process.rpartition(":")
    said = (f"took over r1's lock from a holder that is gone: change by bob (slack) "
            f"(process {pid} on {node}, holding it since {dead.acquired_at:%H:%M:%S}Z)")
    with open_tx(rig.store, two_routers(rig.inv)) as tx:
        assert holders(rig.store, "r1", "r2") == ["alice@test/1", "alice@test/1"]
        assert tx.notes == [said]  # r2 was free: nothing taken over there
        (r1, _) = tx.each_router()
        r1.lines.append("www-a: web1 -> web3, verified in the FIB")
        outcome = tx.outcome("done")
    assert outcome.lines == [said, "www-a: web1 -> web3, verified in the FIB"]
    (record,) = rig.store.history()
    assert (record.actor, record.source, record.action, record.target, record.result, record.detail) == (
        "alice", "cli", "lock", "r1", "taken_over", said)
    assert record.at == rig.clock.now and record.change_id is None


def test_a_takeover_is_audited_even_when_a_later_router_refuses(rig: Rig) -> None:
    rig.dead_lock("r1", holder="bob@edge9:4321/0badc0de", info="change by bob (slack)")
    rig.store.acquire_lock("r2", holder="carol@other/9", info="change by carol (cli)")
    with pytest.raises(LockHeld, match="r2 is busy: change by carol"):
        open_tx(rig.store, two_routers(rig.inv))
    assert holders(rig.store, "r1", "r2") == [None, "carol@other/9"]  # r1 taken, then given back
    (record,) = rig.store.history()
    assert (record.action, record.target, record.result) == ("lock", "r1", "taken_over")
    assert "change by bob (slack)" in record.detail


def test_a_live_holder_is_never_taken_over_and_nothing_is_audited(rig: Rig) -> None:
    rig.store.acquire_lock("r1", holder="bob@here/1", info="change by bob (slack)")  # this process: alive
    with pytest.raises(LockHeld):
        open_tx(rig.store, two_routers(rig.inv))
    assert rig.store.history() == []
    with open_tx(rig.store, plan_of(planned(rig.inv, "www-d", "web1", "web2"))) as tx:
        assert tx.notes == []  # a free router: no takeover to tell
    assert rig.store.history() == []


def test_the_takeover_line_names_what_is_known_and_says_so_when_the_process_is_not(rig: Rig) -> None:
    at = datetime(2030, 1, 2, 9, 8, 7, tzinfo=UTC)
    lock = LockInfo("r1", "bob@x/1", "change by bob (slack)", at, at, "edge9:4321")
    assert took_over("r1", lock) == ("took over r1's lock from a holder that is gone: change by bob (slack) "
                                     "(process 4321 on edge9, holding it since 09:08:07Z)")
    older = LockInfo("r1", "bob@x/1", "", at, at)  # a row without a process, or without info
    assert took_over("r1", older) == ("took over r1's lock from a holder that is gone: bob@x/1 "
                                      "(its process unknown, holding it since 09:08:07Z)")


def test_each_router_starts_its_change_only_when_reached(rig: Rig) -> None:
    with open_tx(rig.store, two_routers(rig.inv)) as tx:
        for change in tx.each_router():
            change.lines.append(f"{change.router} reached")
            break  # the first router failed: the second is never begun
        assert [c.router for c in tx.changes] == ["r1"]
        outcome = tx.outcome("refused")
        assert outcome.lines == ["r1 reached"] and outcome.change_id is None  # no record was made


def test_each_router_carries_its_own_moves_the_plans_kind_and_the_holder(rig: Rig) -> None:
    plan = two_routers(rig.inv)
    with open_tx(rig.store, plan, approved_by="slack:U0BOB", risk_accepted=True) as tx:
        r1, r2 = tx.each_router()
    assert r1.moves == (plan.moves[1],) and r2.moves == (plan.moves[0],)
    assert r1.routes == (plan.moves[1].route,)
    assert (r1.kind, r1.holder, r1.risk_accepted, r1.requested_by, r1.source) == (
        "approved", "alice@test/1", True, "alice", "cli")


# -- the change record's status -----------------------------------------------------------


def test_begin_records_a_planned_change_with_the_typed_moves_under_a_per_router_key(rig: Rig) -> None:
    change = begun(rig.store, rig.inv, key="slack:evt1")
    stored = rig.store.get_change(change.change_id)
    assert stored is not None and stored == change.change
    assert (stored.status, stored.router, stored.idempotency_key) == ("planned", "r1", "slack:evt1:r1")
    assert stored.moves == [{"prefix": "198.51.100.32/27", "old": "192.0.2.2", "new": "192.0.2.3"}]


def test_begin_twice_under_one_key_raises_duplicate_request_naming_the_first(rig: Rig) -> None:
    first = begun(rig.store, rig.inv, key="slack:evt1")
    with pytest.raises(DuplicateRequest) as caught:
        begun(rig.store, rig.inv, key="slack:evt1")
    assert caught.value.change_id == first.change_id


# Each named step, the status it asks for, and how to call it.
STEPS: dict[str, tuple[str, Callable[[RouterChange], object]]] = {
    "applying": ("applying", lambda c: c.applying()),
    "verifying": ("verifying", lambda c: c.verifying()),
    "done": ("done", lambda c: c.done()),
    "rolled_back": ("rolled_back", lambda c: c.rolled_back("r1: FIB never showed 192.0.2.3")),
    "needs_human": ("needs_human", lambda c: c.needs_human("lost the lock")),
}
# How to bring a new change to each status by allowed steps.
PATH_TO = {
    "planned": [], "applying": ["applying"], "verifying": ["applying", "verifying"],
    "needs_human": ["applying", "needs_human"], "done": ["applying", "verifying", "done"],
    "rolled_back": ["applying", "rolled_back"], "failed": ["failed"], "refused": ["refused"],
}


@pytest.mark.parametrize("step", sorted(STEPS))
@pytest.mark.parametrize("old", sorted(CHANGE_TRANSITIONS))
def test_each_named_step_moves_the_record_exactly_where_the_transition_table_allows(
        rig: Rig, old: str, step: str) -> None:
    change = begun(rig.store, rig.inv)
    for status in PATH_TO[old]:
        rig.store.set_change_status(change.change_id, status)
    new, call = STEPS[step]
    if new in CHANGE_TRANSITIONS[old]:
        call(change)
        assert change.status == new
    else:
        with pytest.raises(BadTransition):
            call(change)
    stored = rig.store.get_change(change.change_id)
    assert stored is not None and stored.status == (new if new in CHANGE_TRANSITIONS[old] else old)


def test_done_stores_the_timings_with_the_total(rig: Rig) -> None:
    clock = ManualClock(100.0)
    change = begun(rig.store, rig.inv, clock=clock)  # its clock starts here, at 100 s
    change.applying()
    change.verifying()
    with change.timed("verify_ms"):
        clock.now += 0.25
    clock.now += 0.5
    assert change.done() == 750
    stored = rig.store.get_change(change.change_id)
    assert stored is not None and stored.result == {"timings_ms": {"verify_ms": 250, "total_ms": 750}}


def test_rolled_back_and_needs_human_keep_why(rig: Rig) -> None:
    back, stuck = begun(rig.store, rig.inv), begun(rig.store, rig.inv)
    for c in (back, stuck):
        c.applying()
    back.rolled_back("r1: FIB never showed 192.0.2.3")
    stuck.needs_human("ROLLBACK FAILED")
    assert "total_ms" in back.timings and "total_ms" not in stuck.timings
    errors = [(c.status, c.error) for c in map(rig.store.get_change, (back.change_id, stuck.change_id)) if c]
    assert errors == [("rolled_back", "r1: FIB never showed 192.0.2.3"), ("needs_human", "ROLLBACK FAILED")]


def test_a_step_before_begin_is_an_error_not_a_silent_no_op(rig: Rig) -> None:
    change = RouterChange(rig.store, "r1", ())
    with pytest.raises(RuntimeError, match="begin"):
        change.applying()


# -- after a restart ----------------------------------------------------------------------------


def test_load_gives_back_the_same_typed_moves_and_who_asked(rig: Rig) -> None:
    fresh = RouteMove(IPv4Network("203.0.113.0/24"), None, IPv4Address("192.0.2.4"))  # a route that was new
    original = RouterChange(rig.store, "r1", (planned(rig.inv, "www-a", "web1", "web2").route, fresh),
                            requested_by="alice", source="slack", kind="approved")
    original.begin()
    original.applying()
    record = rig.store.get_change(original.change_id)
    assert record is not None
    loaded = RouterChange.load(rig.store, record)
    assert loaded.routes == original.routes
    assert (loaded.router, loaded.requested_by, loaded.source, loaded.kind) == ("r1", "alice", "slack", "approved")
    assert (loaded.change_id, loaded.status, loaded.moves, loaded.holder) == (original.change_id, "applying", (), "")


def test_load_of_a_damaged_record_says_what_is_wrong(rig: Rig) -> None:
    record = rig.store.create_change(router="r1", moves=[{"prefix": "198.51.100.32/27", "new": "web2"}],
                                     requested_by="alice", source="cli")
    with pytest.raises(ValueError, match="damaged move record"):
        RouterChange.load(rig.store, record)


def test_a_second_settler_is_a_no_op_and_the_first_verdict_stands(rig: Rig) -> None:
    change = begun(rig.store, rig.inv)
    change.applying()
    record = rig.store.get_change(change.change_id)
    assert record is not None
    first, second = RouterChange.load(rig.store, record), RouterChange.load(rig.store, record)
    assert first.settle("done", "the router shows every new next hop: finished")
    assert not second.settle("rolled_back", "the router still shows the old next hops")
    stored = rig.store.get_change(change.change_id)
    assert stored is not None and stored.status == "done"
    assert stored.error == "reconciled: the router shows every new next hop: finished"


# -- the device -----------------------------------------------------------------------------------


def _committed(kind: str, revert_seconds: int | None = None) -> tuple[MemoryRouter, RouteMove]:
    move = RouteMove(IPv4Network("198.51.100.32/27"), IPv4Address("192.0.2.2"), IPv4Address("192.0.2.3"))
    router = MemoryRouter("r1", {move.prefix: {move.old or move.new}}, kind=kind, revert_seconds=revert_seconds)
    router.load([move])
    router.commit()
    return router, move


def test_roll_back_uses_the_drivers_rollback_timed_and_transcribed(rig: Rig) -> None:
    router, move = _committed("cisco_ios", revert_seconds=300)
    change = RouterChange(rig.store, "r1", (move,))
    assert router.has_pending_commit()
    change.roll_back(router, confirm_timeout=1.0)
    assert router.closes == 1  # the failed session is dropped before the rollback opens another
    assert router.hops(move.prefix) == {move.old}
    assert router.armed is None and not router.fire_revert_timer()  # the device's own revert was cancelled
    assert "rollback_ms" in change.timings
    assert "configure revert now" in change.transcript_text()


def test_confirm_keeps_a_pending_commit_and_sends_nothing_without_one(rig: Rig) -> None:
    armed, move = _committed("cisco_ios", revert_seconds=300)
    change = RouterChange(rig.store, "r1", (move,))
    change.confirm(armed)
    assert not armed.has_pending_commit() and armed.armed is None
    assert change.transcript == ["> configure confirm"]
    plain, _ = _committed("frr")
    sent = len(plain.commands)
    change.confirm(plain)
    assert len(plain.commands) == sent and change.transcript == ["> configure confirm"]


# -- what it adds up to -------------------------------------------------------------------------------


def test_timed_adds_up_a_step_even_when_it_raises(rig: Rig) -> None:
    clock = ManualClock()
    change = RouterChange(rig.store, "r1", (), clock=clock)
    with change.timed("apply_ms"):
        clock.now += 0.1
    with pytest.raises(RuntimeError), change.timed("apply_ms"):
        clock.now += 0.2
        raise RuntimeError("refused")
    assert change.timings == {"apply_ms": 300}


def test_the_outcome_adds_up_every_router_reached(rig: Rig) -> None:
    with open_tx(rig.store, two_routers(rig.inv)) as tx:
        r1, r2 = tx.each_router()
    r1.begin()
    r1.lines.append("change failed: r1 refused the route")
    r1.timings.update(precheck_ms=5, apply_ms=10)
    r2.begin()
    r2.lines.append("www-d: web1 -> web2, verified in the FIB")
    r2.timings.update(precheck_ms=7, total_ms=40)
    for change, command in ((r1, "ip route 1"), (r2, "ip route 2")):
        t = Transcript(change.router)
        t.add(command, "ok", 0.0)
        change.add(t)
        change.add(Transcript(change.router))  # nothing said: nothing kept
    outcome = tx.outcome("rolled_back")
    assert outcome.status == "rolled_back" and outcome.plan is tx.plan
    assert outcome.lines == ["change failed: r1 refused the route", "www-d: web1 -> web2, verified in the FIB"]
    assert outcome.timings_ms == {"precheck_ms": 12, "apply_ms": 10, "total_ms": 40}
    assert outcome.change_id == r1.change_id != r2.change_id  # the first router's change record
    assert "> ip route 1\nok" in outcome.transcript and "> ip route 2\nok" in outcome.transcript
    assert r1.transcript == ["> ip route 1\nok"]
