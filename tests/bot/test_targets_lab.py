"""Automatic failover on the lab chooses its target by the one rule (bot/engine/targets.py), for real.

Two services on three hosts: www-a on web1, www-b on web2, both with automatic failover.
When web1 fails, www-a must go to the idle web3, not pile onto web2; and when web3 is
down too, to web2 anyway, saying that web2 now serves everything. Needs root.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address

import pytest
from support.labtools import client_answer, wait_for

from bot.health.state import Health
from bot.inventory import Inventory
from bot.notify import LogOut
from bot.serve import Daemon
from bot.values import replace
from lab import Lab

pytestmark = pytest.mark.lab

VIP_A = IPv4Address("198.51.100.33")
WEB2, WEB3 = "198.51.100.3", "198.51.100.4"  # the hosts' Ethernet addresses: the route's next hop




def two_services(inv: Inventory, partition_threshold: float = 0.5) -> Inventory:
    """Only www-a and www-b, fast checks, automatic failover on for both."""
    services = {
        name: replace(
            inv.services[name], auto_failover=True,
            check=replace(inv.services[name].check, interval=1.0, timeout=0.5, fall=2, rise=2,
                                      fast_interval=0.2),
        )
        for name in ("www-a", "www-b")
    }
    assert services["www-a"].hosts == ("web1", "web2", "web3")
    assert services["www-b"].hosts == ("web2", "web3", "web1")
    policy = replace(inv.policy, auto_failover=replace(
        inv.policy.auto_failover, enabled=True, partition_threshold=partition_threshold))
    return replace(inv, services=services, policy=policy)




def finished_move(daemon: Daemon) -> dict[str, str]:
    """The one automatic move's only prefix move, once it has finished."""
    wait_for(lambda: daemon.store.recent_changes(), 30, "the automatic move of www-a")
    wait_for(lambda: daemon.store.recent_changes(limit=1)[0].status not in ("planned", "applying", "verifying"),
             20, "the move to finish")
    (change,) = daemon.store.recent_changes()
    assert change.status == "done" and change.kind == "automatic", change
    (move,) = change.moves
    return move


def test_failover_goes_to_the_idle_host_not_onto_the_other_services_host(
        lab: Lab, lab_inv: Inventory, lab_home: None,
        run_daemon: Callable[[Inventory], tuple[Daemon, LogOut]]) -> None:
    daemon, notifier = run_daemon(two_services(lab_inv))
    assert lab.client_get(VIP_A) == "web1"
    lab.break_host("web1")
    try:
        move = finished_move(daemon)
        # web2 is www-a's second choice but already serves www-b; web3 serves nothing.
        assert move["new"] == WEB3, notifier.sent
        assert client_answer(lab, VIP_A, "web3") == "web3"
        assert "needs approval" not in "\n".join(t for _, _, t, _ in notifier.sent), notifier.sent
    finally:
        lab.heal("web1")


def test_failover_onto_the_last_healthy_host_goes_ahead_and_says_it_serves_everything(
        lab: Lab, lab_inv: Inventory, lab_home: None,
        run_daemon: Callable[[Inventory], tuple[Daemon, LogOut]]) -> None:
    # Two of three hosts fail here; above the default half, the self-partition guard would hold.
    daemon, notifier = run_daemon(two_services(lab_inv, partition_threshold=0.7))
    lab.break_host("web3")
    try:
        wait_for(lambda: daemon.machines[("www-a", "web3")].state is Health.DOWN, 20, "web3 down for www-a")
        assert daemon.store.recent_changes() == []  # web3 served nothing: nothing to move
        lab.break_host("web1")
        move = finished_move(daemon)
        assert move["new"] == WEB2, notifier.sent
        assert client_answer(lab, VIP_A, "web2") == "web2"
        wait_for(lambda: "web2 serves every service" in "\n".join(t for _, _, t, _ in notifier.sent), 10,
                 "the notice that web2 serves every service")
        assert "needs approval" not in "\n".join(t for _, _, t, _ in notifier.sent), notifier.sent
    finally:
        lab.heal("web1")
        lab.heal("web3")
