"""A `lasthop serve` daemon driven by hand: check results the test chooses, no threads, no sockets.

The daemon runs as in production except for who calls it. Its checks answer from `Checks`
(a host is down when the test says so), its engine moves memory routers (`memory_rig`), and
`round()` does what the scheduler's writer thread and the mover thread would: every target
is checked once, in order, each result goes to the daemon's own result handler, and each
automatic move it queued runs before the next result, one at a time like the mover.

`ManualScheduler` stands in for the check scheduler: the daemon only ever asks it to run
something on the writer thread (`call_soon`) or to check a target sooner (`set_next`); both
are kept for the next round, so nothing runs behind the test's back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

from bot import plain
from bot.chat import Message, MessageRef
from bot.health.checks import CheckResult
from bot.health.machine import TargetKey
from bot.health.scheduler import CheckJob
from bot.health.state import Health
from bot.incident_view import IncidentView, view_of
from bot.inventory import CheckSpec, Inventory
from bot.serve import Daemon, ServeSettings
from bot.state import IncidentRecord
from support.fakes import ManualClock, inventory_from_text
from support.lan import THREE_HOSTS
from support.memory import Rig, memory_rig


@dataclass
class Checks:
    """The daemon's check function: an address answers unless the test marked it down."""

    down: set[IPv4Address] = field(default_factory=set)
    asked: list[IPv4Address] = field(default_factory=list)
    slow: dict[IPv4Address, float] = field(default_factory=dict)  # seconds an address takes to answer

    def __call__(self, address: IPv4Address, check: CheckSpec, source: IPv4Address | None) -> CheckResult:
        self.asked.append(address)
        if address in self.slow:
            time.sleep(self.slow[address])  # real time: the daemon times its checks with time.monotonic
        if address in self.down:
            return CheckResult(False, f"{check.kind}://{address}:{check.port}: connection refused", 0.0)
        return CheckResult(True, f"{check.kind}://{address}:{check.port}: 200", 0.0)


@dataclass(frozen=True)
class Said:
    kind: str  # "post" | "update"
    ref: MessageRef
    message: Message
    thread: MessageRef | None

    @property
    def text(self) -> str:
        return plain.render(self.message)


@dataclass
class Chat:
    """A ChatOut that keeps every message whole (its buttons too) and which thread it went to."""

    sent: list[Said] = field(default_factory=list)

    def post(self, channel: str, message: Message, *,
             thread: MessageRef | Future[MessageRef] | None = None) -> Future[MessageRef]:
        parent = thread.result(timeout=0) if isinstance(thread, Future) else thread
        ref = MessageRef(channel, str(len(self.sent) + 1))
        self.sent.append(Said("post", ref, message, parent))
        return _done(ref)

    def update(self, ref: MessageRef, message: Message) -> Future[MessageRef]:
        self.sent.append(Said("update", ref, message, None))
        return _done(ref)

    def parents(self) -> list[Said]:
        """Posts to the channel itself, not into a thread: what pages people."""
        return [s for s in self.sent if s.kind == "post" and s.thread is None]

    def thread_lines(self) -> list[str]:
        return [s.text for s in self.sent if s.kind == "post" and s.thread is not None]

    def last_version(self, ref: MessageRef) -> Said:
        """A parent message as it reads now: its last update, else the post itself."""
        return next(s for s in reversed(self.sent) if s.ref == ref)


def _done(ref: MessageRef) -> Future[MessageRef]:
    f: Future[MessageRef] = Future()
    f.set_result(ref)
    return f


class ManualScheduler:
    """What the daemon asks of its check scheduler, kept for the test's next round."""

    def __init__(self) -> None:
        self.jobs: list[CheckJob] = []
        self.soon: list[Callable[[], None]] = []
        self.sooner: list[TargetKey] = []  # set_next(key, 0): "check this again now"
        self.delays: dict[TargetKey, float] = {}  # the last delay asked for each target
        self.on_lateness: Callable[[float], None] | None = None

    def add(self, job: CheckJob, *, first_delay: float = 0.0) -> None:
        self.jobs.append(job)

    def set_next(self, key: TargetKey, delay: float) -> None:
        self.delays[key] = delay
        if delay == 0.0:
            self.sooner.append(key)

    def call_soon(self, fn: Callable[[], None]) -> None:
        self.soon.append(fn)


class DaemonRig:
    """A daemon over memory devices and a real SQLite store, on a clock the test moves."""

    def __init__(self, inv: Inventory, tmp_path: Path, routes: dict[str, str],
                 settings: ServeSettings | None = None) -> None:
        self.rig: Rig = memory_rig(inv, tmp_path, routes)
        self.inv = inv
        self.store = self.rig.store
        self.clock = ManualClock()
        self.checks = Checks()
        self.chat = Chat()
        self.daemon = Daemon(inv, self.store, self.chat, clock=self.clock, check=self.checks,
                             devices=self.rig.engine.devices, settings=settings or ServeSettings(remind_after=0.0))
        # False: each queued move runs before the next result (a mover that is never behind).
        # True: queued moves wait for run_moves(), as results keep arriving while a move runs.
        self.hold_moves = False
        self.settings = settings or ServeSettings(remind_after=0.0)
        self._start()

    def _start(self) -> None:
        self.scheduler = ManualScheduler()
        self.daemon.scheduler = self.scheduler  # type: ignore[assignment]
        self.daemon._prepare()
        for job, _ in self.daemon._jobs():
            self.scheduler.add(job)

    def restart(self) -> None:
        """The process died (nothing of it ran on) and a new one starts over the same store, routers
        and channel. Its router sessions know nothing of the dead one's, and the dead one's router
        locks are free, as the store's liveness check makes them."""
        for router in self.rig.routers.values():
            router._pending, router._committed = False, ()
        for name in self.rig.routers:
            lock = self.store.lock_info(name)
            if lock is not None:
                self.store.release_lock(name, holder=lock.holder)
        self.daemon = Daemon(self.inv, self.store, self.chat, clock=self.clock, check=self.checks,
                             devices=self.rig.engine.devices, settings=self.settings)
        self._start()

    def close(self) -> None:
        self.daemon.engine.close()
        self.rig.close()

    # -- driving it ------------------------------------------------------------------------
    def down(self, *hosts: str) -> None:
        self.checks.down |= {self.inv.hosts[h].address for h in hosts}

    def heal(self, *hosts: str) -> None:
        self.checks.down -= {self.inv.hosts[h].address for h in hosts}

    def round(self, seconds: float = 1.0) -> None:
        """Every target checked once, `seconds` after the last round; queued moves run as they come."""
        self.advance(seconds)
        self._soon()
        for job in self.scheduler.jobs:
            ok, detail = self.daemon._run(job)
            self.daemon._on_result(job, ok, detail, 0.0)
            if not self.hold_moves:
                self.run_moves()
            self._soon()

    def advance(self, seconds: float) -> None:
        """Time passes, on the daemon's clock and the store's alike."""
        self.clock.now += seconds
        self.rig.clock.advance(seconds=seconds)

    def rounds(self, n: int, seconds: float = 1.0) -> None:
        for _ in range(n):
            self.round(seconds)

    def flap(self, host: str, times: int, *, fall: int, rise: int) -> None:
        """`host` goes down and comes back `times` times: two health changes each."""
        for _ in range(times):
            self.down(host)
            self.rounds(fall)
            self.heal(host)
            self.rounds(rise)

    def housekeeping(self) -> None:
        """One pass of the housekeeping thread's timed work, on the writer as in production."""
        self.scheduler.call_soon(lambda: self.daemon._tick(set(self.store.maintenance())))
        self._soon()
        if not self.hold_moves:
            self.run_moves()

    def ready(self) -> None:
        """Rounds of passing checks until every target is UP and automatic actions are on."""
        for _ in range(10):
            if self.daemon._ready and all(m.state is Health.UP for m in self.daemon.machines.values()):
                return
            self.round()
        raise AssertionError(f"not ready: {self.daemon.snapshot()}")

    def _soon(self) -> None:
        while self.scheduler.soon:
            self.scheduler.soon.pop(0)()

    def run_moves(self) -> None:
        """What the mover thread does with the moves queued so far: each in turn, to the end."""
        queued = self.daemon._moves
        while not queued.empty():
            req = queued.get_nowait()
            assert req is not None
            self.daemon._run_move(req)

    # -- reading it ------------------------------------------------------------------------
    def state(self, service: str, host: str) -> Health:
        return self.daemon.machines[(service, host)].state

    def incidents(self) -> list[IncidentRecord]:
        return self.store.open_incidents()

    def all_incidents(self) -> list[IncidentRecord]:
        """Every incident ever opened, resolved ones too, oldest first (ids count up from 1)."""
        records: list[IncidentRecord] = []
        while (record := self.store.get_incident(len(records) + 1)) is not None:
            records.append(record)
        return records

    def incident(self) -> IncidentView:
        """The only incident there is, open or resolved."""
        records = self.all_incidents()
        assert len(records) == 1, [r.title for r in records]
        return view_of(records[0])

    def said(self) -> str:
        return "\n".join(s.text for s in self.chat.sent)


def daemon_rig(inv: Inventory, tmp_path: Path, routes: dict[str, str],
               settings: ServeSettings | None = None) -> Iterator[DaemonRig]:
    """For a fixture: a ready daemon (every target UP), closed afterwards."""
    d = DaemonRig(inv, tmp_path, routes, settings)
    try:
        d.ready()
        yield d
    finally:
        d.close()


def serve_inventory(tmp_path: Path, *, auto: tuple[str, ...] = (), enabled: bool = True,
                    auto_policy: str = "", extra: str = "", check: str = "") -> Inventory:
    """THREE_HOSTS with automatic failover on for the services in `auto`; `auto_policy` adds
    `policy.auto_failover` keys (", max_moves: 1"), `extra` more `policy:` keys (as indented YAML),
    `check` every service's check settings ("{rise: 3}")."""
    text = THREE_HOSTS
    for service in auto:
        text = text.replace(f"  {service}: {{", f"  {service}: {{auto_failover: true, ")
    if check:
        text = text.replace(", vips:", f", check: {check}, vips:")
    text += f"policy:\n  auto_failover: {{enabled: {'true' if enabled else 'false'}{auto_policy}}}\n{extra}"
    return inventory_from_text(tmp_path, text)
