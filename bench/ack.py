"""Benchmark 3, acknowledgement: concurrent signed slash commands while a move runs.

Slack gives an app 3 seconds to answer a slash command with HTTP 200, and lasthop answers
before any work (handlers/commands.py acks, then hands the work to a thread). This measures
that answer under load: a move is started by a signed Confirm click through the same endpoint,
and while it runs `commands` signed `/lasthop status` requests are sent at once, each on its
own connection, from as many threads released together in a client process of its own. Each request's time is from just
before its bytes are sent to the whole HTTP answer read, on the client.

The endpoint is `lasthop serve`'s (bench/_front.py: the real Bolt app, gate and HTTP server);
the engine runs on memory devices (bench/_memory.py) with r1's commit slowed by `move_seconds`,
so the move is certainly running through every round (checked, see details.overlapped).
"""

from __future__ import annotations

import functools
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._front import ROLES, Front, command_body, front, signed_request, wait_until
from bench._memory import Rig, memory_rig
from bench.results import Measurement, Target, percentile
from bot.commands import FailoverCommand
from bot.config import load_inventory
from bot.drivers.base import Transcript
from bot.health.state import Health
from bot.inventory import Inventory

SUMMARY = "acknowledgement: concurrent signed /lasthop status commands during a move; time to HTTP 200, p99"

TARGET_P99 = 0.1  # seconds
INVENTORY = """
defaults: {username: ops, key_file: /k, known_hosts: /kh}
routers:
  r1: {driver: frr, address: 198.18.7.11, lan: [192.0.2.0/27]}
hosts:
  web1: {address: 192.0.2.2}
  web2: {address: 192.0.2.3}
  web3: {address: 192.0.2.4}
services:
  www-a: {prefix: 198.51.100.32/27, router: r1, hosts: [web1, web2, web3], vips: [198.51.100.33]}
  www-b: {prefix: 198.51.100.64/27, router: r1, hosts: [web2, web3, web1], vips: [198.51.100.65]}
"""
HOME = {"www-a": "web1", "www-b": "web2"}
BURST = Path(__file__).resolve().with_name("_burst.py")


@dataclass
class Settings:
    commands: int = field(default=50, metadata={"help": "concurrent slash commands per round"})
    rounds: int = field(default=3, metadata={"help": "rounds, one move each"})
    move_seconds: float = field(default=2.0, metadata={"help": "how long r1's commit takes (the move runs through)"})

    def __post_init__(self) -> None:
        if not 1 <= self.commands <= 500 or not 1 <= self.rounds <= 20:
            raise ValueError("commands 1-500 and rounds 1-20")
        if not 0.1 <= self.move_seconds <= 30:
            raise ValueError("move_seconds must be 0.1-30")

    @classmethod
    def tiny(cls) -> Settings:
        return cls(commands=5, rounds=1, move_seconds=0.5)


@dataclass
class Round:
    acks: list[float]  # seconds to the HTTP answer, client side, one per command
    server: list[float]  # the endpoint handler's own time (gate, Bolt, the ack), one per command
    statuses: list[int]
    overlapped: bool  # the move was running from before the first command to after the last answer


def inventory(directory: Path) -> Inventory:
    path = directory / "lasthop.yaml"
    path.write_text(f"state_url: sqlite:///{directory}/lasthop.db\n{INVENTORY}{ROLES}")
    return load_inventory(path, env={}, check_files=False)


def _serves(rig: Rig, host: str) -> bool:
    return rig.serving("www-a") == {host}


def _done(rig: Rig, moves: int) -> bool:
    return sum(1 for c in rig.store.recent_changes(limit=50) if c.status == "done") >= moves


def burst(f: Front, n: int) -> list[tuple[int, float]]:
    """`n` signed `/lasthop status` requests at once, from a client process of its own (bench/_burst.py),
    so that the client's threads do not compete with lasthop's for this process's GIL; (status, seconds) each."""
    umbrella = f.workflow.inv.slack.commands.umbrella
    raws = [signed_request(command_body(umbrella, "status", f.standin.new_response_url())) for _ in range(n)]
    job = json.dumps({"port": f.port, "requests": [r.decode("latin-1") for r in raws]})
    try:
        done = subprocess.run([sys.executable, str(BURST)], input=job, capture_output=True, text=True,
                              timeout=60, check=False)
    except subprocess.TimeoutExpired:
        raise RuntimeError("the burst of commands did not finish within 60 s") from None
    if done.returncode != 0:
        raise RuntimeError(f"the burst client failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    got = [(int(s), float(t)) for s, t in json.loads(done.stdout)]
    if any(s == 0 for s, _ in got):
        raise RuntimeError(f"{sum(1 for s, _ in got if s == 0)} of {n} commands got no HTTP answer")
    return got


def run(settings: Settings) -> Measurement:
    rounds: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="lasthop-bench-ack-") as tmp:
        inv = inventory(Path(tmp))
        rig = memory_rig(inv, Path(tmp), HOME, {("www-a", "web1"): Health.DOWN})
        r1 = rig.routers["r1"]
        commit = r1.commit
        moving = threading.Event()
        moved = threading.Event()

        def slow_commit(*, confirm_timeout: float = 10.0) -> Transcript:
            moving.set()
            time.sleep(settings.move_seconds)  # a router that takes its time: the move is I/O wait
            try:
                return commit(confirm_timeout=confirm_timeout)
            finally:
                moved.set()

        setattr(r1, "commit", slow_commit)  # noqa: B010 - this one router instance only
        try:
            with front(inv, rig.engine, rig.store) as f:
                for i in range(settings.rounds):
                    # Back and forth, from the host that is down: each move is safe, a plan to confirm.
                    src, dst = ("web1", "web2") if i % 2 == 0 else ("web2", "web1")
                    # The memory store's clock stands still unless moved: changes one round apart must
                    # not share a start time, or the history cannot tell which came last.
                    rig.clock.advance(minutes=1)
                    rig.health.mark("www-a", src, Health.DOWN)
                    rig.health.mark("www-a", dst, Health.UP)
                    moving.clear()
                    moved.clear()
                    answer = f.workflow.request(f.operator, FailoverCommand("www-a", dst))
                    if answer.offer is None or answer.offer.kind != "confirm":
                        raise RuntimeError(f"expected a plan to confirm, got: {answer.message.fallback}")
                    status, _ = f.click("lh.confirm.0", answer.offer.approval_id, f.standin.new_response_url())
                    if status != 200:
                        raise RuntimeError(f"the Confirm click was answered HTTP {status}")
                    wait_until(moving.is_set, what="the move's start")
                    seen = len(f.received)
                    got = burst(f, settings.commands)
                    overlapped = not moved.is_set()
                    wait_until(functools.partial(_done, rig, i + 1), timeout=settings.move_seconds + 10,
                               what="the move")
                    if not _serves(rig, dst):
                        raise RuntimeError(f"the move to {dst} ended without r1 pointing at it")
                    with f.lock:
                        server = [r.end - r.start for r in f.received[seen:]]
                    rounds.append(Round([s for _, s in got], server, [c for c, _ in got], overlapped))
        finally:
            rig.close()
    return measure(settings, rounds)


def measure(settings: Settings, rounds: list[Round]) -> Measurement:
    acks = [a for r in rounds for a in r.acks]
    server = [s for r in rounds for s in r.server]
    statuses = [s for r in rounds for s in r.statuses]
    p99 = percentile(acks, 0.99)
    not_ok = sum(1 for s in statuses if s != 200)
    notes = [
        f"{len(acks)} commands: {settings.rounds} round(s) of {settings.commands} at once, each during a move; "
        f"p50 {statistics.median(acks) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms",
        "time from just before a request's bytes are sent to its whole answer read, client side, one new "
        "connection per request (as Slack connects); stages: the endpoint handler's own time (gate, Bolt, ack) "
        "and the rest (accepting the connection, reading the request, threads waiting for the GIL)",
        "the move runs on memory devices whose commit sleeps move_seconds: a real move is mostly waiting on SSH, "
        "and the ack never touches a device, so what loads the ack is the move's thread and the 'status' work "
        "each command hands to lasthop's 8 worker threads",
    ]
    if not_ok:
        notes.append(f"{not_ok} of {len(statuses)} answers were not HTTP 200")
    if not all(r.overlapped for r in rounds):
        notes.append("in some round the move finished before the last answer: raise move_seconds")
    handler = statistics.median(server) if server else 0.0
    return Measurement(
        metric="slash command time to HTTP 200 during a move", unit="s", better="lower", samples=acks,
        stages={"handler": handler, "connection_and_wait": max(0.0, statistics.median(acks) - handler)},
        targets=[Target.judge("ack p99", p99, TARGET_P99, "s", at_least=False)],
        notes=notes,
        details={"p50": statistics.median(acks), "p99": p99, "max": max(acks),
                 "handler_p50": handler, "handler_p99": percentile(server, 0.99) if server else 0.0,
                 "not_200": not_ok, "overlapped": [r.overlapped for r in rounds],
                 "rounds": [{"acks": r.acks, "handler": r.server, "statuses": r.statuses} for r in rounds]},
    )


def plot(result: Any, figure: Any) -> None:
    """The distribution of the acknowledgement times, with the target."""
    ax = figure.add_subplot(1, 1, 1)
    ax.hist([a * 1000 for a in result.samples], bins=30)
    ax.axvline(TARGET_P99 * 1000, color="black", linestyle="--", linewidth=1, label="target p99")
    ax.set_xlabel("ms to HTTP 200")
    ax.set_ylabel("commands")
    ax.set_title(f"{result.settings.get('commands')} concurrent slash commands during a move")
    ax.legend(fontsize="small")
