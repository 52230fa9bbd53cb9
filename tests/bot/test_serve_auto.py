"""The serve daemon's automatic moves, from check results fed in: failover, its guardrails, fail-back.

No root and no lab (see support.daemon): the daemon decides on the results the test chooses
and its engine moves memory routers, verified and audited in a real SQLite store. The lab
versions (test_serve_lab.py) prove the real path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.daemon import DaemonRig, serve_inventory

from bot import incident_view as iv
from bot.engine.model import MoveRequest
from bot.health.state import Health
from bot.inventory import Inventory

HOME = {"www-a": "web1", "www-b": "web2", "www-d": "web1"}
FALL, RISE = 3, 2  # the inventory's defaults, which these tests count on
NO_RISK_IN_FAILBACK = "  risky: {moves_from_healthy_host: false}\n"


class Daemons:
    """Ready daemons over an inventory each test chooses, all closed at the test's end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.made: list[DaemonRig] = []

    def __call__(self, inv: Inventory, routes: dict[str, str] = HOME) -> DaemonRig:
        d = DaemonRig(inv, self.tmp_path, routes)
        self.made.append(d)
        d.ready()
        return d


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    made = Daemons(tmp_path)
    yield made
    for d in made.made:
        d.close()


def moves(d: DaemonRig) -> list[tuple[str, str, str]]:
    """The automatic changes made, oldest first: (status, prefix, new next hop)."""
    return [(c.status, c.moves[0]["prefix"], c.moves[0]["new"]) for c in reversed(d.store.recent_changes())
            if c.kind == "automatic"]


def holds(d: DaemonRig) -> list[str]:
    return [e.text for r in d.all_incidents() for e in r.events if e.kind == iv.HOLD]


# -- failover ---------------------------------------------------------------------------------------

def test_a_down_host_s_service_moves_to_the_next_healthy_host_verified_audited_and_recorded(
        tmp_path: Path, daemons: Daemons) -> None:
    d = daemons(serve_inventory(tmp_path, auto=("www-a",)))
    d.down("web1")
    d.rounds(FALL - 1)
    assert moves(d) == []  # FALLING is not down
    d.round()
    # web3 serves nothing, web2 serves www-b: the least loaded healthy host takes it.
    assert d.rig.serving("www-a") == {"web3"}
    assert d.rig.serving("www-d") == {"web1"}  # auto failover is off for www-d
    (change,) = d.store.recent_changes()
    assert (change.status, change.kind, change.requested_by) == ("done", "automatic", "lasthop")
    assert change.moves == [{"prefix": "198.51.100.32/27", "old": "192.0.2.2", "new": "192.0.2.4"}]
    # Make before break on the router itself, and the target checked live first (through the daemon).
    r1 = d.rig.routers["r1"].commands
    assert r1.index("ip route 198.51.100.32/27 192.0.2.4") < r1.index("no ip route 198.51.100.32/27 192.0.2.2")
    assert d.inv.hosts["web3"].address in d.checks.asked
    (audit,) = d.store.history()
    assert (audit.actor, audit.action, audit.target, audit.result) == ("lasthop", "move", "www-a", "done")
    view = d.incident()
    (move,) = view.moves
    assert (move.moves, move.status, move.by) == ((("www-a", "web1", "web3"),), "done", "lasthop")
    assert any(line.endswith("moved www-a web1 → web3 (lasthop (automatic)) in 0.0 s, verified in the router's FIB")
               for line in d.chat.thread_lines())
    assert d.daemon.serving()["www-a"] == "web3"

    d.rounds(5)  # still down, already moved: no second move, and the drift check agrees with our own move
    assert len(d.store.recent_changes()) == 1
    assert len(d.chat.parents()) == 1


@pytest.mark.parametrize(("auto", "enabled"), [((), True), (("www-a", "www-d"), False)],
                         ids=["service-off", "policy-off"])
def test_with_auto_failover_off_nothing_moves(tmp_path: Path, daemons: Daemons, auto: tuple[str, ...],
                                              enabled: bool) -> None:
    d = daemons(serve_inventory(tmp_path, auto=auto, enabled=enabled))
    d.down("web1")
    d.rounds(FALL + 3)
    assert d.store.recent_changes() == [] and d.rig.serving("www-a") == {"web1"}
    (alert,) = d.chat.parents()
    assert "Fail over all" in [b.label for b in d.chat.last_version(alert.ref).message.buttons]


def test_switching_auto_failover_on_moves_a_service_already_down(tmp_path: Path, daemons: Daemons) -> None:
    d = daemons(serve_inventory(tmp_path))
    d.down("web1")
    d.rounds(FALL + 1)
    assert d.store.recent_changes() == []
    d.daemon.set_auto(True, "www-a", by="console:alice", source="console")
    d.rounds(2)  # the switch hands the decision to the writer; its re-checks come back next round
    assert d.rig.serving("www-a") == {"web3"} and d.rig.serving("www-d") == {"web1"}


def test_a_move_the_engine_refuses_is_said_in_the_incident_and_nothing_changes(
        tmp_path: Path, daemons: Daemons) -> None:
    d = daemons(serve_inventory(tmp_path, auto=("www-a",)))
    d.rig.hosts["web3"].vips.clear()  # web3 passes its check but lacks the VIP: the live pre-check refuses
    d.down("web1")
    d.rounds(FALL + 1)
    assert d.rig.serving("www-a") == {"web1"}
    assert any("automatic move of www-a refused: pre-check failed, nothing changed: web3 lacks 198.51.100.33"
               in line for line in d.chat.thread_lines())


def test_a_move_the_fib_never_shows_is_rolled_back_and_the_incident_says_so(
        tmp_path: Path, daemons: Daemons) -> None:
    d = daemons(serve_inventory(tmp_path, auto=("www-a",)))
    d.rig.routers["r1"].fail_next("verify")  # the router takes the lines; its FIB never changes
    d.down("web1")
    d.rounds(FALL + 1)
    assert d.rig.serving("www-a") == {"web1"}
    assert moves(d) == [("rolled_back", "198.51.100.32/27", "192.0.2.4")]
    (move,) = d.incident().moves
    assert move.status == "rolled_back"
    assert d.daemon.serving()["www-a"] == "web1"  # where the routes really point, not where we hoped


# -- the self-partition guard ---------------------------------------------------------------------

def test_more_than_the_threshold_of_hosts_down_at_once_moves_nothing_and_says_why(
        tmp_path: Path, daemons: Daemons) -> None:
    d = daemons(serve_inventory(tmp_path, auto=("www-a", "www-b", "www-d")))
    d.down("web1", "web2")  # 2 of 3 > 0.5
    d.rounds(FALL + 3)
    assert d.store.recent_changes() == [] and d.rig.serving("www-a") == {"web1"}
    assert holds(d) and set(holds(d)) == {
        "2 of 3 hosts failed at once: lasthop suspects its own network and moves nothing"}
    assert len(d.chat.parents()) == 1


def test_a_host_cut_off_a_moment_later_still_counts_for_the_guard(tmp_path: Path, daemons: Daemons) -> None:
    # web2's first failure comes in just after web1 is found down: the daemon re-checks every
    # target before deciding, and then sees web2 FALLING. Deciding on web1 alone would move.
    d = daemons(serve_inventory(tmp_path, auto=("www-a",)))
    d.down("web1")
    d.rounds(FALL - 1)
    d.down("web2")
    d.round()
    assert d.state("www-a", "web1") is Health.DOWN and d.state("www-a", "web2") is Health.FALLING
    assert d.store.recent_changes() == []
    assert holds(d) == ["2 of 3 hosts failed at once: lasthop suspects its own network and moves nothing"]
    assert ("www-a", "web2") in d.scheduler.sooner  # the re-check was asked for, not just waited for


def test_the_partition_threshold_comes_from_the_policy(tmp_path: Path, daemons: Daemons) -> None:
    d = daemons(serve_inventory(tmp_path, auto=("www-a",), auto_policy=", partition_threshold: 0.7"))
    d.down("web1", "web2")  # 2 of 3 is not more than 0.7
    d.rounds(FALL + 1)
    assert d.rig.serving("www-a") == {"web3"}


# -- the move budget ----------------------------------------------------------------------------

def test_max_moves_per_window_stops_further_automatic_moves_until_the_window_has_passed(
        tmp_path: Path, daemons: Daemons) -> None:
    d = daemons(serve_inventory(tmp_path, auto=("www-a", "www-b"), auto_policy=", max_moves: 1, window: 600"))
    d.down("web1")
    d.rounds(FALL + 1)
    assert moves(d) == [("done", "198.51.100.32/27", "192.0.2.4")]
    d.heal("web1")
    d.rounds(RISE)
    assert d.incidents() == []

    d.advance(60)
    d.down("web2")
    d.rounds(FALL + 1)
    assert len(moves(d)) == 1 and d.rig.serving("www-b") == {"web2"}
    assert holds(d) == ["1 automatic move in the last 10m: waiting for a human"]

    d.heal("web2")
    d.rounds(RISE)
    d.advance(600)  # the first move has left the window
    d.down("web2")
    d.rounds(FALL + 1)
    assert len(moves(d)) == 2 and d.rig.serving("www-b") != {"web2"}


def test_max_moves_holds_the_second_service_of_a_failed_host(tmp_path: Path, daemons: Daemons) -> None:
    d = daemons(serve_inventory(tmp_path, auto=("www-a", "www-d"), auto_policy=", max_moves: 1"))
    d.down("web1")
    d.rounds(FALL + 2)
    assert len(moves(d)) == 1
    assert d.rig.serving("www-a") == {"web3"} and d.rig.serving("www-d") == {"web1"}
    assert holds(d) == ["1 automatic move in the last 1h: waiting for a human"]


def test_max_moves_counts_a_move_still_running_when_the_next_is_decided(tmp_path: Path, daemons: Daemons) -> None:
    d = daemons(serve_inventory(tmp_path, auto=("www-a", "www-d"), auto_policy=", max_moves: 1"))
    d.hold_moves = True  # both decisions are made while the mover is busy with the first move
    d.down("web1")
    d.rounds(FALL + 2)
    d.run_moves()
    assert len(moves(d)) == 1


def test_a_move_still_running_counts_for_the_load_of_its_target(tmp_path: Path, daemons: Daemons) -> None:
    d = daemons(serve_inventory(tmp_path, auto=("www-a", "www-d")))
    d.hold_moves = True
    d.down("web1")
    d.rounds(FALL + 2)
    d.run_moves()
    # www-a goes to web3 (web2 serves www-b); www-d then finds web2 and web3 serving one each.
    assert d.rig.serving("www-a") == {"web3"} and d.rig.serving("www-d") == {"web2"}


def test_a_move_refused_before_any_change_gives_its_count_back(tmp_path: Path, daemons: Daemons) -> None:
    d = daemons(serve_inventory(tmp_path, auto=("www-a", "www-d"), auto_policy=", max_moves: 1"))
    d.rig.hosts["web3"].vips.clear()  # the live pre-check refuses every move to web3
    d.down("web1")
    d.rounds(FALL + 2)
    lines = d.chat.thread_lines()
    for service in ("www-a", "www-d"):
        assert any(f"automatic move of {service} refused: pre-check failed" in line for line in lines)
    assert holds(d) == []  # www-d was tried, not held by a cap that www-a's refusal had used up


# -- recovery and fail-back ---------------------------------------------------------------------

def failed_over(d: DaemonRig) -> None:
    """web1 fails, www-a moves to web3, web1 comes back UP and the incident resolves."""
    d.down("web1")
    d.rounds(FALL + 1)
    assert d.rig.serving("www-a") == {"web3"}
    d.heal("web1")
    d.rounds(RISE)
    assert d.state("www-a", "web1") is Health.UP and d.incidents() == []


def test_without_failback_a_recovered_host_gets_nothing_back(tmp_path: Path, daemons: Daemons) -> None:
    d = daemons(serve_inventory(tmp_path, auto=("www-a",), extra=NO_RISK_IN_FAILBACK))
    failed_over(d)
    d.advance(3600)
    d.housekeeping()
    d.round()
    assert d.rig.serving("www-a") == {"web3"} and len(d.store.recent_changes()) == 1
    # People may still move it back, from the resolved incident.
    (alert,) = d.chat.parents()
    assert "Fail back www-a to web1" in [b.label for b in d.chat.last_version(alert.ref).message.buttons]


def test_failback_waits_for_hold_down_then_moves_the_service_home(tmp_path: Path, daemons: Daemons) -> None:
    d = daemons(serve_inventory(tmp_path, auto=("www-a",), auto_policy=", failback: true, hold_down: 600",
                                extra=NO_RISK_IN_FAILBACK))
    failed_over(d)
    d.advance(598)  # web1 became UP a round ago
    d.housekeeping()
    assert d.rig.serving("www-a") == {"web3"}
    d.advance(2)
    d.housekeeping()
    assert d.rig.serving("www-a") == {"web1"}
    assert moves(d)[-1] == ("done", "198.51.100.32/27", "192.0.2.2")
    audit = d.store.history(limit=1)[0]
    assert (audit.actor, audit.action, audit.target, audit.result) == ("lasthop", "move", "www-a", "done")
    d.advance(3600)
    d.housekeeping()
    assert len(moves(d)) == 2  # home already: nothing more


def test_a_host_failing_during_hold_down_starts_it_again(tmp_path: Path, daemons: Daemons) -> None:
    d = daemons(serve_inventory(tmp_path, auto=("www-a",), auto_policy=", failback: true, hold_down: 600",
                                extra=NO_RISK_IN_FAILBACK))
    failed_over(d)
    d.advance(300)
    d.down("web1")
    d.round()  # one failure: FALLING, no longer healthy
    d.heal("web1")
    d.round()  # a blip: UP again at once, and healthy from now
    d.advance(400)
    d.housekeeping()
    assert d.rig.serving("www-a") == {"web3"}  # 700 s since the first UP, 401 since the blip
    d.advance(200)
    d.housekeeping()
    assert d.rig.serving("www-a") == {"web1"}


def test_failback_with_the_default_risk_rules_is_not_refused_again_and_again(tmp_path: Path, daemons: Daemons) -> None:
    d = daemons(serve_inventory(tmp_path, auto=("www-a",), auto_policy=", failback: true, hold_down: 600"))
    failed_over(d)
    d.advance(600)
    said = len(d.chat.sent)
    for _ in range(3):
        d.housekeeping()
        d.advance(5)
    refused = [s for s in d.chat.sent[said:] if "refused" in s.text]
    assert d.rig.serving("www-a") == {"web1"} or len(refused) <= 1


def test_a_failback_takes_the_one_risk_its_policy_consents_to_and_the_audit_says_so(
        tmp_path: Path, daemons: Daemons) -> None:
    d = daemons(serve_inventory(tmp_path, auto=("www-a",), auto_policy=", failback: true, hold_down: 600"))
    failed_over(d)
    d.advance(600)
    d.housekeeping()
    assert d.rig.serving("www-a") == {"web1"}
    audit = d.store.history(limit=1)[0]
    assert (audit.actor, audit.action, audit.target, audit.result) == ("lasthop", "move", "www-a", "done")
    assert ("risk accepted by lasthop under policy auto_failover.failback: "
            "moves www-a away from web3, which is healthy") in audit.detail
    assert isinstance(audit.plan, dict) and audit.plan["risk_accepted"] is True
    assert audit.plan["risk_accepted_by"] == "lasthop under policy auto_failover.failback"


def test_a_failback_blocked_by_another_risk_is_said_once_and_waits_for_a_change(
        tmp_path: Path, daemons: Daemons) -> None:
    # Everything starts on web1, so www-a's fail-back would leave web1 serving every service.
    everything_on_web1 = {"www-a": "web1", "www-b": "web1", "www-d": "web1"}
    d = daemons(serve_inventory(tmp_path, auto=("www-a",), auto_policy=", failback: true, hold_down: 600"),
                everything_on_web1)
    d.down("web1")
    d.rounds(FALL + 1)
    assert d.rig.serving("www-a") == {"web2"}
    d.heal("web1")
    d.rounds(RISE)
    d.advance(600)
    said = len(d.chat.sent)
    for _ in range(4):
        d.housekeeping()
        d.advance(5)
    assert d.rig.serving("www-a") == {"web2"}
    refused = [s.text for s in d.chat.sent[said:] if "refused" in s.text]
    assert len(refused) == 1 and "afterwards web1 would serve every service" in refused[0]
    assert "moves www-a away from web2" in refused[0]  # said in full, the consented risk too
    tries = [a for a in d.store.history() if a.target == "www-a" and a.result == "refused"]
    assert len(tries) == 1  # not tried again either: nothing had changed

    d.down("web3")
    d.round()
    d.heal("web3")
    d.round()  # health changed: tried again, refused the same way, and not said again
    tries = [a for a in d.store.history() if a.target == "www-a" and a.result == "refused"]
    assert len(tries) == 2
    assert len([s for s in d.chat.sent[said:] if "refused" in s.text]) == 1

    # Someone moves www-d off web1: the risk is gone, and the next pass moves www-a home.
    d.daemon.engine.run(MoveRequest(kind="service", target="www-d", actor="cli:alice", source="cli",
                                    to_host="web3"), allow_risky=True)
    d.housekeeping()
    assert d.rig.serving("www-a") == {"web1"}


# -- flapping -----------------------------------------------------------------------------------

def test_a_flapping_host_is_not_chosen_as_the_target(tmp_path: Path, daemons: Daemons) -> None:
    # web2 serves nothing, so it would take www-a; flapping, it is skipped for web3.
    routes = {"www-a": "web1", "www-b": "web3", "www-d": "web3"}
    d = daemons(serve_inventory(tmp_path, auto=("www-a",)), routes)
    d.flap("web2", 2, fall=FALL, rise=RISE)
    assert d.daemon.flapping() == {"web2"}
    d.down("web1")
    d.rounds(FALL + 1)
    assert d.rig.serving("www-a") == {"web3"}


def test_without_flapping_that_host_would_have_been_the_target(tmp_path: Path, daemons: Daemons) -> None:
    routes = {"www-a": "web1", "www-b": "web3", "www-d": "web3"}
    d = daemons(serve_inventory(tmp_path, auto=("www-a",)), routes)
    d.down("web1")
    d.rounds(FALL + 1)
    assert d.rig.serving("www-a") == {"web2"}


def test_a_service_on_a_flapping_host_is_not_moved_automatically(tmp_path: Path, daemons: Daemons) -> None:
    d = daemons(serve_inventory(tmp_path))
    d.flap("web2", 2, fall=FALL, rise=RISE)
    d.daemon.set_auto(True, "www-b", by="console:alice", source="console")
    d.down("web2")
    d.rounds(FALL + 1)
    assert d.state("www-b", "web2") is Health.DOWN
    assert d.store.recent_changes() == [] and d.rig.serving("www-b") == {"web2"}
    assert holds(d) == ["web2 is flapping: lasthop does not move www-b automatically until it is stable"]


def test_a_flapping_host_with_auto_failover_on_is_not_an_alert_storm(tmp_path: Path, daemons: Daemons) -> None:
    d = daemons(serve_inventory(tmp_path))
    d.flap("web2", 2, fall=FALL, rise=RISE)
    d.daemon.set_auto(True, "www-b", by="console:alice", source="console")
    d.round()
    said = len(d.chat.sent)
    d.flap("web2", 3, fall=FALL, rise=RISE)
    assert len(d.chat.sent) - said <= 2  # one hold line and its parent update, at most


def test_the_flapping_hold_is_said_again_when_the_host_flaps_again_after_being_stable(
        tmp_path: Path, daemons: Daemons) -> None:
    d = daemons(serve_inventory(tmp_path))
    d.flap("web2", 2, fall=FALL, rise=RISE)
    d.daemon.set_auto(True, "www-b", by="console:alice", source="console")
    d.flap("web2", 2, fall=FALL, rise=RISE)
    assert len(holds(d)) == 1
    d.advance(d.inv.policy.flapping.window + 1)
    d.housekeeping()
    assert d.daemon.flapping() == set()  # stable: that episode is over
    # A second episode, with auto off while it builds up (else its first DOWN would move www-b).
    d.daemon.set_auto(False, "www-b", by="console:alice", source="console")
    d.flap("web2", 2, fall=FALL, rise=RISE)
    assert d.daemon.flapping() == {"web2"}
    d.daemon.set_auto(True, "www-b", by="console:alice", source="console")
    d.flap("web2", 2, fall=FALL, rise=RISE)
    assert holds(d)[1:] == ["web2 is flapping: lasthop does not move www-b automatically until it is stable"]
    assert d.rig.serving("www-b") == {"web2"}


# -- the fast re-check ------------------------------------------------------------------------------

def test_a_timed_out_check_in_doubt_is_checked_again_at_once_a_refused_one_after_fast_interval(
        daemons: Daemons, tmp_path: Path) -> None:
    # fast_interval 200ms counts from the start of the check: one that took its whole time-out
    # (a dead link) has used it up, one refused in a moment has not.
    d = daemons(serve_inventory(tmp_path, check="{interval: 1s, timeout: 150ms, fast_interval: 200ms}"))
    d.down("web1", "web2")
    d.checks.slow[d.inv.hosts["web1"].address] = 0.25  # longer than fast_interval: as if it had timed out
    d.round()
    slow, quick = d.scheduler.delays[("www-a", "web1")], d.scheduler.delays[("www-a", "web2")]
    assert d.daemon.machines[("www-a", "web1")].state is Health.FALLING
    assert slow == 0.0
    assert 0.15 < quick <= 0.2
    d.heal("web1", "web2")
    d.checks.slow.clear()
    d.round()
    assert d.scheduler.delays[("www-a", "web2")] > 0.15  # RISING: in doubt, a quick check waits
    up = [k for k, m in d.daemon.machines.items() if k[1] == "web3" and m.state is Health.UP]
    assert up and all(d.scheduler.delays[k] == 1.0 for k in up)  # UP: the normal interval


def test_a_probe_timed_on_the_loop_counts_like_a_check_run_in_the_pool(daemons: Daemons, tmp_path: Path) -> None:
    # run_check's own checks run on the scheduler's loop and report their duration through on_check
    # (Daemon._checked) just before their result: a time-out there is re-checked at once too.
    d = daemons(serve_inventory(tmp_path, check="{interval: 1s, timeout: 150ms, fast_interval: 200ms}"))
    job = next(j for j in d.scheduler.jobs if j.key == ("www-a", "web1"))
    d.daemon._checked(job, 100.0, 100.15)
    d.daemon._on_result(job, False, "no answer within 0.15s", 0.0)
    assert d.daemon.machines[job.key].state is Health.FALLING
    assert d.scheduler.delays[job.key] == pytest.approx(0.05)  # 200 ms from the start of a 150 ms check
    d.daemon._checked(job, 101.0, 101.001)
    d.daemon._on_result(job, False, "connection refused", 0.0)
    assert 0.19 < d.scheduler.delays[job.key] <= 0.2
