"""The engine end to end on the lab: real routers, real hosts, real SSH, a real state store.

Needs root (network namespaces); CI runs these as root.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
from support.labtools import client_answer, ssh_session_pids

from bot import faults
from bot.cli import main as cli_main
from bot.engine.model import MoveRequest
from bot.engine.pipeline import Engine
from bot.inventory import Inventory
from bot.state import StateStore
from bot.values import replace
from lab import Lab

pytestmark = pytest.mark.lab

A = IPv4Network("198.51.100.32/27")
VIP_A, VIP_D = IPv4Address("198.51.100.33"), IPv4Address("198.51.100.97")
WEB1, WEB2 = IPv4Address("198.51.100.2"), IPv4Address("198.51.100.3")


def engine_for(inv: Inventory) -> Engine:
    return Engine(inv, StateStore(inv.state_url), probe_source=inv.probe.source, probe_vips=inv.probe.verify_vips)


def req(target: str, to: str | None = None, *, kind: str = "service", actor: str = "alice",
        dry_run: bool = False) -> MoveRequest:
    return MoveRequest(kind=kind, target=target, actor=actor, source="test", to_host=to,  # type: ignore[arg-type]
                       dry_run=dry_run)


def fib(engine: Engine, router: str, prefix: IPv4Network) -> set[IPv4Address]:
    return engine.devices.router(router).fib_next_hops(prefix)


def test_failover_moves_the_route_and_the_client_gets_the_new_host(lab: Lab, lab_inv: Inventory,
                                                                    lab_home: None) -> None:
    lab.break_host("web1")
    try:
        engine = engine_for(lab_inv)
        plan = engine.plan(req("www-a"))
        assert [(m.from_host, m.to_host) for m in plan.moves] == [("web1", "web2")]
        assert not plan.risky, plan.risks  # web1 is down, web2 is up: a safe move
        seen: list[tuple[str, str]] = []
        engine.observers.append(lambda outcome, kind: seen.append((outcome.status, kind)))
        outcome = engine.execute(plan, idempotency_key="click-1")
        assert outcome.status == "done", outcome.lines
        again = engine.execute(plan, idempotency_key="click-1")  # a double click, a retried event
        assert again.status == "noop" and again.change_id == outcome.change_id
        assert again.lines == [f"already requested: change {outcome.change_id[:8]} on r1 is done; not run again"]
        assert len(engine.store.recent_changes()) == 1
        assert seen == [("done", "manual")]  # the repeat is not a move
        assert fib(engine, "r1", A) == {WEB2}
        assert client_answer(lab, VIP_A, "web2") == "web2"
        change = engine.store.get_change(outcome.change_id or "")
        assert change is not None and change.status == "done"
        audit = engine.store.history(limit=5)
        assert [(a.action, a.result, a.actor) for a in audit[:2]] == [("move", "duplicate", "alice"),
                                                                    ("move", "done", "alice")]
        assert "ip route 198.51.100.32/27 198.51.100.3" in audit[1].transcript
        # Saved by r1's non-root login, chown warning and all, and that is no save warning.
        assert "> write memory" in audit[1].transcript and "can't chown" in audit[1].transcript
        assert not any("saving the configuration failed" in line for line in outcome.lines), outcome.lines
        saved = (Path("/etc/frr") / lab.plan.frr_pathspace / "frr.conf").read_text()
        assert "ip route 198.51.100.32/27 198.51.100.3" in saved
        assert {"precheck_ms", "apply_ms", "verify_ms", "total_ms"} <= set(outcome.timings_ms)
        engine.close()
    finally:
        lab.heal("web1")


def test_cli_failover_and_dry_run(lab: Lab, lab_inv: Inventory, lab_home: None, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "lasthop.yaml"
    config.write_text(lab.inventory.read_text().replace(
        f"sqlite:///{lab.state_dir}/lasthop.db", lab_inv.state_url))
    assert cli_main(["--config", str(config), "failover", "www-a", "--to", "web2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("nothing changed") == 1 and "Dry run: nothing changed" in out
    assert "ip route 198.51.100.32/27 198.51.100.3" in out
    engine = engine_for(lab_inv)
    assert fib(engine, "r1", A) == {WEB1}
    # web1 is healthy, so moving away from it is risky: the CLI refuses without --accept-risk.
    assert cli_main(["--config", str(config), "failover", "www-a", "--to", "web2", "--yes"]) == 1
    assert "needs a second person's approval" in capsys.readouterr().out
    assert fib(engine, "r1", A) == {WEB1}
    assert cli_main(["--config", str(config), "failover", "198.51.100.32/27", "--to", "web2", "--yes",
                     "--accept-risk"]) == 0
    assert "[ok] Done" in capsys.readouterr().out
    assert client_answer(lab, VIP_A, "web2") == "web2"
    assert cli_main(["--config", str(config), "status", "--json"]) == 0
    assert '"host": "web2"' in capsys.readouterr().out
    assert cli_main(["--config", str(config), "status"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["www-a"][3:6] == ["web2", "ok", "ok"]  # served by web2, healthy, VIP on its loopback
    assert rows["www-d"][2:6] == ["r2", "web1", "ok", "ok"]
    assert cli_main(["--config", str(config), "check-config", "--connect"]) == 0
    out = capsys.readouterr().out
    assert "router r1: reachable, host key ok, 3 static routes" in out
    assert "host web3: reachable, host key ok, all 4 VIPs on lo" in out
    assert cli_main(["--config", str(config), "failover", "www-q"]) == 2
    assert "www-q" in capsys.readouterr().err
    assert cli_main(["--config", str(config), "history", "--limit", "3"]) == 0
    assert "failover" not in capsys.readouterr().err
    engine.close()


def test_move_to_a_host_without_the_vip_is_refused_and_changes_nothing(lab: Lab, lab_inv: Inventory,
                                                                       lab_home: None) -> None:
    engine = engine_for(lab_inv)
    web3 = engine.devices.host("web3")
    web3.unbind_vip(VIP_A)
    try:
        outcome = engine.run(req("www-a", "web3"), allow_risky=True)
        assert outcome.status == "refused"
        assert "web3 lacks 198.51.100.33 on its loopback" in outcome.lines[0]
        assert fib(engine, "r1", A) == {WEB1}
        assert engine.store.history(limit=1)[0].result == "refused"
        assert engine.store.recent_changes() == []  # refused before any change was recorded
    finally:
        web3.bind_vip(VIP_A, 1)
        engine.close()


def test_route_that_cannot_be_installed_is_rolled_back_and_verified(lab: Lab, lab_inv: Inventory,
                                                                    lab_home: None) -> None:
    # A kernel route added behind zebra's back beats any static: the new static never reaches the FIB.
    kernel = ["ip", "route", "add", str(A), "via", str(WEB1), "metric", "0"]
    lab.exec("r1", kernel)
    inv = replace(lab_inv, policy=replace(lab_inv.policy, verify_timeout=2.0))
    engine = engine_for(inv)
    try:
        outcome = engine.run(req("www-a", "web2"), allow_risky=True)
        assert outcome.status == "rolled_back", outcome.lines
        assert any("rolled back to 198.51.100.32/27 via 198.51.100.2, verified" in line for line in outcome.lines)
        assert fib(engine, "r1", A) == {WEB1}
        configured = engine.devices.router("r1").configured()
        assert (A, WEB2) not in configured and (A, WEB1) in configured
        change = engine.store.recent_changes(limit=1)[0]
        assert change.status == "rolled_back" and "still points at" in change.error
    finally:
        lab.exec("r1", ["ip", "route", "del", str(A), "via", str(WEB1), "metric", "0"], check=False)
        engine.close()
    assert client_answer(lab, VIP_A, "web1") == "web1"


def test_ssh_session_killed_mid_change_ends_rolled_back(lab: Lab, lab_inv: Inventory, lab_home: None) -> None:
    engine = engine_for(lab_inv)
    driver = engine.devices.router("r1")
    real_configure = driver.cli.configure  # type: ignore[attr-defined]
    calls = []

    def configure(lines: Any, transcript: Any, **kw: Any) -> None:
        calls.append(list(lines))
        if len(calls) == 2:  # the new route is in; kill the session before the old one goes
            for pid in ssh_session_pids(lab, "r1"):
                os.kill(pid, signal.SIGKILL)
        real_configure(lines, transcript, **kw)

    driver.cli.configure = configure  # type: ignore[attr-defined]
    try:
        outcome = engine.run(req("www-a", "web2"), allow_risky=True)
    finally:
        driver.cli.configure = real_configure  # type: ignore[attr-defined]
    assert outcome.status == "rolled_back", outcome.lines
    assert calls[0] == ["ip route 198.51.100.32/27 198.51.100.3"]
    assert fib(engine, "r1", A) == {WEB1}
    assert (A, WEB2) not in driver.configured()
    assert client_answer(lab, VIP_A, "web1") == "web1"
    engine.close()


def test_draining_a_host_moves_every_service_it_carried(lab: Lab, lab_inv: Inventory, lab_home: None) -> None:
    engine = engine_for(lab_inv)
    plan = engine.plan(req("web1", kind="host"))
    assert {m.service for m in plan.moves} == {"www-a", "www-d"}
    assert {r.rule for r in plan.risks} >= {"multiple_prefixes"}
    outcome = engine.execute(plan, allow_risky=True)
    assert outcome.status == "done", outcome.lines
    targets = {m.service: m.to_host for m in plan.moves}
    assert client_answer(lab, VIP_A, targets["www-a"]) == targets["www-a"]
    assert client_answer(lab, VIP_D, targets["www-d"]) == targets["www-d"]
    assert "web1" not in targets.values()
    engine.close()


def test_two_concurrent_failovers_on_one_router_one_runs_one_is_refused(lab: Lab, lab_inv: Inventory,
                                                                        lab_home: None) -> None:
    first, second = engine_for(lab_inv), engine_for(lab_inv)
    inside, release = threading.Event(), threading.Event()
    results: dict[str, Any] = {}

    def hold(point: str) -> None:
        inside.set()
        release.wait(20)

    with faults.armed("before_verify", hold):
        t = threading.Thread(target=lambda: results.update(a=first.run(req("www-a", "web2", actor="alice"),
                                                                       allow_risky=True)))
        t.start()
        assert inside.wait(30), "the first change never reached the router"
        results["b"] = second.run(req("www-b", "web3", actor="bob"), allow_risky=True)
        release.set()
        t.join(30)
    assert results["a"].status == "done", results["a"].lines
    assert results["b"].status == "refused"
    assert results["b"].lines[0].startswith("r1 is busy: change by alice (test) since ")
    assert results["b"].transcript == ""  # nothing of bob's reached the router
    assert fib(second, "r1", IPv4Network("198.51.100.64/27")) == {IPv4Address("198.51.100.3")}  # www-b untouched
    assert second.store.history(limit=5)[0].actor in ("alice", "bob")
    first.close()
    second.close()


CRASHER = """
import os, sys
from bot.config import load_inventory
from bot.engine.model import MoveRequest
from bot.engine.pipeline import Engine
from bot.state import StateStore
from bot.values import replace
inv = load_inventory(sys.argv[1])
inv = replace(inv, state_url=sys.argv[2])
engine = Engine(inv, StateStore(inv.state_url), probe_source=inv.probe.source)
from bot import faults
with faults.armed("before_verify", lambda point: os._exit(9)):   # the process dies between apply and verify
    engine.run(MoveRequest(kind="service", target="www-a", actor="carol", source="test", to_host="web2"),
               allow_risky=True)
"""


def test_a_process_killed_between_apply_and_verify_is_reconciled(lab: Lab, lab_inv: Inventory,
                                                                 lab_home: None) -> None:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(CRASHER), str(lab.inventory), lab_inv.state_url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 9, done.stderr
    engine = engine_for(lab_inv)
    (change,) = engine.store.changes_in_flight()
    assert change.status == "applying" and change.requested_by == "carol"
    notes = [str(s) for s in engine.reconcile()]
    assert len(notes) == 1 and "finished" in notes[0]
    assert engine.store.changes_in_flight() == []
    assert engine.store.get_change(change.id).status == "done"  # type: ignore[union-attr]
    assert engine.store.history(limit=1)[0].action == "reconcile"
    engine.close()
