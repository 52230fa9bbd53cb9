"""The daemon's drift check, without a network: memory routers, a real SQLite store.

The race it guards against is real (seen in the lab under Debian's Python): a drift read that
lands inside a make-before-break move sees both next hops and would call the router half-changed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from support.daemon import Checks
from support.fakes import inventory_from_text
from support.lan import THREE_HOSTS
from support.memory import Rig, memory_rig

from bot.chat import Recorder
from bot.serve import BUSY, Daemon, ServeSettings

HOME = {"www-a": "web1", "www-b": "web2", "www-d": "web1"}
PREFIX = IPv4Network("198.51.100.32/27")


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = memory_rig(inventory_from_text(tmp_path, THREE_HOSTS), tmp_path, HOME)
    yield r
    r.close()


def daemon_over(rig: Rig) -> Daemon:
    daemon = Daemon(rig.inv, rig.store, Recorder())
    daemon.engine = rig.engine  # the daemon's own engine would log in to real routers
    return daemon


def during_read(rig: Rig, what: Callable[[], None]) -> None:
    """Make r1's next FIB read run `what` first and show www-a on web1 and web2 at once."""
    router = rig.routers["r1"]
    plain = router.fib_next_hops

    def read(prefix: IPv4Network) -> set[IPv4Address]:
        router.fib_next_hops = plain  # type: ignore[method-assign]
        what()
        router.table[PREFIX] = {rig.inv.hosts["web1"].address, rig.inv.hosts["web2"].address}
        return plain(prefix)

    router.fib_next_hops = read  # type: ignore[method-assign]


def a_whole_move(rig: Rig) -> None:
    """What another lasthop process's move leaves in the store when it starts and ends inside one read."""
    with rig.store.router_lock("r1", holder="other-process", info="failover www-a"):
        change = rig.store.create_change(router="r1", moves=[{"prefix": str(PREFIX)}], requested_by="alice",
                                         source="cli")
        rig.store.set_change_status(change.id, "applying")
        rig.store.set_change_status(change.id, "done")


def test_two_next_hops_with_no_change_running_is_drift(rig: Rig) -> None:
    during_read(rig, lambda: None)
    ok, detail = daemon_over(rig)._run_drift("r1")
    assert not ok
    assert "2 next hops" in detail


def test_a_move_that_starts_and_ends_inside_the_read_gives_no_verdict(rig: Rig) -> None:
    during_read(rig, lambda: a_whole_move(rig))
    assert daemon_over(rig)._run_drift("r1") == (True, BUSY)


def test_a_move_still_running_when_the_read_ends_gives_no_verdict(rig: Rig) -> None:
    during_read(rig, lambda: rig.store.acquire_lock("r1", holder="other-process", info="failover www-a"))
    assert daemon_over(rig)._run_drift("r1") == (True, BUSY)


def test_a_router_locked_before_the_read_is_not_read(rig: Rig) -> None:
    rig.store.acquire_lock("r1", holder="other-process", info="failover www-a")
    reads: list[int] = []
    during_read(rig, lambda: reads.append(1))
    assert daemon_over(rig)._run_drift("r1") == (True, BUSY)
    assert reads == []


def test_a_move_elsewhere_does_not_hide_drift_here(rig: Rig) -> None:
    def move_on_r2() -> None:
        with rig.store.router_lock("r2", holder="other-process", info="failover"):
            rig.store.create_change(router="r2", moves=[], requested_by="alice", source="cli")

    during_read(rig, move_on_r2)
    ok, detail = daemon_over(rig)._run_drift("r1")
    assert not ok and "2 next hops" in detail


def test_the_router_matching_what_lasthop_expects_is_a_pass(rig: Rig) -> None:
    ok, detail = daemon_over(rig)._run_drift("r1")
    assert ok and detail == "r1 matches what lasthop expects"


def test_the_slow_timed_work_runs_as_periodic_jobs_and_stops_with_the_daemon(rig: Rig) -> None:
    """Maintenance windows and reconcile passes are APScheduler jobs (bot.periodic) of the running
    daemon, beside its check loop; stop() ends them with the checks."""
    reconciled = threading.Semaphore(0)
    daemon = Daemon(rig.inv, rig.store, Recorder(), check=Checks(), devices=rig.engine.devices,
                    settings=ServeSettings(maintenance_poll=0.05, reconcile_interval=0.05))
    real = daemon.engine.reconcile

    def counted() -> list[object]:
        reconciled.release()
        return list(real())

    daemon.engine.reconcile = counted  # type: ignore[method-assign]
    daemon.start()
    try:
        assert daemon.periodic.names() == ["maintenance", "reconcile"]
        # Once at start (before any thread), then again and again as a periodic job.
        assert all(reconciled.acquire(timeout=10) for _ in range(3))
    finally:
        daemon.stop()
    assert daemon.periodic.stop(0.0) is True  # nothing left running
