"""Several `Daemon`s on one real PostgreSQL store (issue 13): one leads, the others follow.

Each daemon has its own StateStore on the same database, its own check function and chat, and
its own Devices over the same memory routers and hosts, as instances on several machines share
the routers. Everything runs on real threads (election, scheduler, mover, periodic jobs): every
wait is bounded with a generous deadline, and no test asserts how long anything took.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from sqlalchemy import text
from support.daemon import Chat, Checks, serve_inventory
from support.labtools import wait_for
from support.memory import Rig, memory_rig

from bot import incident_view as iv
from bot.chat import MessageRef
from bot.engine.devices import Devices
from bot.engine.model import MoveRequest
from bot.health.state import Health
from bot.inventory import Inventory
from bot.serve import VIP, Daemon, ServeSettings
from bot.state import ChangeRecord, StateError, StateStore

ROUTES = {"www-a": "web1", "www-b": "web2", "www-d": "web1"}
CHECK = "{interval: 200ms, timeout: 100ms, fast_interval: 100ms}"
WAIT = 30.0  # seconds: generous, a loaded machine must never fail a test by being slow
# The drift read (settings().drift_interval) also learns where routes point; it comes long after WAIT,
# so a test that sees the leader learn of a route within WAIT sees the path it meant to.


def settings() -> ServeSettings:
    return ServeSettings(heartbeat=0.2, lease=0.8, poll=0.1, publish_interval=0.2, maintenance_poll=0.2,
                         startup_grace=3.0, remind_after=0, reconcile_interval=5.0, drift_interval=120.0,
                         loopback_interval=60.0)


class Cluster:
    """Daemons named by instance over one PG store and one set of memory devices; the test starts them."""

    def __init__(self, inv: Inventory, tmp_path: Path, url: str) -> None:
        self.inv, self.url = inv, url
        self.rig: Rig = memory_rig(inv, tmp_path, ROUTES)  # its devices; its SQLite store goes unused
        self.down_set: set[IPv4Address] = set()  # every daemon's Checks holds this one set: down for all
        self.daemons: dict[str, Daemon] = {}
        self.checks: dict[str, Checks] = {}
        self.chats: dict[str, Chat] = {}
        self.store = StateStore(url)  # the test's own view of the store
        self._stores: list[StateStore] = [self.store]

    def make(self, name: str) -> Daemon:
        """A daemon standing for leader as `name`, not started."""
        store = StateStore(self.url)
        self._stores.append(store)
        checks = Checks(down=self.down_set)
        devices = Devices(self.inv, router_factory=self.rig.routers.__getitem__,
                          host_factory=self.rig.hosts.__getitem__)
        chat = Chat()
        d = Daemon(self.inv, store, chat, check=checks, devices=devices, settings=settings(), instance=name)
        self.daemons[name], self.checks[name], self.chats[name] = d, checks, chat
        return d

    def start(self, name: str) -> Daemon:
        d = self.make(name)
        d.start()
        return d

    def down(self, *hosts: str) -> None:
        self.down_set |= {self.inv.hosts[h].address for h in hosts}

    def heal(self, *hosts: str) -> None:
        self.down_set -= {self.inv.hosts[h].address for h in hosts}

    def asked(self, name: str) -> int:
        return len(self.checks[name].asked)

    def automatic(self) -> list[ChangeRecord]:
        """The automatic changes recorded, oldest first."""
        return [c for c in reversed(self.store.recent_changes(limit=50)) if c.kind == "automatic"]

    def close(self) -> None:
        for d in self.daemons.values():
            d.stop(timeout=30)
        for s in self._stores:
            s.close()
        self.rig.close()


MakeCluster = Callable[[Inventory], Cluster]


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str) -> Iterator[MakeCluster]:
    made: list[Cluster] = []

    def build(inv: Inventory) -> Cluster:
        c = Cluster(inv, tmp_path, pg_url)
        made.append(c)
        return c

    yield build
    for c in made:
        c.close()


def inventory(tmp_path: Path, *, auto: tuple[str, ...] = ("www-a",), auto_policy: str = "") -> Inventory:
    return serve_inventory(tmp_path, auto=auto, auto_policy=auto_policy, check=CHECK)


def complete(d: Daemon) -> bool:
    """The daemon leads with a complete view: every target known and UP."""
    return d.leading() and d._ready and all(m.state is Health.UP for m in d.machines.values())


def follower_sees(d: Daemon, want: Health) -> bool:
    view = d.snapshot()
    return bool(view) and all(state is want for state in view.values())


def events(store: StateStore, kind: str) -> list[str]:
    return [e.text for r in store.open_incidents() for e in r.events if e.kind == kind]


# -- one leads, the others follow -----------------------------------------------------------------

def test_the_first_started_leads_and_only_its_scheduler_checks(tmp_path: Path, cluster: MakeCluster) -> None:
    c = cluster(inventory(tmp_path))
    a = c.start("lasthop-a")
    b = c.start("lasthop-b")
    wait_for(lambda: complete(a), WAIT, "lasthop-a's complete health view")
    assert a.leading() and not b.leading()
    leader = c.store.leader()
    assert leader is not None and leader.leading and leader.instance == "lasthop-a"
    # The leader keeps checking; the follower has not run one check, nor started a scheduler.
    seen = c.asked("lasthop-a")
    wait_for(lambda: c.asked("lasthop-a") > seen + 20, WAIT, "more checks by the leader")
    assert c.asked("lasthop-b") == 0
    assert not b._running and b._term is None
    # One APScheduler, on the leader: its timed jobs are there, and the follower has none running.
    assert {"maintenance", "reconcile", "publish"} <= set(a.periodic.names())
    assert b.periodic.names() == [] and not b.periodic._scheduler.running


def test_a_follower_shows_the_leader_s_health_and_unknown_when_nobody_leads(
        tmp_path: Path, cluster: MakeCluster) -> None:
    c = cluster(inventory(tmp_path))
    a = c.start("lasthop-a")
    b = c.start("lasthop-b")
    wait_for(lambda: complete(a), WAIT, "lasthop-a's complete health view")
    wait_for(lambda: follower_sees(b, Health.UP), WAIT, "the follower seeing the leader's UP")
    assert set(b.snapshot()) == {k for k in a.machines if k[1] != VIP}
    # A host down: the follower sees it as the leader does, from what the leader published.
    c.down("web3")
    wait_for(lambda: b.snapshot().get(("www-a", "web3")) is Health.DOWN, WAIT, "the follower seeing web3 DOWN")
    assert a.snapshot()[("www-a", "web3")] is Health.DOWN
    # Nobody leads: the follower stops standing, then the leader stands down. Its published rows
    # stay in the store, yet they are a finished term's: unknown, not the last word of a dead leader.
    assert b.election is not None
    b.election.stop()
    a.stop()
    record = c.store.leader()
    assert record is not None and not record.leading
    wait_for(lambda: follower_sees(b, Health.INIT), WAIT, "the follower seeing INIT with nobody leading")
    assert not b.leading()


# -- the shared automatic failover switch ---------------------------------------------------------

def test_auto_off_on_a_follower_holds_the_leader_back_silently(tmp_path: Path, cluster: MakeCluster) -> None:
    c = cluster(inventory(tmp_path))
    a = c.start("lasthop-a")
    b = c.start("lasthop-b")
    wait_for(lambda: complete(a), WAIT, "lasthop-a's complete health view")
    assert a.auto_on() == ["www-a"]
    assert b.set_auto(False, "www-a", by="slack:U0ALICE", source="slack") == []
    assert a.auto_on() == []
    assert c.store.setting("auto_failover") == {"on": []}
    c.down("web1")
    wait_for(lambda: a.machines[("www-a", "web1")].state is Health.DOWN, WAIT, "web1 DOWN on the leader")
    wait_for(lambda: c.store.open_incidents(), WAIT, "the leader's incident for web1")
    # Several maintenance passes (each re-reads the switch) and fast re-checks later: still nothing.
    seen = c.asked("lasthop-a")
    wait_for(lambda: c.asked("lasthop-a") > seen + 40, WAIT, "more checks by the leader")
    assert c.rig.serving("www-a") == {"web1"}
    assert c.automatic() == []
    # "Off" is the routine case, answered by the alert's own buttons: no hold and no note is said.
    assert events(c.store, iv.HOLD) == []
    assert events(c.store, iv.NOTE) == []
    assert not any("automatic" in s.text for s in c.chats["lasthop-a"].sent)


def test_auto_on_from_a_follower_moves_a_service_whose_host_is_down_already(
        tmp_path: Path, cluster: MakeCluster) -> None:
    c = cluster(inventory(tmp_path, auto=()))
    a = c.start("lasthop-a")
    b = c.start("lasthop-b")
    wait_for(lambda: complete(a), WAIT, "lasthop-a's complete health view")
    c.down("web1")
    wait_for(lambda: a.machines[("www-a", "web1")].state is Health.DOWN, WAIT, "web1 DOWN on the leader")
    # The leader has decided on that DOWN (re-checked the others, held: auto is off) before the switch.
    seen = c.asked("lasthop-a")
    wait_for(lambda: c.asked("lasthop-a") > seen + 20, WAIT, "more checks by the leader")
    wait_for(lambda: "www-a" not in a._confirming, WAIT, "the leader's decision on web1's DOWN")
    assert c.automatic() == []
    # No transition comes again while web1 stays down: the switch itself must make the leader look.
    assert b.set_auto(True, "www-a", by="slack:U0ALICE", source="slack") == ["www-a"]
    wait_for(lambda: [x.status for x in c.automatic()] == ["done"], WAIT, "the leader's automatic move of www-a")
    assert c.rig.serving("www-a") == {"web3"}
    assert c.rig.serving("www-d") == {"web1"}  # still off for www-d


def test_the_leader_learns_where_a_follower_moved_a_service_on_a_store_with_no_change_before(
        tmp_path: Path, cluster: MakeCluster) -> None:
    c = cluster(inventory(tmp_path, auto=()))
    a = c.start("lasthop-a")
    b = c.start("lasthop-b")
    wait_for(lambda: complete(a), WAIT, "lasthop-a's complete health view")
    assert c.store.last_change_at() is None  # a fresh store: nothing ever moved
    c.down("web1")
    wait_for(lambda: a.snapshot().get(("www-a", "web1")) is Health.DOWN, WAIT, "web1 DOWN on the leader")
    wait_for(lambda: b.snapshot().get(("www-a", "web1")) is Health.DOWN, WAIT, "web1 DOWN on the follower")
    # Someone's chat command answered by the follower: a manual move, made by b's engine.
    outcome = b.engine.run(MoveRequest(kind="service", target="www-a", actor="slack:U0ALICE", source="slack",
                                       to_host="web3"))
    assert outcome.status == "done", outcome.lines
    assert c.rig.serving("www-a") == {"web3"} and b.serving()["www-a"] == "web3"
    wait_for(lambda: a.serving().get("www-a") == "web3", WAIT, "the leader learning www-a is on web3")


def test_a_follower_learns_where_the_leader_moved_a_service(tmp_path: Path, cluster: MakeCluster) -> None:
    c = cluster(inventory(tmp_path))
    a = c.start("lasthop-a")
    b = c.start("lasthop-b")
    wait_for(lambda: complete(a), WAIT, "lasthop-a's complete health view")
    assert b.serving()["www-a"] == "web1"
    c.down("web1")
    wait_for(lambda: [x.status for x in c.automatic()] == ["done"], WAIT, "the leader's automatic move of www-a")
    assert a.serving()["www-a"] == "web3"
    # What the follower's incident messages and status say is routed where.
    wait_for(lambda: b.serving().get("www-a") == "web3", WAIT, "the follower learning www-a is on web3")
    assert b.situation().serving["www-a"] == "web3"


# -- takeover -------------------------------------------------------------------------------------

def test_the_follower_takes_over_with_a_higher_term_and_health_rebuilt_from_unknown(
        tmp_path: Path, cluster: MakeCluster) -> None:
    c = cluster(inventory(tmp_path))
    a = c.start("lasthop-a")
    b = c.make("lasthop-b")
    # What b's new term starts from, read the moment it is built: nothing seen yet.
    at_promotion: list[set[Health]] = []
    build_term = b._new_term

    def new_term() -> None:
        build_term()
        at_promotion.append({m.state for m in b.machines.values()})

    b._new_term = new_term  # type: ignore[method-assign]
    b.start()
    wait_for(lambda: complete(a), WAIT, "lasthop-a's complete health view")
    first = c.store.leader()
    assert first is not None and first.instance == "lasthop-a"
    a.stop()
    wait_for(lambda: b.leading(), WAIT, "lasthop-b leading")
    second = c.store.leader()
    assert second is not None and second.instance == "lasthop-b" and second.term > first.term
    assert b.election is not None and b.election.term() == second.term
    wait_for(lambda: complete(b), WAIT, "lasthop-b's complete health view")
    assert at_promotion == [{Health.INIT}]
    assert b._ready and all(m.state is Health.UP for m in b.machines.values())
    # The old leader's scheduler stopped with its term: its count stays while b's grows.
    stopped = c.asked("lasthop-a")
    seen = c.asked("lasthop-b")
    wait_for(lambda: c.asked("lasthop-b") > seen + 40, WAIT, "more checks by the new leader")
    assert c.asked("lasthop-a") == stopped


def test_of_three_one_takes_over_and_the_other_keeps_following(tmp_path: Path, cluster: MakeCluster) -> None:
    c = cluster(inventory(tmp_path))
    a = c.start("lasthop-a")
    c.start("lasthop-b")
    c.start("lasthop-c")
    wait_for(lambda: complete(a), WAIT, "lasthop-a's complete health view")
    a.stop()
    name = wait_for(lambda: next((n for n in ("lasthop-b", "lasthop-c") if c.daemons[n].leading()), None), WAIT,
                    "a new leader among lasthop-b and lasthop-c")
    other = "lasthop-c" if name == "lasthop-b" else "lasthop-b"
    new = c.daemons[name]
    wait_for(lambda: complete(new), WAIT, f"{name}'s complete health view")
    record = c.store.leader()
    assert record is not None and record.instance == name and record.term == 2
    seen = c.asked(name)
    wait_for(lambda: c.asked(name) > seen + 40, WAIT, "more checks by the new leader")
    assert not c.daemons[other].leading() and c.asked(other) == 0
    wait_for(lambda: follower_sees(c.daemons[other], Health.UP), WAIT, f"{other} seeing {name}'s UP")


def test_a_leader_that_lost_its_session_stops_checking_follows_and_leads_again_afresh(
        tmp_path: Path, cluster: MakeCluster) -> None:
    c = cluster(inventory(tmp_path))
    a = c.start("lasthop-a")
    b = c.start("lasthop-b")
    wait_for(lambda: complete(a), WAIT, "lasthop-a's complete health view")
    assert a.election is not None and a.election._seat is not None
    # The server ends a's leadership session (as a failover of the database, or an admin, would).
    pid = a.election._seat.backend_pid
    with c.store._engine.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar() is True
    wait_for(lambda: b.leading(), WAIT, "lasthop-b leading")
    wait_for(lambda: not a._running, WAIT, "lasthop-a's term torn down")
    assert not a.leading()
    second = c.store.leader()
    assert second is not None and second.instance == "lasthop-b" and second.term == 2
    stopped = c.asked("lasthop-a")
    seen = c.asked("lasthop-b")
    wait_for(lambda: c.asked("lasthop-b") > seen + 40, WAIT, "more checks by the new leader")
    assert c.asked("lasthop-a") == stopped  # lost, not stopped: its scheduler ended all the same
    # a stood again all along: b stops, and a leads a third term, its health rebuilt and checked again.
    b.stop()
    wait_for(lambda: a.leading(), WAIT, "lasthop-a leading again")
    third = c.store.leader()
    assert third is not None and third.instance == "lasthop-a" and third.term == 3
    wait_for(lambda: complete(a), WAIT, "lasthop-a's complete health view in its new term")
    assert c.asked("lasthop-a") > stopped


def test_the_move_cap_counts_the_earlier_leader_s_automatic_move(tmp_path: Path, cluster: MakeCluster) -> None:
    c = cluster(inventory(tmp_path, auto=("www-a", "www-b"), auto_policy=", max_moves: 1"))
    a = c.start("lasthop-a")
    b = c.start("lasthop-b")
    wait_for(lambda: complete(a), WAIT, "lasthop-a's complete health view")
    c.down("web1")
    wait_for(lambda: [x.status for x in c.automatic()] == ["done"], WAIT, "lasthop-a's automatic move of www-a")
    assert c.rig.serving("www-a") == {"web3"}
    c.heal("web1")  # back, and www-a stays on web3 (no fail-back): one host down next is no partition
    a.stop()
    wait_for(lambda: complete(b), WAIT, "lasthop-b leading with a complete health view")
    assert b.auto.recent_moves() == 1  # a's move, read from the store: no fresh allowance
    c.down("web2")  # www-b's host
    cap = "1 automatic move in the last 1h: waiting for a human"
    wait_for(lambda: any(cap in text for text in events(c.store, iv.HOLD)), WAIT, "lasthop-b's hold at the cap")
    assert c.rig.serving("www-b") == {"web2"}
    assert [x.status for x in c.automatic()] == ["done"]


# -- incidents across instances -------------------------------------------------------------------

def test_a_follower_acknowledges_the_leader_s_incident_once_and_the_leader_knows(
        tmp_path: Path, cluster: MakeCluster) -> None:
    c = cluster(inventory(tmp_path, auto=()))
    a = c.start("lasthop-a")
    b = c.start("lasthop-b")
    wait_for(lambda: complete(a), WAIT, "lasthop-a's complete health view")
    c.down("web1")
    [record] = wait_for(lambda: [r for r in c.store.open_incidents() if r.thread_ts], WAIT,
                        "the leader's incident for web1, posted")
    update, already = b.acknowledge(record.id, "U0ALICE")
    assert update is not None and already == ""
    # Said by the follower (as its workflow does) in the thread the leader started: no second page.
    b.announce(update)
    thread = MessageRef(record.channel, record.thread_ts)
    said = c.chats["lasthop-b"]
    assert said.parents() == []
    assert [s.thread for s in said.sent if s.kind == "post"] == [thread]
    assert "U0ALICE is on it" in said.thread_lines()[0]
    assert "acknowledged by" in said.last_version(thread).text
    assert b.acknowledge(record.id, "U0BOB") == (None, "U0ALICE")
    assert a.acknowledge(record.id, "U0BOB") == (None, "U0ALICE")
    stored = c.store.get_incident(record.id)
    assert stored is not None and iv.view_of(stored).acked_by == "U0ALICE"
    assert [e.data.get("by") for e in stored.events if e.kind == iv.ACK] == ["U0ALICE"]


def test_a_follower_knows_the_hosts_flapping_and_in_maintenance(tmp_path: Path, cluster: MakeCluster) -> None:
    inv = serve_inventory(tmp_path, check=CHECK, extra="  flapping: {changes: 2, window: 1h}\n")
    c = cluster(inv)
    a = c.start("lasthop-a")
    b = c.start("lasthop-b")
    wait_for(lambda: complete(a), WAIT, "lasthop-a's complete health view")
    c.down("web2")
    wait_for(lambda: a.machines[("www-b", "web2")].state is Health.DOWN, WAIT, "web2 DOWN on the leader")
    c.heal("web2")
    wait_for(lambda: a.flapping() == {"web2"}, WAIT, "the leader finding web2 flapping")
    # The follower's risk rules (a chat move to web2) and its incident messages ask it the same.
    assert b.flapping() == {"web2"}
    assert b.situation().flapping == frozenset({"web2"})
    # Maintenance set by a command any instance answered: the leader's pass takes it, and the
    # follower's incident messages render from the same set.
    c.store.set_maintenance("web3", by="slack:U0ALICE", reason="disk swap")
    wait_for(lambda: a.situation().maintenance == {"web3"}, WAIT, "the leader taking web3's maintenance")
    assert b.situation().maintenance == {"web3"}


# -- the fence ------------------------------------------------------------------------------------

def test_an_automatic_move_on_a_demoted_daemon_fails_in_the_store_and_leaves_the_router(
        tmp_path: Path, cluster: MakeCluster) -> None:
    c = cluster(inventory(tmp_path, auto=()))  # b decides nothing itself: the move tried is a's alone
    a = c.start("lasthop-a")
    b = c.start("lasthop-b")
    wait_for(lambda: complete(a), WAIT, "lasthop-a's complete health view")
    assert a.election is not None
    a.election.stop()  # a stands down; its engine is still there, as in a process that lost its lease
    wait_for(lambda: complete(b), WAIT, "lasthop-b leading with a complete health view")
    # web1 down, as the new leader publishes it: a move of www-a away from it needs no approval.
    c.down("web1")
    wait_for(lambda: a.snapshot().get(("www-a", "web1")) is Health.DOWN, WAIT, "lasthop-a seeing web1 DOWN")
    router = c.rig.routers["r1"]
    before, applies, sent = router.hops("198.51.100.32/27"), router.applies, len(router.commands)
    outcome = a.engine.run(MoveRequest(kind="service", target="www-a", actor="lasthop", source="auto",
                                       to_host="web3", reason="a decision made while it still led"))
    assert outcome.status == "refused", outcome.lines
    [change] = c.automatic()
    assert change.status == "failed"
    assert "no longer leads" in change.error
    assert any("no longer leads" in line for line in outcome.lines)
    assert router.hops("198.51.100.32/27") == before and router.applies == applies
    assert len(router.commands) == sent  # not one line sent to the router
    assert c.rig.serving("www-a") == {"web1"}


def test_a_leader_that_cannot_start_its_term_stands_down_for_another(tmp_path: Path, cluster: MakeCluster) -> None:
    c = cluster(inventory(tmp_path))
    a = c.make("lasthop-a")

    def broken() -> None:
        raise StateError("state database error: the test's broken rebuild")

    a._prepare = broken  # type: ignore[method-assign]  # its term begins and cannot get going
    a.start()
    wait_for(lambda: (r := c.store.leader()) is not None and r.until is not None, WAIT, "lasthop-a standing down")
    record = c.store.leader()
    assert record is not None and record.instance == "lasthop-a" and "could not start leading" in record.reason
    assert not a.leading() and not a._running and c.asked("lasthop-a") == 0
    b = c.start("lasthop-b")  # a healthy instance gets the seat, and leads with checks running
    wait_for(lambda: complete(b), WAIT, "lasthop-b's complete health view")
    leader = c.store.leader()
    assert leader is not None and leader.leading and leader.instance == "lasthop-b" and leader.term > record.term
