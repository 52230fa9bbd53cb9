"""Three real `lasthop serve` processes on one PostgreSQL store and the lab: one leader, no double moves.

Each instance is the CLI in its own process with its own HTTP port, all posting to one Slack
stand-in. The store says who leads; r1's FIB, read by lasthop's own driver, says what moved.
Needs root (the lab) and the machine's PostgreSQL; CI runs these as root with PostgreSQL started.
Every wait is a bounded poll: the takeover time is the benchmark's (bench/takeover.py), not asserted.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
from support.instances import SECRET, STATE_URL_ENV, Cluster, Instance, ha_config, leader_now
from support.labtools import lasthop, wait_for
from support.pg import scratch_database
from support.slack_reading import buttons, incident_parents
from support.slack_reading import thread_text as read_thread
from support.tcp_proxy import TcpProxy

from bench._slack_standin import SlackStandIn, block_action_body, post, sign
from bot import faults
from bot.config import load_inventory
from bot.drivers import DeviceSpec, make_router_driver
from bot.manifest import build_manifest
from bot.state import ChangeRecord, StateStore
from lab import Lab, sshd

pytestmark = pytest.mark.lab

OPS, ALERTS = "C0OPS", "C0ALERTS"
ALICE, BOB = "U0ALICE", "U0BOB"
A = IPv4Network("198.51.100.32/27")
VIP_A = IPv4Address("198.51.100.33")
WEB1, WEB2 = IPv4Address("198.51.100.2"), IPv4Address("198.51.100.3")
NAMES = ("lasthop-a", "lasthop-b", "lasthop-c")


class HA:
    """The three instances, their store, the Slack stand-in and r1, for one test."""

    def __init__(self, lab: Lab, tmp: Path, url: str, standin: SlackStandIn, *, auto: bool) -> None:
        self.lab, self.tmp, self.url, self.standin = lab, tmp, url, standin
        self.auto = auto
        self.config = ha_config(lab.inventory, tmp / "lasthop.yaml", alert_channel=ALERTS, channels=[OPS, ALERTS],
                                operators=[ALICE, BOB], approvers=[ALICE, BOB], auto=auto)
        self.store = StateStore(url)
        self.cluster = Cluster(tmp, {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET,
                                     "SLACK_API_URL": standin.api_url})

    def start(self, name: str, *, state_url: str | None = None, env: dict[str, str] | None = None) -> Instance:
        return self.cluster.start(name, self.config, state_url or self.url, extra_env=env)

    def leader(self) -> str | None:
        record = leader_now(self.store)
        return record.instance if record is not None else None

    def wait_leader(self, among: tuple[str, ...], what: str, timeout: float = 30) -> str:
        return str(wait_for(lambda: (name := self.leader()) in among and name, timeout, what))

    def wait_ready(self, instance: Instance, timeout: float = 60) -> None:
        """The leader's health view is complete (its log says so), and every instance answers HTTP."""
        wait_for(lambda: "health view complete" in instance.output(), timeout, f"{instance.name}'s health view")

    def fib(self) -> set[IPv4Address]:
        inv = load_inventory(self.lab.inventory)
        device = self.lab.plan.device("r1")
        spec = DeviceSpec("r1", str(device.address), sshd.login(device), self.lab.known_hosts,
                          key_file=self.lab.key_file)
        with make_router_driver(inv.routers["r1"].driver, spec) as d:
            return d.fib_next_hops(A)

    def www_a_changes(self) -> list[ChangeRecord]:
        return [c for c in self.store.recent_changes(limit=50) if any(m.get("prefix") == str(A) for m in c.moves)]

    def close(self) -> None:
        self.cluster.stop()
        self.store.close()


@pytest.fixture
def ha(lab: Lab, lab_home: None, tmp_path: Path) -> Iterator[Callable[..., HA]]:
    made: list[HA] = []
    stack: list[Any] = []

    def make(*, auto: bool) -> HA:
        db = scratch_database("lasthop_ha")
        url = db.__enter__()
        stack.append(db)
        standin = SlackStandIn().start()
        stack.append(standin)
        standin.install(build_manifest(load_inventory(lab.inventory).slack.commands, mode="http",
                                       request_url="https://lasthop.example.net/slack/events"))
        h = HA(lab, tmp_path, url, standin, auto=auto)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()
        for i in h.cluster.started:  # shown by pytest only when the test failed
            print(f"--- {i.name} ---\n{i.output()[-6000:]}")
    for thing in reversed(stack):
        if isinstance(thing, SlackStandIn):
            thing.close()
        else:
            thing.__exit__(None, None, None)
    lab.heal("web1")


def thread_text(standin: SlackStandIn, ts: str) -> str:
    return read_thread(standin, ALERTS, ts)


# ------------------------------------------------------------------ SIGKILL of the leader mid-move


def test_the_leader_killed_mid_move_is_replaced_and_the_move_finished_once_in_the_same_thread(
        ha: Callable[..., HA]) -> None:
    h = ha(auto=True)
    # lasthop-a dies by SIGKILL after its automatic move's commit, before verifying it: a half-done move.
    a = h.start("lasthop-a", env={faults.ENV: "before_verify=kill"})
    h.wait_leader(("lasthop-a",), "lasthop-a leading")
    h.wait_ready(a)
    b, c = h.start("lasthop-b"), h.start("lasthop-c")
    wait_for(lambda: b.healthy() and c.healthy(), 60, "the followers answering HTTP")
    assert h.leader() == "lasthop-a" and h.fib() == {WEB1}

    h.lab.break_host("web1")
    wait_for(lambda: not a.alive(), 60, "lasthop-a killed at its fault point, mid-move")
    killed = time.monotonic()
    new = h.wait_leader(("lasthop-b", "lasthop-c"), "a survivor leading")
    print(f"\nnew leader {new} {time.monotonic() - killed:.2f} s after the kill")

    # The new leader settles the half-done change against the router: finished, verified, once.
    wait_for(lambda: h.fib() == {WEB2}, 60, "www-a on web2 alone in r1's FIB")
    wait_for(lambda: [c.status for c in h.www_a_changes()] == ["done"], 60, "the one change settled done")
    (parent,) = wait_for(lambda: incident_parents(h.standin, ALERTS), 30, "the incident's parent")
    wait_for(lambda: "lasthop finished a change left half done" in thread_text(h.standin, parent["ts"]), 60,
             "the settlement told in the incident's own thread")
    # Health rebuilt on the new leader: web1 still down, www-a already on web2: no second move.
    survivor = next(i for i in (b, c) if i.name == new)
    wait_for(lambda: "health view complete" in survivor.output(), 60, f"{new}'s health view")
    time.sleep(3)  # a few check rounds in which a wrong leader would move again
    changes = h.www_a_changes()
    assert [c.status for c in changes] == ["done"], changes
    assert len(incident_parents(h.standin, ALERTS)) == 1  # the same incident, the same thread
    told = [m["text"] for m in h.standin.channel_messages(ALERTS) if "now leads lasthop" in m.get("text", "")]
    assert told == [f":twisted_rightwards_arrows: {new} now leads lasthop (term 2): lasthop-a stopped leading "
                    "without standing down (its session ended). Checks, incidents and automatic moves go on "
                    "from here."]
    assert h.fib() == {WEB2} and h.lab.client_get(VIP_A) == "web2"
    assert h.leader() == new and b.alive() and c.alive()
    other = c if new == b.name else b
    assert "stands down" not in other.output() and "Traceback" not in survivor.output() + other.output()


# ------------------------------------------------------------------ one approval, 100 clicks, 3 instances


def test_a_hundred_clicks_on_one_approval_over_three_instances_run_it_once(ha: Callable[..., HA]) -> None:
    h = ha(auto=False)
    instances = [h.start(name) for name in NAMES]
    leader = h.wait_leader(NAMES, "one of the three leading")
    h.wait_ready(next(i for i in instances if i.name == leader))
    wait_for(lambda: all(i.healthy() for i in instances), 60, "all three answering HTTP")
    asker = next(i for i in instances if i.name != leader)
    led = leader_now(h.store)
    assert led is not None
    wait_for(lambda: set(h.store.published_health(led.term).values()) == {"up"}, 30, "the leader's health published")
    # A follower's status: the leader by name and term, and the leader's health view (web1 up, so risky).
    status_url = h.standin.new_response_url()
    body = h.standin.slash_command_body("/vip-status", "", user_id=BOB, channel_id=OPS, response_url=status_url)
    assert post(asker.events_url, body, sign(body, SECRET), timeout=3)[0] == 200
    status = json.dumps(h.standin.wait_for_response(status_url, timeout=30))
    term = leader_now(h.store)
    assert term is not None and f"leader: {leader} (" in status and f"term {term.term}" in status
    # Risky (web1 is healthy): ALICE asks on one follower, and the approval is posted for a second person.
    response_url = h.standin.new_response_url()
    body = h.standin.slash_command_body("/failover", "www-a to web2", user_id=ALICE, channel_id=OPS,
                                        response_url=response_url)
    status, _, _ = post(asker.events_url, body, sign(body, SECRET), timeout=3)
    assert status == 200
    reply = json.dumps(h.standin.wait_for_response(response_url, timeout=30))
    # Risky because web1 is healthy, as the leader's published health says; not because it is unknown here.
    assert "needs a second person" in reply and "healthy" in reply and "not known good" not in reply
    message = wait_for(lambda: next((m for m in h.standin.channel_messages(ALERTS) if "approve" in buttons(m)),
                                    None), 30, "the approval request")
    approve, ts = buttons(message)["approve"], message["ts"]

    statuses: list[int] = []
    start = threading.Barrier(20)

    def clicks(n: int) -> None:
        start.wait(30)
        for k in range(5):
            target = instances[(n * 5 + k) % 3]
            click = block_action_body(approve["action_id"], approve["value"], user_id=BOB, channel_id=ALERTS,
                                      message_ts=ts, response_url=h.standin.new_response_url())
            statuses.append(post(target.events_url, click, sign(click, SECRET), timeout=10)[0])

    threads = [threading.Thread(target=clicks, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(statuses) == 100 and set(statuses) == {200}
    wait_for(lambda: [c.status for c in h.www_a_changes()] == ["done"], 60, "the approved move, done")
    wait_for(lambda: "Done" in h.standin.message(ALERTS, ts)["text"], 30, "the request replaced by its outcome")
    time.sleep(2)  # clicks still being handled would show as a second change now
    assert [c.status for c in h.www_a_changes()] == ["done"]
    moves = [r for r in h.store.history(limit=500) if r.action == "move" and r.result == "done"]
    assert len(moves) == 1
    assert h.fib() == {WEB2}


# ------------------------------------------------------------------ the leader cut off from the database


_STOOD_DOWN = re.compile(r"^(\S+ \S+) WARNING lasthop\.leader: lasthop-a stands down", re.M)


def test_a_leader_cut_off_from_the_database_stands_down_before_another_leads(ha: Callable[..., HA]) -> None:
    h = ha(auto=True)
    from sqlalchemy.engine import make_url

    pg = make_url(h.url)
    with TcpProxy((str(pg.host), int(pg.port or 5432)), max_connections=64) as proxy:
        host, port = proxy.address
        via_proxy = pg.set(host=host, port=port).render_as_string(hide_password=False)
        a = h.start("lasthop-a", state_url=via_proxy)
        h.wait_leader(("lasthop-a",), "lasthop-a leading")
        h.wait_ready(a)
        b = h.start("lasthop-b")
        wait_for(b.healthy, 60, "lasthop-b answering HTTP")
        term_a = leader_now(h.store)
        assert term_a is not None and term_a.instance == "lasthop-a"

        proxy.stall()  # every byte between lasthop-a and PostgreSQL is held: a network cut, not a close
        wait_for(lambda: h.leader() == "lasthop-b", 30, "lasthop-b leading")
        record = leader_now(h.store)
        assert record is not None and record.term > term_a.term
        stood = wait_for(lambda: _STOOD_DOWN.search(a.output()), 30, "lasthop-a's log saying it stood down")
        # Both clocks are this machine's: lasthop-a's log line and the store's record of lasthop-b's term.
        from datetime import UTC, datetime

        down_at = datetime.strptime(stood.group(1), "%Y-%m-%d %H:%M:%S,%f").astimezone(UTC)
        assert down_at < record.since, (down_at, record.since)
        assert a.alive() and a.healthy()  # demoted, not dead: it still answers chat
        proxy.resume()
        time.sleep(2)
        assert h.leader() == "lasthop-b"  # back on the network, lasthop-a follows


# ------------------------------------------------------------------ SQLite: one instance only


def test_a_second_serve_on_one_sqlite_store_is_refused_in_one_line(lab: Lab, lab_home: None, tmp_path: Path) -> None:
    config = ha_config(lab.inventory, tmp_path / "lasthop.yaml", alert_channel=ALERTS, channels=[OPS, ALERTS],
                       operators=[ALICE], approvers=[BOB], auto=False)
    db = tmp_path / "state" / "lasthop.db"
    cluster = Cluster(tmp_path, {})
    try:
        first = cluster.start("lasthop-a", config, f"sqlite:///{db}")
        wait_for(lambda: "instance lasthop-a leads" in first.output(), 60, "the first serve leading")
        second = cluster.start("lasthop-b", config, f"sqlite:///{db}")
        assert second.proc.wait(60) == 1
        refusal = [line for line in second.output().splitlines() if "already uses" in line]
        assert refusal == [f"lasthop serve: another lasthop serve (pid {first.proc.pid}) already uses the SQLite "
                           f"state database {db}; SQLite is for one instance: stop it, or put every instance on "
                           "PostgreSQL (state_url: postgresql://USER@HOST/DB)"]
        assert "Traceback" not in second.output() and first.alive() and first.healthy()
    finally:
        cluster.stop()


# ------------------------------------------------------------------ the console on a shared store


def test_the_console_on_a_shared_store_follows_the_serve_that_leads(ha: Callable[..., HA]) -> None:
    h = ha(auto=True)
    a = h.start("lasthop-a")
    h.wait_leader(("lasthop-a",), "lasthop-a leading")
    h.wait_ready(a)
    script = h.tmp / "console.txt"
    script.write_text("/lasthop status\n")
    shown = lasthop("console", "--config", str(h.config), "--script", str(script), "--user", "bob",
                    env={STATE_URL_ENV: h.url})
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "lasthop-a leads and runs the checks; this console follows" in shown.stdout
    assert "leader: lasthop-a (" in shown.stdout and "Traceback" not in shown.stdout + shown.stderr
    # It never stood for leader in earnest: lasthop-a led throughout, in its first term.
    record = leader_now(h.store)
    assert record is not None and (record.instance, record.term) == ("lasthop-a", 1)
