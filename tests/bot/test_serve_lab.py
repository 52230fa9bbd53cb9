"""`lasthop serve` on the lab: checks, incidents, automatic moves and their guardrails, for real.

Needs root (network namespaces); CI runs these as root. Every wait is a bounded poll; the
times printed are for reading, not asserted (the benchmark measures them).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from support.labtools import cmdline, namespace_pids, wait_for

from bot.health.state import Health
from bot.inventory import Flapping, Inventory
from bot.notify import LogOut
from bot.serve import Daemon
from bot.values import replace
from lab import Lab

pytestmark = pytest.mark.lab

VIP_A = IPv4Address("198.51.100.33")
A = IPv4Network("198.51.100.32/27")




def fast_inventory(inv: Inventory, *, auto: set[str] = frozenset(), fall: int = 2, rise: int = 2,
                   **auto_policy: object) -> Inventory:
    services = {
        name: replace(
            svc, auto_failover=name in auto,
            check=replace(svc.check, interval=1.0, timeout=0.5, fall=fall, rise=rise, fast_interval=0.2),
        )
        for name, svc in inv.services.items()
    }
    policy = replace(inv.policy, auto_failover=replace(
        inv.policy.auto_failover, enabled=bool(auto), **auto_policy))
    return replace(inv, services=services, policy=policy)




_PARENT = re.compile(r"^\[(DOWN|!|ok)\] (OPEN|DOWN, NOT SERVING|MITIGATED|RESOLVED)\b")


def parents(out: LogOut) -> list[str]:
    """The incident parent messages posted: one per incident, however many checks failed."""
    return [text for kind, _, text, parent in out.sent if kind == "post" and parent is None and _PARENT.match(text)]


def top(out: LogOut) -> list[str]:
    """Every message posted to the channel itself (not into a thread)."""
    return [text for kind, _, text, parent in out.sent if kind == "post" and parent is None]


def said(out: LogOut) -> str:
    return "\n".join(text for _, _, text, _ in out.sent)


def test_auto_failover_restores_service_without_a_human(lab: Lab, lab_inv: Inventory, lab_home: None,
                                                        run_daemon: Callable[..., tuple[Daemon, LogOut]]) -> None:
    daemon, notifier = run_daemon(fast_inventory(lab_inv, auto={"www-a"}))
    assert lab.client_get(VIP_A) == "web1"
    broke = time.monotonic()
    lab.break_host("web1")
    try:
        def served_by_web2() -> bool:
            try:
                return lab.client_get(VIP_A, timeout=0.5) == "web2"
            except Exception:  # refused while web1 is down and still routed: keep polling
                return False

        wait_for(served_by_web2, 30, "the client to get web2")
        print(f"\nbreak -> client served by web2: {time.monotonic() - broke:.2f} s")
        # The client may be served by web2 while both routes exist (make before break); the engine
        # finishes removing the old one and verifying just after.
        wait_for(lambda: daemon.store.recent_changes(limit=1)[0].status not in ("planned", "applying", "verifying"),
                 20, "the move to finish")
        change = daemon.store.recent_changes(limit=1)[0]
        assert change.status == "done" and change.kind == "automatic" and change.requested_by == "lasthop"
        assert len(parents(notifier)) == 1, notifier.sent  # one incident (VIP and host failures joined), not a storm
        # The change record says done a moment before the engine's observers have told the thread.
        wait_for(lambda: "moved www-a web1 → web2 (lasthop (automatic))" in said(notifier), 10,
                 "the move in the incident's thread")
        # www-d (on r2) also ran on web1 but has auto failover off: the parent offers its button.
        wait_for(lambda: "Fail over www-d to" in said(notifier), 10, "the button for www-d")
    finally:
        lab.heal("web1")
    wait_for(lambda: daemon.store.open_incidents() == [], 30, "the incident to resolve")
    assert daemon.engine.read_live(["r1"])["r1"][A] == {IPv4Address("198.51.100.3")}  # no fail-back by default
    assert daemon.metrics.moves.labels("done", "automatic")._value.get() == 1


def test_with_auto_failover_off_one_incident_suggests_the_move_and_nothing_changes(
        lab: Lab, lab_inv: Inventory, lab_home: None, run_daemon: Callable[..., tuple[Daemon, LogOut]]) -> None:
    daemon, notifier = run_daemon(fast_inventory(lab_inv))
    lab.break_host("web1")
    try:
        wait_for(lambda: parents(notifier), 20, "the incident alert")
        wait_for(lambda: "Fail over all" in said(notifier) and "`/failover www-a to " in said(notifier), 10,
                 "the buttons and the commands to type")
        time.sleep(2)  # more failed checks must not repeat the alert
        assert len(parents(notifier)) == 1, notifier.sent
        assert daemon.store.recent_changes() == []
        assert "via 198.51.100.2 " in lab.exec("r1", ["ip", "route", "show", str(A)]).stdout
    finally:
        lab.heal("web1")


def test_two_hosts_failing_at_once_trip_the_self_partition_guard(
        lab: Lab, lab_inv: Inventory, lab_home: None, run_daemon: Callable[..., tuple[Daemon, LogOut]]) -> None:
    daemon, notifier = run_daemon(fast_inventory(lab_inv, auto={"www-a", "www-b", "www-c", "www-d"}))
    lab.break_host("web1", link=True)
    lab.break_host("web2", link=True)
    try:
        wait_for(lambda: "suspects its own network" in said(notifier), 30,
                 "the partition guard")
        time.sleep(2)
        assert daemon.store.recent_changes() == []
    finally:
        lab.heal("web1")
        lab.heal("web2")


def test_a_flapping_host_is_detected_and_left_alone(
        lab: Lab, lab_inv: Inventory, lab_home: None, run_daemon: Callable[..., tuple[Daemon, LogOut]]) -> None:
    inv = fast_inventory(lab_inv, auto={"www-a"}, fall=1, rise=1)
    # Production's rule, not the lab's demo settings (which let a newcomer replay the story).
    inv = replace(inv, policy=replace(inv.policy, flapping=Flapping(changes=4, window=300.0)))
    daemon, notifier = run_daemon(inv)
    key = ("www-b", "web2")
    for _ in range(3):
        lab.break_host("web2")
        wait_for(lambda: daemon.machines[key].state is Health.DOWN, 20, "web2 down")
        lab.heal("web2")
        wait_for(lambda: daemon.machines[key].state is Health.UP, 20, "web2 up")
    wait_for(lambda: daemon.incidents.is_flapping("web2"), 20, "web2 marked flapping")
    assert "web2 is flapping" in said(notifier)
    # web2 is up right now and second in www-a's preference list, but it is flapping:
    # when web1 fails, the automatic move skips it.
    lab.break_host("web1")
    try:
        wait_for(lambda: daemon.store.recent_changes(), 30, "the automatic move of www-a")
        wait_for(lambda: daemon.store.recent_changes(limit=1)[0].status == "done", 20, "the move to finish")
        (change,) = daemon.store.recent_changes()
        assert change.moves[0]["new"] == "198.51.100.4", "www-a must go to web3, not to the flapping web2"
    finally:
        lab.heal("web1")


def test_a_hung_host_does_not_delay_the_other_checks(
        lab: Lab, lab_inv: Inventory, run_daemon: Callable[..., tuple[Daemon, LogOut]]) -> None:
    daemon, _ = run_daemon(fast_inventory(lab_inv))
    servers = [p for p in namespace_pids(lab, "web2") if "webserver" in cmdline(p)]
    assert servers
    results: dict[tuple[str, str], int] = {}
    real = daemon._on_result

    def counting(job, ok, detail, lateness):  # type: ignore[no-untyped-def]
        results[job.key] = results.get(job.key, 0) + 1
        real(job, ok, detail, lateness)

    daemon.scheduler._on_result = counting  # type: ignore[attr-defined]
    for pid in servers:
        os.kill(pid, signal.SIGSTOP)  # the TCP handshake completes, the answer never comes
    try:
        wait_for(lambda: min(results.get(("www-a", h), 0) for h in ("web1", "web3")) >= 5, 30,
                 "five rounds of web1 and web3 checks while web2 hangs")
        assert daemon.machines[("www-a", "web2")].state in (Health.FALLING, Health.DOWN)
        assert daemon.machines[("www-a", "web1")].state is Health.UP
    finally:
        for pid in servers:
            os.kill(pid, signal.SIGCONT)


def test_drift_made_by_hand_is_reported_within_one_drift_interval(
        lab: Lab, lab_inv: Inventory, lab_home: None, run_daemon: Callable[..., tuple[Daemon, LogOut]]) -> None:
    _, notifier = run_daemon(fast_inventory(lab_inv), drift_interval=2.0)
    vtysh = ["vtysh", "-N", lab.plan.frr_pathspace, "-c", "configure terminal",
             "-c", f"ip route {A} 198.51.100.4", "-c", f"no ip route {A} 198.51.100.2"]
    lab.exec("r1", vtysh)
    changed = time.monotonic()
    wait_for(lambda: any("points at web3" in t for t in top(notifier)), 10, "the drift alert")
    print(f"\nhand change -> drift alert: {time.monotonic() - changed:.2f} s")
    (drift,) = [t for t in top(notifier) if "points at web3" in t]
    assert "points at web3 (198.51.100.4), but lasthop last set web1 (198.51.100.2)" in drift


def test_serve_runs_as_a_process_serves_metrics_and_stops_cleanly_on_sigterm(lab: Lab, lab_inv: Inventory,
                                                                             tmp_path: Path) -> None:
    config = tmp_path / "lasthop.yaml"
    config.write_text(lab.inventory.read_text().replace(f"sqlite:///{lab.state_dir}/lasthop.db", lab_inv.state_url))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "--config", str(config), "serve", "--port", "18787"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        def metrics() -> str:
            try:
                with urllib.request.urlopen("http://127.0.0.1:18787/metrics", timeout=2) as r:
                    return str(r.read().decode())
            except OSError:
                return ""

        wait_for(lambda: 'lasthop_health{host="web1",service="www-a"} 1.0' in metrics(), 30, "web1 healthy in /metrics")
        assert "lasthop_scheduler_lateness_seconds_count" in metrics()
        with urllib.request.urlopen("http://127.0.0.1:18787/healthz", timeout=2) as r:
            assert r.read() == b"ok\n"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    assert "no Slack settings" in out and "lasthop serve: stopped" in out
    assert "Traceback" not in out


def test_maintenance_drains_silences_and_ends(lab: Lab, lab_inv: Inventory, lab_home: None, tmp_path: Path,
                                              run_daemon: Callable[..., tuple[Daemon, LogOut]],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main as cli_main

    daemon, notifier = run_daemon(fast_inventory(lab_inv), maintenance_poll=0.5)
    config = tmp_path / "lasthop.yaml"
    config.write_text(lab.inventory.read_text().replace(f"sqlite:///{lab.state_dir}/lasthop.db", lab_inv.state_url))
    # Draining a healthy host is risky by the policy: without approval the CLI refuses and changes nothing.
    assert cli_main(["--config", str(config), "maintenance", "web3", "on", "--for", "30m", "--yes"]) == 1
    assert "Refused: draining web3 is risky, so maintenance did not start" in capsys.readouterr().out
    assert daemon.store.maintenance() == {}
    assert cli_main(["--config", str(config), "maintenance", "web3", "on", "--for", "30m", "--yes",
                     "--accept-risk"]) == 0
    out = capsys.readouterr().out
    # least loaded first: web1 serves www-a and www-d, web2 only www-b
    assert "www-c (198.51.100.200/32 on r1): web3 -> web2" in out and "web3 is in maintenance for 30m" in out
    assert lab.client_get(IPv4Address("198.51.100.200")) == "web2"
    wait_for(lambda: daemon.machines[("www-c", "web3")].state is Health.DISABLED, 10, "web3 disabled")
    lab.break_host("web3")  # work on the host: no alert while it is in maintenance
    try:
        time.sleep(2)
        assert parents(notifier) == [] and daemon.store.open_incidents() == []
        assert "web3 is in maintenance: no alerts" in said(notifier)
    finally:
        lab.heal("web3")
    assert cli_main(["--config", str(config), "maintenance", "web3", "off"]) == 0
    wait_for(lambda: daemon.machines[("www-c", "web3")].state is Health.UP, 15, "web3 checked again and up")
    assert [r.action for r in daemon.store.history(limit=3)][:1] == ["maintenance"]
