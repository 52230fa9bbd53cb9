"""The one interface every router kind implements, and the values it speaks in.

The engine sees only `RouterDriver`; it never knows which CLI dialect is behind it.
Every value that ends up in a device command is an `ipaddress` object, never a
string a user typed, so nothing typed can be injected into a command line.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import ClassVar

from bot.drivers.errors import DriverError, VerifyTimeout


@dataclass(frozen=True)
class DeviceSpec:
    """How to reach one device over SSH. Built from validated inventory values."""

    name: str
    address: str
    username: str
    known_hosts: Path
    port: int = 22
    key_file: Path | None = None
    # repr=False: a spec is logged and put in errors; the secret must never be.
    password: str | None = field(default=None, repr=False)
    connect_timeout: float = 5.0
    command_timeout: float = 10.0


@dataclass(frozen=True)
class StaticRoute:
    """One next hop of one route as the router reports it.

    `selected`: the routing table chose this route for the prefix.
    `installed`: this next hop is in the forwarding table (FIB).
    A prefix with two next hops (ECMP, mid make-before-break) is two rows.
    """

    prefix: IPv4Network
    next_hop: IPv4Address
    selected: bool = True
    installed: bool = True
    protocol: str = "static"
    distance: int | None = None


@dataclass(frozen=True)
class RouteMove:
    """Point `prefix` at `new` instead of `old` (old None: the route is new)."""

    prefix: IPv4Network
    old: IPv4Address | None
    new: IPv4Address

    def __post_init__(self) -> None:
        # Type checks here are the injection guard: command builders trust these fields.
        if not isinstance(self.prefix, IPv4Network):
            raise TypeError("RouteMove.prefix must be an IPv4Network")
        if not isinstance(self.new, IPv4Address):
            raise TypeError("RouteMove.new must be an IPv4Address")
        if self.old is not None and not isinstance(self.old, IPv4Address):
            raise TypeError("RouteMove.old must be an IPv4Address or None")

    def reversed(self) -> RouteMove:
        if self.old is None:
            raise ValueError("a move that added a route has no previous next hop to go back to")
        return RouteMove(self.prefix, self.new, self.old)


@dataclass
class Exchange:
    """One command sent to a device and what came back, for the audit transcript."""

    command: str
    reply: str
    seconds: float


@dataclass
class Transcript:
    device: str
    exchanges: list[Exchange] = field(default_factory=list)

    def add(self, command: str, reply: str, seconds: float) -> None:
        self.exchanges.append(Exchange(command, reply, round(seconds, 4)))

    def text(self) -> str:
        return "\n".join(f"> {e.command}\n{e.reply}".rstrip() for e in self.exchanges)


class RouterDriver(ABC):
    """Read and rewrite the static routes of one router.

    Subclasses implement the four primitives (`get_static_routes`,
    `fib_next_hops`, `_apply`, `close`); the make-before-break order and the
    FIB polling live here so that every dialect gets them the same way.
    """

    kind: ClassVar[str]
    # Instance-level: whether a kind can revert or save may depend on the device's config.
    supports_revert: bool = False
    supports_save: bool = False

    def __init__(self, spec: DeviceSpec) -> None:
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    # -- reads ---------------------------------------------------------------
    @abstractmethod
    def get_static_routes(self) -> list[StaticRoute]:
        """Every static route's next hops, selected or not."""

    @abstractmethod
    def fib_next_hops(self, prefix: IPv4Network) -> set[IPv4Address]:
        """The next hops the forwarding table uses for exactly `prefix` (empty: none)."""

    def routes_for(self, prefix: IPv4Network) -> list[StaticRoute]:
        return [r for r in self.get_static_routes() if r.prefix == prefix]

    # -- changes -------------------------------------------------------------
    def move(
        self, moves: Sequence[RouteMove], *, revert_minutes: int | None = None,
        confirm_timeout: float = 10.0,
    ) -> Transcript:
        """Move every prefix in `moves`, make-before-break, in one session.

        For each move the new route is added and seen in the FIB before the old
        one is removed, so the prefix is never without a route. A device-side
        revert is armed first when asked for and the kind has one; the caller
        confirms it with `confirm()` after its own verification.
        """
        for m in moves:
            if not isinstance(m, RouteMove):
                raise TypeError("move() takes RouteMove values")
        if len({m.prefix for m in moves}) != len(moves):
            raise ValueError("a prefix appears twice in one change")
        transcript = Transcript(self.name)
        if revert_minutes is not None:
            if not self.supports_revert:
                raise DriverError(self.name, f"the {self.kind} driver has no device-side revert")
            self._arm_revert(revert_minutes, transcript)
        self._apply(moves, transcript, confirm_timeout)
        return transcript

    @abstractmethod
    def _apply(self, moves: Sequence[RouteMove], transcript: Transcript, confirm_timeout: float) -> None:
        """Perform the moves make-before-break, recording every exchange."""

    def _arm_revert(self, minutes: int, transcript: Transcript) -> None:
        raise DriverError(self.name, f"the {self.kind} driver has no device-side revert")

    def confirm(self) -> Transcript:
        """Keep a change made under an armed revert timer."""
        raise DriverError(self.name, f"the {self.kind} driver has no device-side revert")

    def save_config(self) -> Transcript:
        raise DriverError(self.name, f"the {self.kind} driver has no configuration to save")

    # -- verification ----------------------------------------------------------
    def wait_for_fib(
        self,
        prefix: IPv4Network,
        expected: set[IPv4Address] | IPv4Address,
        *,
        timeout: float = 10.0,
        interval: float = 0.1,
        exact: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> set[IPv4Address]:
        """Poll the FIB until `prefix` uses `expected` (exactly, or at least, as asked).

        Installing a route is asynchronous on most routers (zebra queues it to
        the kernel), so a change is never assumed done: it is seen or it fails.
        """
        want = {expected} if isinstance(expected, IPv4Address) else set(expected)
        deadline = clock() + timeout
        seen: set[IPv4Address] = set()
        while True:
            seen = self.fib_next_hops(prefix)
            if (seen == want) if exact else want <= seen:
                return seen
            if clock() >= deadline:
                have = ", ".join(sorted(map(str, seen))) or "no route"
                raise VerifyTimeout(
                    self.name,
                    f"{prefix} still points at {have} after {timeout:g}s "
                    f"(expected {', '.join(sorted(map(str, want)))})",
                )
            sleep(interval)

    @abstractmethod
    def close(self) -> None:
        """Drop the device session; the next call reconnects."""

    def __enter__(self) -> RouterDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
