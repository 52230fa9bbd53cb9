"""The move path through each router kind's real rendering, over memory routers: no root, no network.

What the plan shows is what the router gets, line for line; a commit armed on the router's own
revert timer is confirmed after verification, or cancelled on the router when the change is rolled
back, so the timer can never undo the rollback later. The lab tests prove the FRR path for real.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fakes import inventory_from_text
from support.memory import Rig, memory_rig

from bot.engine.model import MoveRequest

INVENTORY = """
defaults: {{username: ops, key_file: /k, known_hosts: /kh}}
routers:
  r1: {{driver: {driver}, address: 198.18.7.11, lan: [192.0.2.0/27]{extra}}}
hosts:
  web1: {{address: 192.0.2.2}}
  web2: {{address: 192.0.2.3}}
services:
  www-a: {{prefix: 198.51.100.32/27, router: r1, hosts: [web1, web2], vips: [198.51.100.33]}}
"""
KINDS = {
    "frr": ("frr", ""),
    "cisco_ios": ("cisco_ios", ""),
    "cisco_ios+revert": ("cisco_ios", ", revert_timer: 5m"),
    "linux": ("linux", ", save_config: false"),
}


@pytest.fixture(params=list(KINDS))
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    driver, extra = KINDS[request.param]
    inv = inventory_from_text(tmp_path, INVENTORY.format(driver=driver, extra=extra))
    r = memory_rig(inv, tmp_path, {"www-a": "web1"})
    yield r
    r.close()


def ios_revert(tmp_path: Path) -> Rig:
    driver, extra = KINDS["cisco_ios+revert"]
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
