"""The serve daemon after a crash in the middle of an automatic move: the new process settles the
half-done change from its record, says so in the incident's own thread, and moves nothing twice.

No root and no lab (support.daemon); the lab fault suite does the same with SIGKILL and FRR.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Network
from pathlib import Path

import pytest
from support.daemon import DaemonRig, serve_inventory

from bot import faults

HOME = {"www-a": "web1", "www-b": "web2", "www-d": "web1"}
FALL = 3
PREFIX = IPv4Network("198.51.100.32/27")


class Crash(BaseException):
    """The process dies at the fault point: no handler catches it, nothing is cleaned up."""


def crash(point: str) -> None:
    raise Crash(point)


@pytest.fixture
def crashed(tmp_path: Path) -> Iterator[DaemonRig]:
    """web1 went down, and the process died between adding web3's route and removing web1's."""
    d = DaemonRig(serve_inventory(tmp_path, auto=("www-a",)), tmp_path, dict(HOME))
    d.ready()
    d.down("web1")
    with faults.armed("after_add", crash), pytest.raises(Crash):
        d.rounds(FALL)
    assert d.rig.serving("www-a") == {"web1", "web3"}
    yield d
    d.close()


def test_the_restarted_daemon_finishes_the_move_and_says_so_in_the_incident_thread(crashed: DaemonRig) -> None:
    d = crashed
    (incident,) = d.incidents()
    before = len(d.chat.sent)
    d.restart()
    assert d.rig.serving("www-a") == {"web3"}
    (change,) = d.store.recent_changes()
    assert (change.status, change.kind) == ("done", "automatic")
    said = [s for s in d.chat.sent[before:] if s.kind == "post"]
    (line,) = [s for s in said if "left half done" in s.text]
    assert line.thread is not None and line.thread.ts == incident.thread_ts  # in the incident's thread
    assert "finished it" in line.text
    events = [e.text for e in d.store.get_incident(incident.id).events]  # type: ignore[union-attr]
    assert any("lasthop finished a change left half done" in e for e in events)
    audit = d.store.history(limit=1)[0]
    assert (audit.action, audit.result) == ("reconcile", "done")
    d.rounds(5)  # still down, already moved: nothing moves twice, nothing is said again
    assert len(d.store.recent_changes()) == 1
    assert sum("left half done" in s.text for s in d.chat.sent) == 1


def test_when_the_target_failed_meanwhile_the_new_route_is_removed_and_the_incident_says_why(
        crashed: DaemonRig) -> None:
    d = crashed
    d.down("web3")  # the restarted process's live pre-check of the target fails
    d.restart()
    assert d.rig.serving("www-a") == {"web1"}
    (change,) = d.store.recent_changes()
    assert change.status == "rolled_back"
    (line,) = [s for s in d.chat.sent if "left half done" in s.text]
    assert "undid" in line.text and "web3 fails its health check" in line.text


def test_a_change_left_in_flight_is_settled_by_the_schedule_too(crashed: DaemonRig) -> None:
    d = crashed
    d.restart()
    # Another process died mid-change on the same router after this one started: the next pass settles it.
    d.rig.routers["r1"].table[PREFIX] = {d.inv.hosts["web3"].address, d.inv.hosts["web2"].address}
    change = d.store.create_change(router="r1", requested_by="bob", source="cli",
                                   moves=[{"prefix": str(PREFIX), "old": "192.0.2.4", "new": "192.0.2.3"}])
    d.store.set_change_status(change.id, "applying")
    d.daemon.reconcile()
    assert d.rig.serving("www-a") == {"web2"}
    settled = d.store.get_change(change.id)
    assert settled is not None and settled.status == "done"


def test_a_move_running_in_another_process_is_not_announced(crashed: DaemonRig) -> None:
    d = crashed
    d.restart()
    change = d.store.create_change(router="r1", requested_by="bob", source="cli",
                                   moves=[{"prefix": str(PREFIX), "old": "192.0.2.4", "new": "192.0.2.3"}])
    d.store.set_change_status(change.id, "applying")
    d.store.acquire_lock("r1", holder="bob@other:1/abc", info="change by bob (cli)")
    before = len(d.chat.sent)
    d.daemon.reconcile()
    d.daemon.reconcile()
    assert d.chat.sent[before:] == []  # bob's move is at work: no alarm about it
    stored = d.store.get_change(change.id)
    assert stored is not None and stored.status == "applying"
