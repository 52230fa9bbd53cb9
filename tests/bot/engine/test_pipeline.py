"""The move path through each router kind's real rendering, over memory routers: no root, no network.

What the plan shows is what the router gets, line for line; a commit armed on the router's own
revert timer is confirmed after verification, or cancelled on the router when the change is rolled
back, so the timer can never undo the rollback later. The lab tests prove the FRR path for real.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from support.fakes import inventory_from_text
from support.memory import INVENTORY, KINDS, Rig, memory_rig

from bot import faults
from bot.drivers.base import RouteMove
from bot.engine.model import MoveRequest, move_kind


@pytest.fixture(params=list(KINDS))
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    driver, extra = KINDS[request.param]
    inv = inventory_from_text(tmp_path, INVENTORY.format(driver=driver, extra=extra))
    r = memory_rig(inv, tmp_path, {"www-a": "web1"})
    yield r
    r.close()


def ios_revert(tmp_path: Path) -> Rig:
    return revert_rig(tmp_path, "cisco_ios+revert")


def revert_rig(tmp_path: Path, kind: str) -> Rig:
    driver, extra = KINDS[kind]
    return memory_rig(inventory_from_text(tmp_path, INVENTORY.format(driver=driver, extra=extra)), tmp_path,
                      {"www-a": "web1"})


def move(rig: Rig, to: str = "web2") -> MoveRequest:
    return MoveRequest(kind="service", target="www-a", actor="alice", source="cli", to_host=to)


def test_the_router_gets_exactly_the_lines_the_plan_shows(rig: Rig) -> None:
    plan = rig.engine.plan(move(rig))
    outcome = rig.engine.execute(plan, allow_risky=True)
    assert outcome.status == "done", outcome.lines
    assert rig.routers["r1"].commands == plan.commands["r1"]
    assert rig.serving("www-a") == {"web2"}


def test_the_ios_plan_shows_the_revert_timer_its_confirmation_and_the_save(tmp_path: Path) -> None:
    rig = ios_revert(tmp_path)
    plan = rig.engine.plan(move(rig))
    assert plan.commands["r1"] == [
        "configure terminal revert timer 5", "ip route 198.51.100.32 255.255.255.224 192.0.2.3", "end",
        "configure terminal", "no ip route 198.51.100.32 255.255.255.224 192.0.2.2", "end",
        "configure confirm",
        "write memory",
    ]
    assert rig.engine.execute(plan, allow_risky=True).status == "done"
    router = rig.routers["r1"]
    assert router.armed is None and not router.fire_revert_timer()  # confirmed: nothing left to undo
    assert rig.serving("www-a") == {"web2"}
    rig.close()


def test_a_failed_verification_cancels_the_routers_revert_timer_so_nothing_reverts_later(tmp_path: Path) -> None:
    rig = ios_revert(tmp_path)
    router = rig.routers["r1"]
    router.fail_next("verify")  # the router takes the lines, the FIB never shows the new next hop
    outcome = rig.engine.execute(rig.engine.plan(move(rig)), allow_risky=True)
    assert outcome.status == "rolled_back", outcome.lines
    assert "configure revert now" in router.commands and "configure confirm" not in router.commands
    assert router.armed is None
    assert rig.serving("www-a") == {"web1"}
    # The timer's minutes pass: the router has nothing pending to undo, so the rollback holds.
    assert not router.fire_revert_timer()
    assert rig.serving("www-a") == {"web1"} and router.accepted == set()
    rig.close()


def test_the_junos_plan_keeps_the_whole_change_under_commit_confirmed_until_verified(tmp_path: Path) -> None:
    rig = revert_rig(tmp_path, "juniper_junos+revert")
    plan = rig.engine.plan(move(rig))
    assert plan.commands["r1"] == [
        "configure exclusive", "set routing-options static route 198.51.100.32/27 next-hop 192.0.2.3",
        "commit confirmed 5", "exit configuration-mode",
        "configure exclusive", "delete routing-options static route 198.51.100.32/27 next-hop 192.0.2.2",
        "commit confirmed 5", "exit configuration-mode",
        "configure exclusive", "commit", "exit configuration-mode",  # confirms; nothing to save on Junos
    ]
    assert rig.engine.execute(plan, allow_risky=True).status == "done"
    router = rig.routers["r1"]
    assert router.armed is None and not router.fire_revert_timer()
    assert rig.serving("www-a") == {"web2"} and router.saves_done == 0
    rig.close()


def test_the_eos_plan_puts_the_timer_on_the_session_that_finishes_the_change(tmp_path: Path) -> None:
    rig = revert_rig(tmp_path, "arista_eos+revert")
    plan = rig.engine.plan(move(rig))
    assert plan.commands["r1"] == [
        "configure session lasthop-add", "ip route 198.51.100.32/27 192.0.2.3", "commit",
        "configure session lasthop-change", "no ip route 198.51.100.32/27 192.0.2.2", "commit timer 00:05:00",
        "configure session lasthop-change commit",
        "write memory",
    ]
    assert rig.engine.execute(plan, allow_risky=True).status == "done"
    router = rig.routers["r1"]
    assert router.armed is None and not router.fire_revert_timer()
    assert rig.serving("www-a") == {"web2"} and router.saves_done == 1
    rig.close()


def test_a_failed_junos_verification_cancels_the_commit_confirmed_so_nothing_reverts_later(tmp_path: Path) -> None:
    rig = revert_rig(tmp_path, "juniper_junos+revert")
    router = rig.routers["r1"]
    router.fail_next("verify")  # committed, armed, and the new next hop never shows
    outcome = rig.engine.execute(rig.engine.plan(move(rig)), allow_risky=True)
    assert outcome.status == "rolled_back", outcome.lines
    cancel = ["configure exclusive", "rollback 1", "commit", "exit configuration-mode"]
    at = router.commands.index("rollback 1") - 1
    assert router.commands[at:at + 4] == cancel
    assert not any(c.startswith("delete ") for c in router.commands)  # the old next hop was never removed
    assert router.armed is None
    assert rig.serving("www-a") == {"web1"}
    assert not router.fire_revert_timer()
    assert rig.serving("www-a") == {"web1"} and router.accepted == set()
    rig.close()


def test_a_failed_eos_verification_aborts_the_timer_session_so_nothing_reverts_later(tmp_path: Path) -> None:
    rig = revert_rig(tmp_path, "arista_eos+revert")
    router = rig.routers["r1"]
    router.fail_next("settle")  # every line taken, the timer armed, the old next hop stuck in the FIB
    outcome = rig.engine.execute(rig.engine.plan(move(rig)), allow_risky=True)
    assert outcome.status == "rolled_back", outcome.lines
    assert "configure session lasthop-change abort" in router.commands
    assert "configure session lasthop-change commit" not in router.commands
    assert router.armed is None
    assert rig.serving("www-a") == {"web1"}
    assert not router.fire_revert_timer()
    assert rig.serving("www-a") == {"web1"} and router.accepted == set()
    rig.close()


def test_a_router_that_differs_from_what_the_plan_assumed_is_refused_before_anything_is_sent(rig: Rig) -> None:
    plan = rig.engine.plan(move(rig))
    # The new route is configured already (a floating static someone left), though not in the FIB.
    router = rig.routers["r1"]
    router.accepted.add((plan.moves[0].prefix, plan.moves[0].to_hop))
    outcome = rig.engine.execute(plan, allow_risky=True)
    assert outcome.status == "refused"
    assert any("configuration is not what the plan assumed" in line for line in outcome.lines)
    assert router.commands == [] and router.applies == 0
    assert rig.store.recent_changes() == []


def test_a_dry_run_sends_nothing_and_leaves_no_candidate(rig: Rig) -> None:
    req = MoveRequest(kind="service", target="www-a", actor="alice", source="cli", to_host="web2", dry_run=True)
    outcome = rig.engine.execute(rig.engine.plan(req), allow_risky=True)
    assert outcome.status == "dry-run"
    router = rig.routers["r1"]
    assert router.commands == [] and router.compare() == []


def test_a_change_that_lost_its_router_lock_is_left_for_a_person_not_rolled_back(tmp_path: Path) -> None:
    driver, extra = KINDS["frr"]
    rig = memory_rig(inventory_from_text(tmp_path, INVENTORY.format(driver=driver, extra=extra)), tmp_path,
                     {"www-a": "web1"})

    def taken_over(point: str) -> None:
        # What a stalled change sees when its lock expired and another process took the router.
        mine = rig.store.lock_info("r1")
        assert mine is not None
        rig.store.release_lock("r1", holder=mine.holder)
        rig.store.acquire_lock("r1", holder="other-process", info="change by bob (slack)")

    with faults.armed("before_verify", taken_over):
        outcome = rig.engine.execute(rig.engine.plan(move(rig)), allow_risky=True)
    assert outcome.status == "needs_human"
    assert any("lost the router's lock" in line for line in outcome.lines)
    router = rig.routers["r1"]
    assert router.applies == 1  # the commit; no rollback over the other process's change
    change = rig.store.get_change(outcome.change_id or "")
    assert change is not None and change.status == "needs_human"
    lock = rig.store.lock_info("r1")
    assert lock is not None and lock.holder == "other-process"  # ours was never released over theirs
    rig.close()


def test_a_move_over_a_dead_holders_lock_tells_the_person_and_the_audit_trail(tmp_path: Path) -> None:
    rig = revert_rig(tmp_path, "frr")
    dead = rig.dead_lock("r1", holder="bob@edge9:4321/0badc0de", info="change by bob (slack)")
    outcome = rig.engine.execute(rig.engine.plan(move(rig)), allow_risky=True)
    assert outcome.status == "done" and rig.serving("www-a") == {"web2"}
    node, _, pid = dead.process.rpartition(":")
    assert outcome.lines[0] == (f"took over r1's lock from a holder that is gone: change by bob (slack) "
                                f"(process {pid} on {node}, holding it since {dead.acquired_at:%H:%M:%S}Z)")
    assert outcome.lines[1] == "www-a: web1 -> web2, verified in the FIB"
    actions = [(r.action, r.result, r.target) for r in reversed(rig.store.history())]
    assert actions == [("lock", "taken_over", "r1"), ("move", "done", "www-a")]
    assert rig.store.lock_info("r1") is None  # given back at the end, like any lock of ours
    rig.close()


def test_reconcile_reads_the_same_typed_moves_and_settles_once(tmp_path: Path) -> None:
    driver, extra = KINDS["frr"]
    rig = memory_rig(inventory_from_text(tmp_path, INVENTORY.format(driver=driver, extra=extra)), tmp_path,
                     {"www-a": "web2"})  # the router already shows the new next hop: the commit had landed
    record = RouteMove(IPv4Network("198.51.100.32/27"), IPv4Address("192.0.2.2"), IPv4Address("192.0.2.3"))
    finished = rig.store.create_change(router="r1", moves=[record.to_record()], requested_by="alice", source="cli")
    rig.store.set_change_status(finished.id, "applying")
    damaged = rig.store.create_change(router="r1", moves=[{"prefix": "198.51.100.32/27", "new": "web2"}],
                                      requested_by="alice", source="cli")
    rig.store.set_change_status(damaged.id, "applying")
    notes = [str(s) for s in rig.engine.reconcile()]
    assert any(finished.id[:8] in n and "finished" in n for n in notes)
    assert any(damaged.id[:8] in n and "damaged move record" in n and "left open" in n for n in notes)
    done = rig.store.get_change(finished.id)
    assert done is not None and done.status == "done"
    again = [str(s) for s in rig.engine.reconcile()]
    assert again == [f"change {damaged.id[:8]} on r1: " + notes[-1].split(": ", 1)[1]]
    rig.close()


@pytest.mark.parametrize(("source", "approved_by", "kind"), [
    ("cli", None, "manual"), ("slack", None, "manual"), ("slack", "slack:U0BOB", "approved"),
    ("auto", None, "automatic"), ("auto", "slack:U0BOB", "automatic"),
])
def test_a_moves_kind_has_one_rule(source: str, approved_by: str | None, kind: str) -> None:
    req = MoveRequest(kind="service", target="www-a", actor="alice", source=source)
    assert move_kind(req, approved_by) == kind


# ---------------------------------------------------------------- pre-check of several targets

def _drain_rig(tmp_path: Path) -> Rig:
    from support.lan import THREE_HOSTS

    return memory_rig(inventory_from_text(tmp_path, THREE_HOSTS), tmp_path,
                      {"www-a": "web1", "www-b": "web2", "www-d": "web1"})


def test_a_drain_reads_each_target_hosts_loopback_once_for_all_its_vips(tmp_path: Path) -> None:
    """Issue 12's drain benchmark: one SSH loopback read per move made a drain of 30 take seconds."""
    rig = _drain_rig(tmp_path)
    drain = MoveRequest(kind="host", target="web1", actor="alice", source="cli", to_host="web2")
    outcome = rig.engine.run(drain, allow_risky=True)
    assert outcome.status == "done", outcome.lines
    assert rig.serving("www-a") == rig.serving("www-d") == {"web2"}
    assert rig.hosts["web2"].checks == 1  # both VIPs, live, in one read
    rig.close()


def test_a_drain_whose_target_lacks_one_services_vip_names_that_service_and_changes_nothing(tmp_path: Path) -> None:
    rig = _drain_rig(tmp_path)
    rig.hosts["web2"].vips.discard(IPv4Address("198.51.100.97"))  # www-d's VIP
    drain = MoveRequest(kind="host", target="web1", actor="alice", source="cli", to_host="web2")
    outcome = rig.engine.run(drain, allow_risky=True)
    assert outcome.status == "refused", outcome.lines
    assert any("web2 lacks 198.51.100.97 on its loopback: it cannot serve www-d" in line for line in outcome.lines)
    assert rig.serving("www-a") == rig.serving("www-d") == {"web1"} and rig.routers["r1"].applies == 0
    rig.close()


def test_when_the_router_changed_and_the_target_is_not_ready_the_router_is_told_first(tmp_path: Path) -> None:
    """The targets are read while the router is; which refusal is told does not depend on which ends first."""
    rig = _drain_rig(tmp_path)
    plan = rig.engine.plan(MoveRequest(kind="service", target="www-a", actor="alice", source="cli", to_host="web2"))
    rig.hosts["web2"].vips.discard(IPv4Address("198.51.100.33"))
    rig.route("www-a", "web3")  # by hand, after the plan
    outcome = rig.engine.execute(plan, allow_risky=True)
    assert outcome.status == "refused" and rig.routers["r1"].applies == 0
    assert any("changed since the plan" in line for line in outcome.lines), outcome.lines
    assert not any("lacks" in line for line in outcome.lines)
    assert rig.hosts["web2"].checks == 1  # read all the same, live, beside the router
    rig.close()
