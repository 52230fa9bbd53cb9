"""Devices in memory, for unit tests of the logic above them (workflow, views, engine); lab tests prove the real path.

- `MemoryRouter`: a RouterDriver whose forwarding table is a dict prefix -> next hops. Its
  `_apply` adds each new next hop before it removes the old one, as the real drivers must,
  and writes each step into the transcript. `fail_next("apply" | "verify")` makes the next
  change fail: the device refuses it, or takes the commands without the FIB ever showing them.
- `MemoryHost`: a HostVerifier whose loopback is a set of VIPs.
- `DictHealth`: a health source that answers from a dict, checks included.
- `memory_rig()`: an Engine over those, with a real SQLite StateStore, whose clock the test sets.

Waiting for the FIB runs on a virtual clock: a verification that cannot succeed fails at once,
without sleeping for `verify_timeout`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Literal

from sqlalchemy import text

from bot.drivers import driver_class
from bot.drivers.base import (
    ConfigBlock,
    DeviceSpec,
    ExecLine,
    RevertSupport,
    RouterDriver,
    StaticRoute,
    Step,
    Transcript,
)
from bot.drivers.errors import CommandRejected
from bot.drivers.host import HostVerifier, LoopbackReport, VipCheck
from bot.drivers.parsers.host import LoopbackAddress
from bot.engine.devices import Devices
from bot.engine.pipeline import Engine
from bot.health.checks import CheckResult
from bot.health.state import Health
from bot.inventory import Inventory
from bot.state import LockInfo, StateStore

FailStep = Literal["apply", "verify", "settle"]
# The FIB and the configured-but-not-installed routes, as a revert or a rollback puts them back.
_Snapshot = tuple[dict[IPv4Network, set[IPv4Address]], set[tuple[IPv4Network, IPv4Address]]]


def _spec(name: str) -> DeviceSpec:
    return DeviceSpec(name=name, address="198.18.0.1", username="test", known_hosts=Path("/nonexistent"))


_ROUTE = re.compile(r"^(no )?ip route (?:(?P<net>[\d.]+/\d+)|(?P<addr>[\d.]+) (?P<mask>[\d.]+)) (?P<hop>[\d.]+)$")
_JUNOS = re.compile(r"^(?P<verb>set|delete) routing-options static route (?P<net>[\d.]+/\d+) next-hop (?P<hop>[\d.]+)$")
_EOS_CONFIRM = re.compile(r"^configure session [\w-]+ commit$")
_EOS_ABORT = re.compile(r"^configure session [\w-]+ abort$")
_LINUX = re.compile(r"^ip route (?P<verb>replace|del) (?P<net>[\d.]+/\d+) via (?P<hop>[\d.]+) proto static$")


class MemoryRouter(RouterDriver):
    """A router whose FIB is `table`, speaking a real kind's dialect (`kind`), every line recorded.

    It interprets the lines the real driver would send (`ip route`, `no ip route`, IOS's mask
    form, Linux's `ip route replace|del`, Junos' `set|delete routing-options static route`), so
    what a plan shows is what changes this table; Junos and EOS lines wait in a candidate for
    their commit. With a device-side revert (IOS's `configure terminal revert timer N`, Junos'
    `commit confirmed N`, EOS's `commit timer T`) it keeps the configuration from before and puts
    it back on the cancel (`configure revert now`, Junos' `rollback 1` + `commit`, `configure
    session NAME abort`), or when the test fires the timer (`fire_revert_timer()`) before the
    confirmation (`configure confirm`, a Junos `commit`, `configure session NAME commit`) came.
    """

    kind = "memory"
    saves = True
    revert_support = RevertSupport(1, 7 * 86400)  # the dialect's own limits are the config's to check

    def __init__(self, name: str, table: Mapping[IPv4Network, Iterable[IPv4Address]] | None = None, *,
                 kind: str = "frr", revert_seconds: int | None = None) -> None:
        super().__init__(_spec(name), revert_seconds=revert_seconds)
        self.borrowed = driver_class(kind)
        self.table: dict[IPv4Network, set[IPv4Address]] = {p: set(h) for p, h in (table or {}).items()}
        self.accepted: set[tuple[IPv4Network, IPv4Address]] = set()  # configured, never in the FIB
        self.commands: list[str] = []  # every line of every change, rollback, confirm and save, in order
        self.applies = 0  # commits and rollbacks: the engine's changes and their undoing
        self.saves_done = 0
        self.closes = 0
        self.armed: _Snapshot | None = None  # what the device's revert timer puts back
        self.previous: _Snapshot | None = None  # before the last commit: Junos `rollback 1`
        self._failing: list[FailStep] = []
        self._mode: FailStep | None = None
        self._now = 0.0  # the virtual clock wait_for_fib polls on

    @property
    def dialect(self) -> type[RouterDriver]:
        return self.borrowed

    @classmethod
    def _steps(cls, adds: Sequence[tuple[IPv4Network, IPv4Address]],
               removes: Sequence[tuple[IPv4Network, IPv4Address]],
               waits: Sequence[tuple[IPv4Network, IPv4Address]], revert_seconds: int | None) -> list[Step]:
        raise AssertionError("a memory router renders with its dialect, never its own class")

    def fail_next(self, step: FailStep, times: int = 1) -> None:
        """The next `times` commits or rollbacks fail at `step`: the device refuses the first route
        line ("apply"), takes every line without the FIB ever showing them ("verify"), or
        installs every new next hop but never drops a removed one from the FIB ("settle"), so
        only the verification after the whole change fails."""
        self._failing.extend([step] * times)

    def hops(self, prefix: IPv4Network | str) -> set[IPv4Address]:
        return set(self.table.get(IPv4Network(prefix), set()))

    def fire_revert_timer(self) -> bool:
        """The device's revert timer runs out: an unconfirmed change is undone. True if it undid one."""
        if self.armed is None:
            return False
        self._restore()
        return True

    # -- RouterDriver ----------------------------------------------------------
    def _device_pending(self) -> bool:
        return self.armed is not None

    def get_static_routes(self) -> list[StaticRoute]:
        rows = [StaticRoute(p, h) for p, hops in sorted(self.table.items()) for h in sorted(hops)]
        return rows + [StaticRoute(p, h, selected=False, installed=False) for p, h in sorted(self.accepted)]

    def fib_next_hops(self, prefix: IPv4Network) -> set[IPv4Address]:
        return self.hops(prefix)

    def commit(self, *, confirm_timeout: float = 10.0) -> Transcript:
        return self._counted(lambda: super(MemoryRouter, self).commit(confirm_timeout=confirm_timeout))

    def rollback(self, *, confirm_timeout: float = 10.0) -> Transcript:
        return self._counted(lambda: super(MemoryRouter, self).rollback(confirm_timeout=confirm_timeout))

    def _counted(self, call: Callable[[], Transcript]) -> Transcript:
        self.applies += 1
        self._mode = self._failing.pop(0) if self._failing else None
        try:
            return call()
        finally:
            self._mode = None

    def _send(self, step: ConfigBlock | ExecLine, transcript: Transcript) -> None:
        if isinstance(step, ConfigBlock):
            self.commands.append(step.enter)
            transcript.add(step.enter, "", 0.0)
            if step.enter.startswith(("configure exclusive", "configure session ")):
                self._candidate_block(step, transcript)  # Junos, EOS: nothing counts before a commit
                return
            if "revert timer" in step.enter and self.armed is None:
                self.armed = self._snapshot()
            for line in step.lines:
                self._record(line, transcript)
                self._apply(line)
            self.commands.append(step.leave)
            transcript.add(step.leave, "", 0.0)
            return
        command = step.command
        if _LINUX.match(command):
            self._record(command, transcript)
            self._apply(command)
            return
        self.commands.append(command)
        transcript.add(command, "", 0.0)
        if command == "configure confirm" or _EOS_CONFIRM.match(command):
            self.armed = None
        elif command == "configure revert now" or _EOS_ABORT.match(command):
            if not self.fire_revert_timer() and _EOS_ABORT.match(command):
                raise CommandRejected(self.name, command, "% memory router: no session pending a commit timer")
        elif command == "write memory":
            self.saves_done += 1
        else:
            raise CommandRejected(self.name, command, "% memory router: unknown command")

    def _candidate_block(self, step: ConfigBlock, transcript: Transcript) -> None:
        """A Junos `configure exclusive` or EOS `configure session` block: route lines go into a
        candidate, which a commit line makes live (the EOS session's commit is its `leave`).

        `commit confirmed N` / `commit timer T` arm: the configuration from before the first
        unconfirmed one comes back if the timer fires. A plain `commit` confirms on Junos.
        `rollback 1` loads the configuration from before the last commit, as Junos does.
        """
        candidate: list[str] = []
        for line in (*step.lines, step.leave):
            if line in ("exit configuration-mode",):
                self.commands.append(line)
                transcript.add(line, "", 0.0)
                continue
            if line == "rollback 1" or line.startswith("commit"):
                self.commands.append(line)
                transcript.add(line, "", 0.0)
                if line == "rollback 1":
                    candidate.append(line)
                    continue
                before = self._snapshot()
                for queued in candidate:
                    if queued == "rollback 1":
                        if self.previous is not None:
                            self.table, self.accepted = self._copy(self.previous)
                    else:
                        self._apply(queued)
                candidate = []
                self.previous = before
                if line.startswith(("commit confirmed", "commit timer")):
                    self.armed = self.armed or before
                elif step.enter == "configure exclusive":
                    self.armed = None  # Junos: any plain commit confirms a pending one
                continue
            self._record(line, transcript)
            candidate.append(line)
        # Left without a commit: the candidate is dropped, as leaving Junos' exclusive mode does.

    def _record(self, line: str, transcript: Transcript) -> None:
        self.commands.append(line)
        if self._mode == "apply":
            transcript.add(line, "% memory router: refused", 0.0)
            raise CommandRejected(self.name, line, "% memory router: refused")
        if not (_LINUX.match(line) or _ROUTE.match(line) or _JUNOS.match(line)):
            transcript.add(line, "% memory router: not a route line", 0.0)
            raise CommandRejected(self.name, line, "% memory router: not a route line")
        transcript.add(line, "", 0.0)

    def _apply(self, line: str) -> None:
        if m := _LINUX.match(line):
            prefix, hop, remove = IPv4Network(m["net"]), IPv4Address(m["hop"]), m["verb"] == "del"
            if not remove and self._mode != "verify":
                self.table[prefix] = set()  # a replace swaps the next hop in one step
        elif m := _ROUTE.match(line):
            net = m["net"] or f"{m['addr']}/{m['mask']}"
            prefix, hop, remove = IPv4Network(net), IPv4Address(m["hop"]), bool(m.group(1))
        elif m := _JUNOS.match(line):
            prefix, hop, remove = IPv4Network(m["net"]), IPv4Address(m["hop"]), m["verb"] == "delete"
        else:
            raise AssertionError(f"not a route line: {line}")
        hops = self.table.setdefault(prefix, set())
        if remove:
            if self._mode != "settle":
                hops.discard(hop)
            self.accepted.discard((prefix, hop))
        elif self._mode == "verify":
            self.accepted.add((prefix, hop))  # accepted, never installed: the FIB keeps what it had
        else:
            hops.add(hop)

    def _snapshot(self) -> _Snapshot:
        return self._copy((self.table, self.accepted))

    @staticmethod
    def _copy(snap: _Snapshot) -> _Snapshot:
        table, accepted = snap
        return {p: set(h) for p, h in table.items()}, set(accepted)

    def _restore(self) -> None:
        assert self.armed is not None
        (self.table, self.accepted), self.armed = self._copy(self.armed), None

    def wait_for_fib(
        self,
        prefix: IPv4Network,
        expected: set[IPv4Address] | IPv4Address,
        *,
        timeout: float = 10.0,
        interval: float = 0.1,
        exact: bool = True,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> set[IPv4Address]:
        return super().wait_for_fib(prefix, expected, timeout=timeout, interval=interval, exact=exact,
                                    clock=clock or self._clock, sleep=sleep or self._sleep)

    def _clock(self) -> float:
        return self._now

    def _sleep(self, seconds: float) -> None:
        self._now += seconds

    def close(self) -> None:
        self.closes += 1


class MemoryHost(HostVerifier):
    """A web host whose loopback holds `vips`; nothing is read over SSH."""

    def __init__(self, name: str, vips: Iterable[IPv4Address] = ()) -> None:  # no super(): no SSH session
        self.spec = _spec(name)
        self.vips: set[IPv4Address] = set(vips)
        self.checks = 0

    def loopback(self) -> LoopbackReport:
        return LoopbackReport(self.name, tuple(LoopbackAddress(v, 32, "lo") for v in sorted(self.vips)), "memory")

    def check_vips(self, vips: Iterable[IPv4Address], *, arp: bool = True) -> VipCheck:
        self.checks += 1
        wanted = list(vips)
        return VipCheck(self.name, tuple(v for v in wanted if v in self.vips),
                        tuple(v for v in wanted if v not in self.vips))

    def close(self) -> None:
        pass


@dataclass
class DictHealth:
    """Health from a dict: `snapshot()` is the dict, `check()` passes only for UP (a pair not in it is INIT)."""

    state: dict[tuple[str, str], Health] = field(default_factory=dict)
    flapping_hosts: set[str] = field(default_factory=set)
    checked: list[tuple[str, str]] = field(default_factory=list)  # every live check, in order

    def mark(self, service: str, host: str, health: Health) -> None:
        self.state[(service, host)] = health

    def snapshot(self) -> dict[tuple[str, str], Health]:
        return dict(self.state)

    def check(self, service: str, host: str) -> CheckResult:
        self.checked.append((service, host))
        state = self.state.get((service, host), Health.INIT)
        return CheckResult(state is Health.UP, "200 OK" if state is Health.UP else f"{state.value} (memory)", 0.0)

    def flapping(self) -> set[str]:
        return set(self.flapping_hosts)


@dataclass
class WallClock:
    """The store's clock: UTC, moved by hand (`clock.advance(minutes=16)`)."""

    # Starts at the real time: the workflow stamps maintenance windows with the wall clock.
    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Rig:
    inv: Inventory
    store: StateStore
    engine: Engine
    routers: dict[str, MemoryRouter]
    hosts: dict[str, MemoryHost]
    health: DictHealth
    clock: WallClock

    def serving(self, service: str) -> set[str]:
        """The names of the hosts the service's route points at now."""
        svc = self.inv.services[service]
        hops = self.routers[svc.router].hops(svc.prefix)
        return {h.name for h in self.inv.hosts.values() if h.address in hops}

    def route(self, service: str, host: str) -> None:
        """Point the service at `host` behind lasthop's back (a person at the router's CLI)."""
        svc = self.inv.services[service]
        self.routers[svc.router].table[svc.prefix] = {self.inv.hosts[host].address}

    def dead_lock(self, router: str, *, holder: str, info: str) -> LockInfo:
        """Leave `router` locked by a process that has since died, and return that lock.

        The row names this process's pid with another start time, which is what a recycled pid
        looks like: the store's liveness check (bot/state/liveness.py) judges its holder dead."""
        self.store.acquire_lock(router, holder=holder, info=info)
        lock = self.store.lock_info(router)
        assert lock is not None
        with self.store._engine.begin() as conn:
            conn.execute(text("UPDATE router_locks SET started = started + 1 WHERE router = :r"), {"r": router})
        assert self.store.lock_info(router) is None  # dead: nobody holds the router now
        return lock

    def close(self) -> None:
        self.engine.close()
        self.store.close()


def memory_rig(inv: Inventory, tmp_path: Path, routes: Mapping[str, str],
               health: Mapping[tuple[str, str], Health] | None = None) -> Rig:
    """An engine over memory devices. `routes`: service -> the host its route points at.

    Every host holds the VIPs of every service it may serve; take one away with
    `rig.hosts[name].vips.discard(vip)`. Health is UP except where `health` says otherwise.
    """
    table: dict[str, dict[IPv4Network, set[IPv4Address]]] = {name: {} for name in inv.routers}
    for service, host in routes.items():
        svc = inv.services[service]
        table[svc.router][svc.prefix] = {inv.hosts[host].address}
    routers = {name: MemoryRouter(name, t, kind=inv.routers[name].driver,
                                 revert_seconds=inv.routers[name].revert_seconds) for name, t in table.items()}
    hosts = {name: MemoryHost(name, [v for s in inv.services.values() if name in s.hosts for v in s.vips])
             for name in inv.hosts}
    source = DictHealth({(s.name, h): Health.UP for s in inv.services.values() for h in s.hosts} | dict(health or {}))
    clock = WallClock()
    store = StateStore(f"sqlite:///{tmp_path}/state.db", clock=clock)
    devices = Devices(inv, router_factory=routers.__getitem__, host_factory=hosts.__getitem__)
    engine = Engine(inv, store, devices=devices, health=source)
    return Rig(inv, store, engine, routers, hosts, source, clock)


# One router of each kind (with and without its revert timer), one service on it: the engine tests' rig.
INVENTORY = """
defaults: {{username: ops, key_file: /k, known_hosts: /kh}}
routers:
  r1: {{driver: {driver}, address: 198.18.7.11, lan: [192.0.2.0/27]{extra}}}
hosts:
  web1: {{address: 192.0.2.2}}
  web2: {{address: 192.0.2.3}}
services:
  www-a: {{prefix: 198.51.100.32/27, router: r1, hosts: [web1, web2], vips: [198.51.100.33]}}
"""
KINDS = {
    "frr": ("frr", ""),
    "cisco_ios": ("cisco_ios", ""),
    "cisco_ios+revert": ("cisco_ios", ", revert_timer: 5m"),
    "linux": ("linux", ", save_config: false"),
    "juniper_junos": ("juniper_junos", ""),
    "juniper_junos+revert": ("juniper_junos", ", revert_timer: 5m"),
    "arista_eos": ("arista_eos", ""),
    "arista_eos+revert": ("arista_eos", ", revert_timer: 5m"),
}
