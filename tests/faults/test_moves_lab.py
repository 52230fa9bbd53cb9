"""Faults in the middle of a move, on the lab: a real FRR router over SSH, real web hosts.

Each case stops a move at a named fault point (bot.faults) and does something bad there: kills
lasthop with SIGKILL, cuts the router's management link, takes the VIP off the target, or runs a
second move from another process. No sleep is tuned to this machine's speed: the paused or
killed process is stopped at the point itself, and everything after it is polled with a bound.

Every case must end the same way: exactly one next hop for every service on the router, the
client served, every change ended (no change left in flight), each change's outcome audited,
and what lasthop said matches what the router shows. The ledger (conftest) counts the cases for
the README's reliability figures.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from faults.movekit import VIP_A, WEB1, WEB2, A, engine_for, r1_hops, readable_hops, settle_and_check, www_a
from support.labtools import ROOT, inventory_copy, lasthop, wait_for
from support.ledger import Ledger, tracebacks

from bot import faults
from bot.inventory import Inventory
from lab import Lab, netns

pytestmark = pytest.mark.lab
LEDGER_GROUP = "moves on the lab"


# -- SIGKILL at each fault point, then restart ------------------------------------------------------

@pytest.mark.parametrize("point", faults.POINTS)
def test_lasthop_killed_at_each_point_is_settled_after_restart(lab: Lab, lab_inv: Inventory, tmp_path: Path,
                                                               web1_down: None, point: str, ledger: Ledger) -> None:
    config = str(inventory_copy(lab, lab_inv, tmp_path))
    killed = lasthop("failover", "www-a", "--to", "web2", "--yes", "--config", config,
                     env={faults.ENV: f"{point}=kill"})
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert "Traceback" not in killed.stderr
    restarted = lasthop("reconcile", "--config", config)  # a new process: its lock and state are the dead one's
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert "reconciled: change " in restarted.stdout and "Traceback" not in restarted.stderr
    again = lasthop("failover", "www-a", "--to", "web2", "--yes", "--config", config)  # the on-call retries
    assert again.returncode == 0, again.stdout + again.stderr
    problems = settle_and_check(lab, lab_inv, "web2")
    said = [p.stdout + p.stderr for p in (killed, restarted, again)]
    ledger.record(f"sigkill@{point}", consistent=not problems, reported=True, tracebacks=tracebacks(*said))
    assert problems == []


# -- the management link cut at each fault point ---------------------------------------------------

@pytest.mark.parametrize("point", faults.POINTS)
def test_the_routers_link_cut_at_each_point_ends_truthfully_and_is_settled(
        lab: Lab, lab_inv: Inventory, web1_down: None, point: str, ledger: Ledger) -> None:
    r1 = lab.plan.device("r1").namespace

    def cut(_: str) -> None:
        netns.set_link(r1, "mgmt0", up=False)

    engine = engine_for(lab_inv)
    try:
        plan = engine.plan(www_a())
        start = time.monotonic()
        with faults.armed(point, cut):
            outcome = engine.execute(plan)
        took = time.monotonic() - start
    finally:
        netns.set_link(r1, "mgmt0", up=True)
        engine.close()
    assert outcome.status in ("done", "rolled_back", "needs_human", "refused"), outcome.lines
    assert not any("Traceback" in line for line in outcome.lines)
    # What it said is what the router shows once it can be read again.
    hops = wait_for(lambda: readable_hops(lab_inv), 60, "r1 to answer again")
    truthful = {"done": hops == {WEB2}, "rolled_back": hops == {WEB1}, "refused": hops == {WEB1},
                "needs_human": True}[outcome.status]
    change = engine.store.get_change(outcome.change_id or "") if outcome.change_id else None
    if outcome.status == "needs_human":
        truthful = change is not None and change.status == "needs_human"
    settled = engine_for(lab_inv)
    try:
        settled.reconcile()
        retry = settled.run(www_a())
    finally:
        settled.close()
    assert retry.status in ("done", "noop"), retry.lines
    problems = settle_and_check(lab, lab_inv, "web2")
    ledger.record(f"link-cut@{point}", consistent=not problems, reported=truthful,
                  tracebacks=tracebacks(*outcome.lines, *retry.lines), seconds=round(took, 1))
    assert truthful, (outcome.status, outcome.lines, hops)
    assert problems == []


# -- the target loses its VIP during the move ---------------------------------------------------------

def test_a_target_that_loses_its_vip_mid_move_is_rolled_back(lab: Lab, lab_inv: Inventory, lab_home: None,
                                                            ledger: Ledger) -> None:
    web2 = lab.plan.host("web2").namespace

    def lose_vip(_: str) -> None:
        subprocess.run(["ip", "netns", "exec", web2, "ip", "addr", "del", f"{VIP_A}/32", "dev", "lo"],
                       check=True, timeout=10, capture_output=True)

    engine = engine_for(lab_inv)
    try:
        plan = engine.plan(www_a())  # web1 is healthy: a risky move, run as the CLI's --accept-risk would
        with faults.armed("after_add", lose_vip):
            outcome = engine.execute(plan, allow_risky=True)
    finally:
        lab.heal("web2")
        engine.close()
        lab.up()  # puts the VIP back on web2's loopback
    assert outcome.status == "rolled_back", outcome.lines
    assert any("does not answer" in line for line in outcome.lines), outcome.lines
    problems = settle_and_check(lab, lab_inv, "web1")
    ledger.record("vip-lost@after_add", consistent=not problems, reported=outcome.status == "rolled_back")
    assert problems == []


# -- two moves at once, from two processes --------------------------------------------------------------

def test_two_moves_from_two_processes_run_one(lab: Lab, lab_inv: Inventory, tmp_path: Path, web1_down: None,
                                              ledger: Ledger) -> None:
    config = str(inventory_copy(lab, lab_inv, tmp_path))
    go = tmp_path / "go"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "LASTHOP_"))}
    env |= {faults.ENV: "before_verify=pause", faults.GO_ENV: str(go)}
    first = subprocess.Popen([sys.executable, "-m", "bot.cli", "failover", "www-a", "--to", "web2", "--yes",
                              "--config", config], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert first.stderr is not None
        line = first.stderr.readline()  # blocks until the first process is inside its change
        assert line.strip() == "fault-point before_verify", line
        second = lasthop("failover", "www-a", "--to", "web3", "--yes", "--config", config)
    finally:
        go.touch()
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    assert second.returncode == 1, second.stdout + second.stderr
    assert "is busy" in second.stdout + second.stderr
    problems = settle_and_check(lab, lab_inv, "web2")
    ledger.record("two-processes", consistent=not problems, reported=True,
                  tracebacks=tracebacks(out, err, second.stdout, second.stderr))
    assert problems == []


# -- a route changed by hand between the plan and the change -----------------------------------------

def test_a_route_changed_by_hand_after_the_plan_stops_the_move(lab: Lab, lab_inv: Inventory, lab_home: None,
                                                               ledger: Ledger) -> None:
    engine = engine_for(lab_inv)
    try:
        plan = engine.plan(www_a("web2"))
        r1 = lab.plan.device("r1").namespace
        subprocess.run(["ip", "netns", "exec", r1, "vtysh", "-N", lab.plan.frr_pathspace, "-c", "configure terminal",
                        "-c", f"ip route {A} 198.51.100.4", "-c", f"no ip route {A} {WEB1}"],
                       check=True, timeout=20, capture_output=True)
        wait_for(lambda: r1_hops(lab_inv) == {IPv4Address("198.51.100.4")}, 20, "the hand-made route")
        outcome = engine.execute(plan, allow_risky=True)
    finally:
        engine.close()
    assert outcome.status == "refused", outcome.lines
    assert "changed since the plan" in outcome.lines[0] and outcome.change_id is None
    problems = settle_and_check(lab, lab_inv, "web3")
    ledger.record("hand-change", consistent=not problems, reported=True)
    assert problems == []
