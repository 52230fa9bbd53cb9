"""A router that misbehaves, on the lab: slow, silent, refusing a line, or out of reach.

lasthop reaches r1 from the root namespace, over the lab's management network. For the slow and
silent cases a TCP proxy (support.tcp_proxy), in this process on the root namespace's management
address, stands between lasthop and r1's sshd, and a copy of the inventory points r1 at it. The
proxy turns slow or silent at a named fault point (bot.faults), so nothing depends on how fast
this machine is. The refused line is r1's own: FRR restarted with an ECMP limit of one refuses
the second next hop of every make-before-break change. staticd killed at a fault point shows
vtysh's other way of refusing (`staticd is not running`, no `%`) and a save that must not happen.

Every case ends as the moves' cases do (faults.movekit.settle_and_check) and records a ledger row.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from faults.movekit import WEB1, WEB2, engine_for, r1_hops, readable_hops, settle_and_check, www_a
from support.labtools import inventory_copy, lasthop, wait_for
from support.ledger import Ledger, tracebacks
from support.tcp_proxy import TcpProxy

from bot import faults
from bot.chat import Actor
from bot.commands import FailoverCommand
from bot.config import load_inventory
from bot.engine.model import Outcome
from bot.inventory import Inventory
from bot.state import StateStore
from bot.workflow import Workflow
from lab import Lab, frr, netns

pytestmark = pytest.mark.lab
LEDGER_GROUP = "router faults on the lab"

ECMP_REFUSAL = "Route cannot have more than 1 ECMP nexthops"


@dataclass
class Proxied:
    """r1 behind a proxy: the proxy, the inventory that goes through it and its file (for the CLI)."""

    proxy: TcpProxy
    inv: Inventory
    config: Path


@contextmanager
def proxied_r1(lab: Lab, lab_inv: Inventory, tmp_path: Path, *, command_timeout: float,
               connect_timeout: float) -> Iterator[Proxied]:
    """r1 reached through a TcpProxy on the root namespace's management address, with these limits.

    The known_hosts copy gives r1's own host key to the proxy's address, as `[address]:port`
    (how OpenSSH and paramiko name a host on another port): the proxy forwards, it does not
    terminate SSH, so the key lasthop sees is still r1's.
    """
    r1 = lab.plan.device("r1")
    proxy = TcpProxy((str(r1.address), 22), (str(lab.plan.root_mgmt.ip), 0)).start()
    try:
        host, port = proxy.address
        known = lab.known_hosts.read_text()
        key = next(line.split(None, 1)[1] for line in known.splitlines() if line.split()[:1] == [str(r1.address)])
        config = inventory_copy(lab, lab_inv, tmp_path, known_hosts=f"{known.rstrip()}\n[{host}]:{port} {key}\n")
        text = config.read_text()
        entry = f"driver: frr, address: {r1.address},"
        assert text.count(entry) == 1, text
        config.write_text(text.replace(entry, f"driver: frr, address: {host}, port: {port}, "
                                              f"command_timeout: {command_timeout:g}s, "
                                              f"connect_timeout: {connect_timeout:g}s,"))
        yield Proxied(proxy, load_inventory(config), config)
    finally:
        proxy.stop()


def lines_of(outcome: Outcome) -> str:
    return "\n".join(outcome.lines)


def final_status(inv: Inventory, change_id: str | None) -> str | None:
    store = StateStore(inv.state_url)
    try:
        change = store.get_change(change_id) if change_id else None
        return change.status if change else None
    finally:
        store.close()


# -- 1a. slow, but within the command time-out ---------------------------------------------------

def test_a_slow_router_within_the_command_timeout_still_takes_the_move(
        lab: Lab, lab_inv: Inventory, tmp_path: Path, web1_down: None, ledger: Ledger) -> None:
    # Each chunk waits 0.2 s each way; one exchange is a few chunks, far below the 5 s limit.
    with proxied_r1(lab, lab_inv, tmp_path, command_timeout=5, connect_timeout=30) as r1:
        r1.proxy.set_delay(0.2)
        engine = engine_for(r1.inv)
        start = time.monotonic()
        try:
            outcome = engine.run(www_a())
        finally:
            engine.close()
        took = time.monotonic() - start
        assert r1.proxy.connections >= 1  # the move really went through the proxy
    text = lines_of(outcome)
    assert outcome.status == "done", text
    assert r1_hops(lab_inv) == {WEB2}
    problems = settle_and_check(lab, lab_inv, "web2")
    ledger.record("slow-router@0.2s", consistent=not problems, reported=outcome.status == "done",
                  tracebacks=tracebacks(text), seconds=took)
    assert problems == []


# -- 1b. slower than the command time-out, from the middle of a move --------------------------------

def test_a_router_slower_than_the_command_timeout_mid_move_ends_with_the_true_reason(
        lab: Lab, lab_inv: Inventory, tmp_path: Path, web1_down: None, ledger: Ledger) -> None:
    with proxied_r1(lab, lab_inv, tmp_path, command_timeout=2, connect_timeout=4) as r1:
        engine = engine_for(r1.inv)
        start = time.monotonic()
        try:
            # Both next hops are live here; every reply from now on takes 3 s, beyond the 2 s limit.
            with faults.armed("after_add", lambda _: r1.proxy.set_delay(3.0)):
                outcome = engine.run(www_a())
        finally:
            engine.close()
        took = time.monotonic() - start
        r1.proxy.set_delay(0.0)  # healed: the router answers at once again
        text = lines_of(outcome)
        assert outcome.status in ("rolled_back", "needs_human"), text
        assert "no answer within 2s" in text, text  # the limit that really applied, by its value
        settled = lasthop("reconcile", "--config", str(r1.config))
    out = settled.stdout + settled.stderr
    assert settled.returncode == 0, out
    status = final_status(lab_inv, outcome.change_id)
    if outcome.status == "needs_human":
        assert "reconciled: change " in settled.stdout, out
    assert status in ("done", "rolled_back"), (status, out)
    # web2 passes its pre-check, so a half-done change is finished; one undone leaves web1 (down).
    want = {"done": WEB2, "rolled_back": WEB1}[status]
    assert wait_for(lambda: readable_hops(lab_inv), 30, "r1 to answer") == {want}
    again = engine_for(lab_inv)
    try:
        retry = again.run(www_a())  # the on-call retries once the router is well
    finally:
        again.close()
    assert retry.status in ("done", "noop"), retry.lines
    problems = settle_and_check(lab, lab_inv, "web2")
    ledger.record("slow-router@after_add", consistent=not problems, reported="no answer within 2s" in text,
                  tracebacks=tracebacks(text, out), seconds=took)
    assert tracebacks(text, out) == 0
    assert problems == []


# -- 2. silent from a fault point on --------------------------------------------------------------

@pytest.mark.parametrize("point", ["before_apply", "after_add", "before_verify"])
def test_a_router_that_goes_silent_mid_move_is_cut_off_and_settled_after_heal(
        lab: Lab, lab_inv: Inventory, tmp_path: Path, web1_down: None, point: str, ledger: Ledger) -> None:
    with proxied_r1(lab, lab_inv, tmp_path, command_timeout=2, connect_timeout=3) as r1:
        engine = engine_for(r1.inv)
        start = time.monotonic()
        try:
            # TCP stays up and nothing more is passed on: no reset, no close, only silence.
            with faults.armed(point, lambda _: r1.proxy.stall()):
                outcome = engine.run(www_a())
        finally:
            engine.close()
        took = time.monotonic() - start
        assert r1.proxy.stalled
        r1.proxy.resume()
    text = lines_of(outcome)
    assert outcome.status in ("rolled_back", "needs_human"), text
    assert "no answer within 2s" in text, text
    assert tracebacks(text) == 0
    settler = engine_for(lab_inv)  # the next start (or the serve daemon's schedule) settles it
    try:
        settled = settler.reconcile()
        status = final_status(lab_inv, outcome.change_id)
        retry = settler.run(www_a())
    finally:
        settler.close()
    assert status in ("done", "rolled_back", "failed"), (status, [str(s) for s in settled])
    assert retry.status in ("done", "noop"), retry.lines
    problems = settle_and_check(lab, lab_inv, "web2")
    ledger.record(f"silent-router@{point}", consistent=not problems, reported="no answer within 2s" in text,
                  tracebacks=tracebacks(text), seconds=took)
    assert problems == []


# -- 3. a line the router refuses -----------------------------------------------------------------

@pytest.fixture
def ecmp_one(lab: Lab, lab_home: None) -> Iterator[None]:
    """r1's FRR restarted allowing one next hop per route: it refuses make-before-break's second one."""
    lab.restart_router(ecmp=1)
    try:
        yield
    finally:
        lab.restart_router()


def test_a_route_line_the_router_refuses_rolls_back_naming_the_refusal(
        lab: Lab, lab_inv: Inventory, ecmp_one: None, ledger: Ledger) -> None:
    engine = engine_for(lab_inv)
    try:
        before = engine.devices.router("r1").configured()
        plan = engine.plan(www_a())  # web1 is healthy: a risky move, run as the CLI's --accept-risk would
        start = time.monotonic()
        outcome = engine.execute(plan, allow_risky=True)
        took = time.monotonic() - start
        after = engine.devices.router("r1").configured()
        audit = [a for a in engine.store.history(50) if a.change_id == outcome.change_id]
    finally:
        engine.close()
    text = lines_of(outcome)
    assert outcome.status == "rolled_back", text
    assert "rejected 'ip route 198.51.100.32/27 198.51.100.3'" in text and ECMP_REFUSAL in text, text
    assert after == before  # nothing of the change is left configured
    assert r1_hops(lab_inv) == {WEB1}
    assert [a.result for a in audit] == ["rolled_back"] and ECMP_REFUSAL in audit[0].detail, audit
    problems = settle_and_check(lab, lab_inv, "web1")
    ledger.record("refused-line@ecmp1", consistent=not problems, reported=ECMP_REFUSAL in text,
                  tracebacks=tracebacks(text), seconds=took)
    assert problems == []


# -- 4. unreachable at planning time: refused, and audited (issue bug 8) --------------------------

@pytest.fixture
def r1_cut(lab: Lab, lab_inv: Inventory, lab_home: None) -> Iterator[None]:
    """r1's management link down: r1 cannot be read, so nothing can be planned on it."""
    netns.set_link(lab.plan.device("r1").namespace, "mgmt0", up=False)
    try:
        yield
    finally:
        r1_hops_when_back(lab, lab_inv)


def unreachable(lab: Lab) -> re.Pattern[str]:
    """How lasthop says r1 is out of reach: no ARP answer yet (a silence), or the kernel already knows."""
    where = re.escape(f"{lab.plan.device('r1').address}:22")
    return re.compile(rf"r1: (no answer from {where} within 5s|cannot reach {where}: No route to host)")


def plan_refusals(inv: Inventory, source: str) -> list[str]:
    store = StateStore(inv.state_url)
    try:
        return [a.detail for a in store.history(50)
                if a.action == "plan" and a.result == "refused" and a.source == source and a.target == "www-a"]
    finally:
        store.close()


def test_a_failover_from_the_cli_with_the_router_unreachable_is_refused_and_audited(
        lab: Lab, lab_inv: Inventory, tmp_path: Path, web1_down: None, r1_cut: None, ledger: Ledger) -> None:
    config = str(inventory_copy(lab, lab_inv, tmp_path))
    start = time.monotonic()
    refused = lasthop("failover", "www-a", "--to", "web2", "--yes", "--config", config)
    took = time.monotonic() - start
    out = refused.stdout + refused.stderr
    assert refused.returncode == 1, out
    assert "Refused" in out and unreachable(lab).search(out), out
    assert tracebacks(out) == 0
    audited = plan_refusals(lab_inv, "cli")
    assert len(audited) == 1 and unreachable(lab).search(audited[0]), audited
    history = lasthop("history", "--config", config)
    assert "plan www-a: REFUSED" in history.stdout and unreachable(lab).search(history.stdout), history.stdout
    ledger.record("unreachable-at-plan@cli", consistent=r1_hops_when_back(lab, lab_inv) == {WEB1},
                  reported=len(audited) == 1, tracebacks=tracebacks(out), seconds=took)


def test_a_failover_from_chat_with_the_router_unreachable_is_refused_and_audited(
        lab: Lab, lab_inv: Inventory, web1_down: None, r1_cut: None, ledger: Ledger) -> None:
    engine = engine_for(lab_inv)
    workflow = Workflow(lab_inv, engine, engine.store)
    start = time.monotonic()
    try:
        answer = workflow.request(Actor("alice", "console", "console"), FailoverCommand("www-a", "web2"))
    finally:
        engine.close()
    took = time.monotonic() - start
    said = answer.message.fallback
    assert not answer.ok and answer.offer is None, said
    assert "Refused" in said and unreachable(lab).search(said), said
    assert tracebacks(said) == 0
    audited = plan_refusals(lab_inv, "console")
    assert len(audited) == 1 and unreachable(lab).search(audited[0]), audited
    ledger.record("unreachable-at-plan@chat", consistent=r1_hops_when_back(lab, lab_inv) == {WEB1},
                  reported=len(audited) == 1, tracebacks=tracebacks(said), seconds=took)


def r1_hops_when_back(lab: Lab, inv: Inventory) -> set[IPv4Address]:
    """r1's next hops for www-a once its link is up again: a refusal must have changed nothing."""
    r1 = lab.plan.device("r1").namespace
    netns.set_link(r1, "mgmt0", up=True)
    return set(wait_for(lambda: readable_hops(inv), 60, "r1 to answer again"))


# -- 5. staticd crashes in the middle of a move ---------------------------------------------------

def crash_staticd(lab: Lab) -> None:
    """SIGKILL r1's staticd and wait (bounded) until it is gone: zebra then drops its routes."""
    pid = frr.running(lab.plan)["staticd"]
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: frr.running(lab.plan)["staticd"] is None, 10, "staticd to be gone")


@dataclass
class Crashed:
    """A move during which staticd crashed: what lasthop said, and r1's saved configuration
    before the move and right after it (before FRR was restarted to heal it)."""

    outcome: Outcome
    seconds: float
    saved_before: str
    saved_after: str


def move_with_staticd_crashed_at(lab: Lab, inv: Inventory, point: str) -> Crashed:
    saved = frr.config_file(lab.plan)
    before = saved.read_text()
    engine = engine_for(inv)
    try:
        plan = engine.plan(www_a())  # web1 is healthy: a risky move, run as the CLI's --accept-risk would
        start = time.monotonic()
        try:
            with faults.armed(point, lambda _: crash_staticd(lab)):
                outcome = engine.execute(plan, allow_risky=True)
            after = saved.read_text()
        finally:
            lab.restart_router()  # healed: FRR as the lab made it, every service on its initial host
        return Crashed(outcome, time.monotonic() - start, before, after)
    finally:
        engine.close()


def test_a_route_line_dropped_because_staticd_crashed_is_a_refusal_naming_it(
        lab: Lab, lab_inv: Inventory, lab_home: None, ledger: Ledger) -> None:
    crashed = move_with_staticd_crashed_at(lab, lab_inv, "before_apply")
    outcome = crashed.outcome
    text = lines_of(outcome)
    # vtysh drops the line with `staticd is not running` (no `%`): the move must say so, not wait
    # for the FIB and blame the route for never showing up.
    assert outcome.status in ("rolled_back", "needs_human"), text
    assert "rejected 'ip route 198.51.100.32/27 198.51.100.3'" in text and "staticd is not running" in text, text
    assert "still points at" not in text, text
    settler = engine_for(lab_inv)
    try:
        settled = settler.reconcile()
    finally:
        settler.close()
    status = final_status(lab_inv, outcome.change_id)
    assert status in ("rolled_back", "failed"), (status, [str(s) for s in settled])
    problems = settle_and_check(lab, lab_inv, "web1")
    ledger.record("staticd-crash@before_apply", consistent=not problems, reported="staticd is not running" in text,
                  tracebacks=tracebacks(text), seconds=crashed.seconds)
    assert problems == []


def test_no_save_when_staticd_crashed_after_the_verify_for_it_would_write_no_static_routes(
        lab: Lab, lab_inv: Inventory, lab_home: None, ledger: Ledger) -> None:
    crashed = move_with_staticd_crashed_at(lab, lab_inv, "before_save")
    outcome, kept = crashed.outcome, crashed.saved_after == crashed.saved_before
    text = lines_of(outcome)
    # The move was verified before staticd went; the save is what must not happen, and be said.
    assert outcome.status == "done", text
    assert ("warning: saving the configuration failed: r1: not saved: staticd is not running, and "
            "`write memory` would save a configuration without its static routes") in text, text
    assert kept  # the saved configuration still has every static route
    problems = settle_and_check(lab, lab_inv, "web1")
    ledger.record("staticd-crash@before_save", consistent=not problems and kept,
                  reported="not saved: staticd is not running" in text, tracebacks=tracebacks(text),
                  seconds=crashed.seconds)
    assert problems == []
