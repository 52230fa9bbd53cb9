"""Reconcile over memory routers: a change a process left half done is finished or undone from its
record, under the router's lock, and said once; only a router no change explains asks a person.

The half-done states are made the way they happen: a move stopped dead at a named fault point
(the `Crash` below escapes every handler, as SIGKILL does), then a new engine, as after a restart.
The lab fault suite (tests/faults) does the same with SIGKILL and real routers.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from support.fakes import inventory_from_text
from support.memory import INVENTORY, KINDS, Rig, memory_rig

from bot import faults
from bot.engine.model import MoveRequest
from bot.engine.pipeline import Engine
from bot.engine.settle import Settlement
from bot.health.machine import Health

PREFIX = IPv4Network("198.51.100.32/27")
WEB1, WEB2, STRANGER = IPv4Address("192.0.2.2"), IPv4Address("192.0.2.3"), IPv4Address("192.0.2.9")


class Crash(BaseException):
    """The process dies here: no handler of the engine's catches it, so nothing is cleaned up."""


def crash(point: str) -> None:
    raise Crash(point)


def rig_for(tmp_path: Path, kind: str = "frr") -> Rig:
    driver, extra = KINDS[kind]
    return memory_rig(inventory_from_text(tmp_path, INVENTORY.format(driver=driver, extra=extra)), tmp_path,
                      {"www-a": "web1"})


def dies_at(rig: Rig, point: str) -> str:
    """Run web1 -> web2 until `point`, where the process dies; the change id it left in flight."""
    req = MoveRequest(kind="service", target="www-a", actor="alice", source="cli", to_host="web2")
    plan = rig.engine.plan(req)
    with faults.armed(point, crash), pytest.raises(Crash):
        rig.engine.execute(plan, allow_risky=True)
    (change,) = rig.store.changes_in_flight()
    return change.id


def restarted(rig: Rig) -> Engine:
    """A new process over the same store and devices: its sessions know nothing of the dead one's commit."""
    for router in rig.routers.values():
        router._pending, router._committed = False, ()
    for router, lock in [(r, rig.store.lock_info(r)) for r in rig.routers]:
        if lock is not None:  # the dead process's lock; the store's liveness check frees it in real life
            rig.store.release_lock(router, holder=lock.holder)
    return Engine(rig.inv, rig.store, devices=rig.engine.devices, health=rig.health)


@pytest.fixture
def frr(tmp_path: Path) -> Iterator[Rig]:
    rig = rig_for(tmp_path)
    yield rig
    rig.close()


def one(settled: list[Settlement]) -> Settlement:
    assert len(settled) == 1, settled
    return settled[0]


def test_cut_between_add_and_remove_is_finished_when_the_target_passes(frr: Rig) -> None:
    change_id = dies_at(frr, "after_add")
    assert frr.routers["r1"].hops(PREFIX) == {WEB1, WEB2}  # half the traffic on each host
    s = one(restarted(frr).reconcile())
    assert (s.outcome, s.before, s.services) == ("done", "applying", ("www-a",))
    assert "both the old and the new next hop" in s.text and "finished it" in s.text
    assert frr.routers["r1"].hops(PREFIX) == {WEB2}
    stored = frr.store.get_change(change_id)
    assert stored is not None and stored.status == "done"
    audit = frr.store.history(limit=1)[0]
    assert (audit.action, audit.result, audit.actor, audit.change_id) == ("reconcile", "done", "lasthop", change_id)
    assert "no ip route 198.51.100.32/27 192.0.2.2" in audit.transcript


@pytest.mark.parametrize("why", ["unhealthy", "no_vip"])
def test_cut_between_add_and_remove_is_undone_when_the_target_cannot_serve(frr: Rig, why: str) -> None:
    change_id = dies_at(frr, "after_add")
    if why == "unhealthy":
        frr.health.mark("www-a", "web2", Health.DOWN)
    else:
        frr.hosts["web2"].vips.discard(IPv4Address("198.51.100.33"))
    s = one(restarted(frr).reconcile())
    assert s.outcome == "rolled_back"
    assert ("fails its health check" if why == "unhealthy" else "lacks 198.51.100.33") in s.text
    assert "removed the new route" in s.text
    assert frr.routers["r1"].hops(PREFIX) == {WEB1}
    stored = frr.store.get_change(change_id)
    assert stored is not None and stored.status == "rolled_back"


@pytest.mark.parametrize("point", ["after_remove", "before_verify", "before_save"])
def test_dead_after_the_commit_is_recognised_as_finished(frr: Rig, point: str) -> None:
    dies_at(frr, point)
    assert frr.routers["r1"].hops(PREFIX) == {WEB2}
    s = one(restarted(frr).reconcile())
    assert (s.outcome, s.text) == ("done", "the router shows every new next hop: finished")


def test_dead_before_apply_never_took_effect(frr: Rig) -> None:
    dies_at(frr, "before_apply")
    s = one(restarted(frr).reconcile())
    assert s.outcome == "rolled_back" and "never took effect" in s.text
    assert frr.routers["r1"].commands == []  # nothing was ever sent


@pytest.mark.parametrize("kind", ["cisco_ios+revert", "arista_eos+revert"])
@pytest.mark.parametrize("target_ok", [True, False])
def test_a_commit_left_on_the_routers_revert_timer_is_kept_or_cancelled(tmp_path: Path, kind: str,
                                                                        target_ok: bool) -> None:
    rig = rig_for(tmp_path, kind)
    dies_at(rig, "before_verify")
    router = rig.routers["r1"]
    assert router.armed is not None and router.hops(PREFIX) == {WEB2}  # it would revert by itself later
    if not target_ok:
        rig.health.mark("www-a", "web2", Health.DOWN)
    s = one(restarted(rig).reconcile())
    assert "revert timer" in s.text
    assert s.outcome == ("done" if target_ok else "rolled_back")
    assert router.armed is None  # kept for good, or cancelled now: nothing undoes it later
    assert router.fire_revert_timer() is False
    assert router.hops(PREFIX) == ({WEB2} if target_ok else {WEB1})
    rig.close()


def test_a_router_no_change_explains_asks_a_person_once(frr: Rig) -> None:
    change_id = dies_at(frr, "after_add")
    frr.routers["r1"].table[PREFIX] = {WEB1, STRANGER}  # someone added a third host by hand
    engine = restarted(frr)
    s = one(engine.reconcile())
    assert s.outcome == "needs_human" and "which no lasthop change explains" in s.text and "192.0.2.9" in s.text
    assert frr.routers["r1"].hops(PREFIX) == {WEB1, STRANGER}  # nothing touched
    again = one(engine.reconcile())
    assert again.outcome == "open" and not again.news and "still needs a person" in again.text
    assert [a.action for a in frr.store.history(limit=3)].count("reconcile") == 1
    frr.routers["r1"].table[PREFIX] = {WEB2}  # the person put it right: the change reads as finished
    fixed = one(engine.reconcile())
    assert fixed.outcome == "done"
    stored = frr.store.get_change(change_id)
    assert stored is not None and stored.status == "done"


def test_a_change_whose_holder_is_at_work_is_left_alone(frr: Rig) -> None:
    dies_at(frr, "after_add")
    engine = restarted(frr)
    frr.store.acquire_lock("r1", holder="bob@other:1/abc", info="change by bob (slack)")
    s = one(engine.reconcile())
    assert s.outcome == "open" and "left to its holder" in s.text and "change by bob" in s.text
    assert frr.routers["r1"].hops(PREFIX) == {WEB1, WEB2}


def test_the_dead_processs_lock_is_taken_over_said_and_audited(frr: Rig) -> None:
    change_id = dies_at(frr, "after_add")
    engine = restarted(frr)
    # The lock the dead process still had (its TTL not yet run out), as it looks after it died.
    dead = frr.dead_lock("r1", holder="alice@edge9:4321/0badc0de", info="change by alice (cli)")
    s = one(engine.reconcile())
    took = (f"took over r1's lock from a holder that is gone: change by alice (cli) "
            f"(process {dead.process.rpartition(':')[2]} on {dead.process.rpartition(':')[0]}, "
            f"holding it since {dead.acquired_at:%H:%M:%S}Z)")
    assert s.outcome == "done" and s.text.endswith(f"; {took}") and "finished it" in s.text
    stored = frr.store.get_change(change_id)
    assert stored is not None and took not in stored.error  # the change's verdict is about the router
    lock_record, settled = frr.store.history(limit=2)[::-1]
    assert (lock_record.actor, lock_record.source, lock_record.action, lock_record.result) == (
        "lasthop", "reconcile", "lock", "taken_over")
    assert (lock_record.target, lock_record.detail, lock_record.change_id) == ("r1", took, change_id)
    assert settled.action == "reconcile" and settled.result == "done"
    assert frr.store.lock_info("r1") is None


def test_a_new_request_settles_the_half_done_change_first(frr: Rig) -> None:
    dies_at(frr, "after_add")
    engine = restarted(frr)
    req = MoveRequest(kind="service", target="www-a", actor="bob", source="slack", to_host="web1")
    plan = engine.plan(req)
    assert plan.notes and plan.notes[0].startswith("first settled change ") and "finished it" in plan.notes[0]
    assert [(m.from_host, m.to_host) for m in plan.moves] == [("web2", "web1")]


def test_two_next_hops_no_change_explains_are_refused_with_what_to_do(frr: Rig) -> None:
    frr.routers["r1"].table[PREFIX] = {WEB1, WEB2}  # by hand: no change record at all
    req = MoveRequest(kind="service", target="www-a", actor="bob", source="slack", to_host="web2")
    outcome = frr.engine.run(req)
    assert outcome.status == "refused"
    assert "which no lasthop change in flight explains" in outcome.lines[0]
    assert frr.store.history(limit=1)[0].result == "refused"  # audited, as every refusal is
