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

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Literal

from bot.drivers.base import DeviceSpec, RouteMove, RouterDriver, StaticRoute, Transcript
from bot.drivers.errors import CommandRejected
from bot.drivers.host import HostVerifier, LoopbackReport, VipCheck
from bot.drivers.parsers.host import LoopbackAddress
from bot.engine.devices import Devices
from bot.engine.pipeline import Engine
from bot.health.checks import CheckResult
from bot.health.state import Health
from bot.inventory import Inventory
from bot.state import StateStore

Step = Literal["apply", "verify"]


def _spec(name: str) -> DeviceSpec:
    return DeviceSpec(name=name, address="198.18.0.1", username="test", known_hosts=Path("/nonexistent"))


class MemoryRouter(RouterDriver):
    """A router whose FIB is `table`; every change is make-before-break and recorded."""

    kind = "memory"
    supports_save = True

    def __init__(self, name: str, table: Mapping[IPv4Network, Iterable[IPv4Address]] | None = None) -> None:
        super().__init__(_spec(name))
        self.table: dict[IPv4Network, set[IPv4Address]] = {p: set(h) for p, h in (table or {}).items()}
        self.commands: list[str] = []  # every command of every change, in order
        self.applies = 0  # calls of _apply: the engine's changes and rollbacks
        self.saves = 0
        self.closes = 0
        self._failing: list[Step] = []
        self._now = 0.0  # the virtual clock wait_for_fib polls on

    def fail_next(self, step: Step, times: int = 1) -> None:
        """The next `times` changes fail at `step`; later ones (a rollback, say) work again."""
        self._failing.extend([step] * times)

    def hops(self, prefix: IPv4Network | str) -> set[IPv4Address]:
        return set(self.table.get(IPv4Network(prefix), set()))

    # -- RouterDriver ----------------------------------------------------------
    def get_static_routes(self) -> list[StaticRoute]:
        return [StaticRoute(p, h) for p, hops in sorted(self.table.items()) for h in sorted(hops)]

    def fib_next_hops(self, prefix: IPv4Network) -> set[IPv4Address]:
        return self.hops(prefix)

    def _apply(self, moves: Sequence[RouteMove], transcript: Transcript, confirm_timeout: float) -> None:
        self.applies += 1
        failing = self._failing.pop(0) if self._failing else None
        steps = [(f"ip route {m.prefix} {m.new}", m, "add") for m in moves]
        steps += [(f"no ip route {m.prefix} {m.old}", m, "remove") for m in moves if m.old not in (None, m.new)]
        for command, m, what in steps:
            self.commands.append(command)
            if failing == "apply":
                transcript.add(command, "% memory router: refused", 0.0)
                raise CommandRejected(self.name, command, "% memory router: refused")
            transcript.add(command, "", 0.0)
            if failing == "verify":
                continue  # accepted, never installed: the FIB keeps what it had
            hops = self.table.setdefault(m.prefix, set())
            if what == "add":
                hops.add(m.new)
            elif m.old is not None:
                hops.discard(m.old)

    def save_config(self) -> Transcript:
        self.saves += 1
        transcript = Transcript(self.name)
        transcript.add("write memory", "", 0.0)
        return transcript

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
    routers = {name: MemoryRouter(name, t) for name, t in table.items()}
    hosts = {name: MemoryHost(name, [v for s in inv.services.values() if name in s.hosts for v in s.vips])
             for name in inv.hosts}
    source = DictHealth({(s.name, h): Health.UP for s in inv.services.values() for h in s.hosts} | dict(health or {}))
    clock = WallClock()
    store = StateStore(f"sqlite:///{tmp_path}/state.db", clock=clock)
    devices = Devices(inv, router_factory=routers.__getitem__, host_factory=hosts.__getitem__)
    engine = Engine(inv, store, devices=devices, health=source)
    return Rig(inv, store, engine, routers, hosts, source, clock)
