"""The one interface every router kind implements, and the values it speaks in.

The engine sees only `RouterDriver`; it never knows which CLI dialect is behind it.
Every value that ends up in a device command is an `ipaddress` object, never a
string a user typed, so nothing typed can be injected into a command line.
"""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import ClassVar, NamedTuple

from bot import faults
from bot.drivers.errors import CommandRejected, DriverError, VerifyTimeout
from bot.drivers.options import DriverOptions


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

    def to_record(self) -> dict[str, str]:
        """The change record's shape: {"prefix", "old" ("" for none), "new"}."""
        return {"prefix": str(self.prefix), "old": str(self.old or ""), "new": str(self.new)}

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> RouteMove:
        """Back from a change record; ValueError names what is wrong with a damaged one."""
        try:
            old = str(record.get("old") or "")
            return cls(IPv4Network(str(record["prefix"])), IPv4Address(old) if old else None,
                       IPv4Address(str(record["new"])))
        except (KeyError, ValueError) as e:
            raise ValueError(f"damaged move record {dict(record)!r}: {e}") from None

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


@dataclass(frozen=True)
class ConfigBlock:
    """Lines sent inside one configuration session: `enter`, the lines, then `leave`."""

    enter: str
    lines: tuple[str, ...]
    leave: str = "end"
    arms: bool = False  # `enter` starts the device's revert timer (IOS `... revert timer N`)


@dataclass(frozen=True)
class ExecLine:
    """One exec-mode command that changes state (confirm, save, revert); `expect` must be in its reply.

    `warnings`: a regex for `%` lines the device prints on success too. They do not refuse the
    command, but `expect` must still be there (FRR's `% Warning: can't chown configuration file`
    when a non-root user saves: the file is written all the same).
    """

    command: str
    expect: str | None = None
    warnings: str | None = None


@dataclass(frozen=True)
class WaitFib:
    """Wait until each prefix's FIB holds the next hop (at least, or exactly): nothing is sent."""

    hops: tuple[tuple[IPv4Network, frozenset[IPv4Address]], ...]
    exact: bool = False


Step = ConfigBlock | ExecLine | WaitFib


# The first pause of `_wait_together`, which doubles up to its interval.
FIRST_PAUSE = 0.005


class FibReading(NamedTuple):
    """One poll of `wait_for_fib`: the next hops it compares with what it expects, and what a
    timeout says of them (a `str.format` template over prefix, have, timeout and want)."""

    hops: set[IPv4Address]
    timeout_message: str = "{prefix} still points at {have} after {timeout:g}s (expected {want})"


def _everything(prefix: IPv4Network, hop: IPv4Address) -> bool | None:
    return None


def lines_of(steps: Sequence[Step]) -> list[str]:
    """Every line `steps` send, in order: what a plan shows and what the transcript records."""
    out: list[str] = []
    for step in steps:
        if isinstance(step, ConfigBlock):
            out += [step.enter, *step.lines, step.leave]
        elif isinstance(step, ExecLine):
            out.append(step.command)
    return out


@dataclass(frozen=True)
class RevertSupport:
    """A device that undoes a commit by itself unless it is confirmed in time, and the delays it takes."""

    min_seconds: int
    max_seconds: int
    step_seconds: int = 1  # IOS counts whole minutes

    def problem(self, seconds: float) -> str | None:
        """Why the device cannot take a revert delay of `seconds`; None if it can."""
        if seconds % self.step_seconds == 0 and self.min_seconds <= seconds <= self.max_seconds:
            return None
        if self.step_seconds == 60:
            return f"must be a whole number of minutes from {self.min_seconds // 60}m to {self.max_seconds // 60}m"
        return f"must be a whole number of seconds from {self.min_seconds}s to {self.max_seconds}s"


class RouterDriver(ABC):
    """Read and rewrite the static routes of one router, as a configuration session.

    The session is shaped like NAPALM's: `load` the moves, `compare` (the exact lines
    `commit` will send, judged against the live configuration), `commit` them
    make-before-break (under the device's own revert timer when the router has one and
    `revert_seconds` is set), then `confirm`, or `rollback`. What a plan shows comes from
    the same rendering (`change_lines`, `confirm_lines`, `save_lines`), so a plan shows
    byte for byte what is sent.

    A kind implements the reads, `_steps` (its dialect), `_send` (its transport) and
    `close`; the order of a change, the FIB polling and the rollback live here.
    """

    kind: ClassVar[str]
    # What its inventory entry may say (bot.drivers.options); the registry joins them into one union.
    options: ClassVar[type[DriverOptions]] = DriverOptions
    saves: ClassVar[bool] = False  # it has a configuration to save, and saves it by default
    revert_support: ClassVar[RevertSupport | None] = None

    def __init__(self, spec: DeviceSpec, *, revert_seconds: int | None = None) -> None:
        if revert_seconds is not None:
            if self.revert_support is None:
                raise DriverError(spec.name, f"the {self.kind} driver has no device-side revert")
            problem = self.revert_support.problem(revert_seconds)
            if problem:
                raise DriverError(spec.name, f"revert delay {problem}")
        self.spec = spec
        self.revert_seconds = revert_seconds
        self._candidate: tuple[RouteMove, ...] = ()
        self._committed: tuple[RouteMove, ...] = ()
        self._pending = False  # a commit the device will undo by itself unless confirmed

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def dialect(self) -> type[RouterDriver]:
        """Whose rendering this session sends: its own kind's (a fake driver borrows a real kind's)."""
        return type(self)

    # -- reads ---------------------------------------------------------------
    @abstractmethod
    def get_static_routes(self) -> list[StaticRoute]:
        """Every static route's next hops, selected or not."""

    @abstractmethod
    def fib_next_hops(self, prefix: IPv4Network) -> set[IPv4Address]:
        """The next hops the forwarding table uses for exactly `prefix` (empty: none)."""

    def fib_next_hops_many(self, prefixes: Sequence[IPv4Network]) -> dict[IPv4Network, set[IPv4Address]]:
        """`fib_next_hops` of each prefix; a kind that can read several in one exchange overrides this."""
        return {p: self.fib_next_hops(p) for p in prefixes}

    def routes_for(self, prefix: IPv4Network) -> list[StaticRoute]:
        return [r for r in self.get_static_routes() if r.prefix == prefix]

    def configured(self) -> set[tuple[IPv4Network, IPv4Address]]:
        """(prefix, next hop) of every configured static, installed or not: what `compare` diffs against."""
        return {(r.prefix, r.next_hop) for r in self.get_static_routes()}

    # -- rendering: pure, what plans show ------------------------------------------
    @classmethod
    def change_lines(cls, moves: Sequence[RouteMove], revert_seconds: int | None = None) -> list[str]:
        """The exact lines a change sends to a router configured as lasthop expects: each old
        route there, no new one yet (the live pre-check has just seen the old next hops)."""
        return lines_of(cls.change_steps(moves, _everything, revert_seconds))

    @classmethod
    def change_steps(cls, moves: Sequence[RouteMove], have: Callable[[IPv4Network, IPv4Address], bool | None],
                     revert_seconds: int | None) -> list[Step]:
        """The steps of a change given what is configured (`have(prefix, hop)`; None: assume the usual)."""
        adds = [(m.prefix, m.new) for m in moves if have(m.prefix, m.new) is not True]
        removes = [(m.prefix, m.old) for m in moves
                   if m.old is not None and m.old != m.new and have(m.prefix, m.old) is not False]
        # Make before break: every move waits for its new next hop, even one that was already there.
        return cls._steps(adds, removes, [(m.prefix, m.new) for m in moves], revert_seconds)

    @classmethod
    def confirm_lines(cls, revert_seconds: int | None) -> list[str]:
        """What keeps a change made under the device's revert timer; none without one."""
        return lines_of(cls._confirm_steps()) if revert_seconds is not None else []

    @classmethod
    def save_lines(cls) -> list[str]:
        """What saves the configuration after a verified change; none for a kind with nothing to save."""
        return lines_of(cls._save_steps())

    @classmethod
    @abstractmethod
    def _steps(cls, adds: Sequence[tuple[IPv4Network, IPv4Address]],
               removes: Sequence[tuple[IPv4Network, IPv4Address]],
               waits: Sequence[tuple[IPv4Network, IPv4Address]], revert_seconds: int | None) -> list[Step]:
        """Add `adds`, wait until each of `waits` is in the FIB, then remove `removes`, in this
        kind's dialect; the first configuration step armed under `revert_seconds` if given.
        No step for an empty list."""

    @classmethod
    def _confirm_steps(cls) -> list[Step]:
        return []

    @classmethod
    def _save_steps(cls) -> list[Step]:
        return []

    @classmethod
    def _cancel_steps(cls) -> list[Step]:
        """What makes the device undo a pending commit now, instead of when its timer runs out."""
        return []

    # -- the session -----------------------------------------------------------------
    def load(self, moves: Sequence[RouteMove]) -> None:
        """Make `moves` the candidate change."""
        for m in moves:
            if not isinstance(m, RouteMove):
                raise TypeError("load() takes RouteMove values")
        if len({m.prefix for m in moves}) != len(moves):
            raise ValueError("a prefix appears twice in one change")
        self._candidate = tuple(moves)

    def _live_steps(self, moves: Sequence[RouteMove], revert_seconds: int | None) -> list[Step]:
        # Against the live configuration: an add already there or a remove already gone is left
        # out, so a retried or reversed move sends only what it still needs.
        configured = self.configured()
        return self.dialect.change_steps(moves, lambda p, h: (p, h) in configured, revert_seconds)

    def compare(self) -> list[str]:
        """The exact lines `commit` will send for the candidate, judged against the live configuration."""
        return lines_of(self._live_steps(self._candidate, self.revert_seconds))

    def commit(self, *, confirm_timeout: float = 10.0) -> Transcript:
        """Send the candidate make-before-break, in one session: each new route is added and seen
        in the FIB before the old one goes, so the prefix is never without a route."""
        transcript = Transcript(self.name)
        moves, self._candidate = self._candidate, ()
        steps = self._live_steps(moves, self.revert_seconds)
        self._committed = moves
        self._run(steps, transcript, confirm_timeout, fault_points=True)
        faults.hit("after_remove")
        return transcript

    def has_pending_commit(self) -> bool:
        """A commit the device will undo by itself unless `confirm` comes first."""
        return self._pending

    def confirm(self) -> Transcript:
        """Keep a commit made under the device's revert timer; nothing to do without one."""
        transcript = Transcript(self.name)
        if self._pending:
            self._run(self.dialect._confirm_steps(), transcript, 0.0)
            self._pending = False
        return transcript

    def rollback(self, *, confirm_timeout: float = 10.0) -> Transcript:
        """Undo the last commit and see the old next hops back in the FIB (`revert` of its moves)."""
        committed, self._committed = self._committed, ()
        return self.revert(committed, confirm_timeout=confirm_timeout)

    def revert(self, moves: Sequence[RouteMove], *, confirm_timeout: float = 10.0) -> Transcript:
        """Put back the old next hops of `moves`, whatever of them the router still shows.

        A commit still pending on the device is undone the device's way first (IOS `configure
        revert now`), so its timer cannot fire later, after the rollback; then whatever still
        differs is put back make-before-break, never itself under a timer. It also ends a
        change a dead process left behind: nothing here needs the session that committed it.
        """
        transcript = Transcript(self.name)
        if self._pending:
            self._pending = False
            # Refused: nothing was pending after all (the arming never took); the transcript has the reply.
            with contextlib.suppress(CommandRejected):
                self._run(self.dialect._cancel_steps(), transcript, 0.0)
        back = [RouteMove(m.prefix, m.new, m.old) for m in moves if m.old is not None]
        steps = self._live_steps(back, None)
        fresh = [(m.prefix, m.new) for m in moves if m.old is None]
        if fresh:  # a route that was new has no old next hop to go back to: it is only removed
            configured = self.configured()
            gone = [pn for pn in fresh if pn in configured]
            steps += self.dialect._steps([], gone, [], None)
        self._run(steps, transcript, confirm_timeout)
        for m in back:
            self.wait_for_fib(m.prefix, m.new, timeout=confirm_timeout)
        for prefix, _ in fresh:
            self.wait_for_fib(prefix, set(), timeout=confirm_timeout)
        return transcript

    def read_pending(self) -> bool:
        """Ask the router whether a commit waits on its revert timer, and act on the answer from
        now on (`confirm` keeps it, `revert` cancels it first). After a restart the session
        knows nothing of the dead process's commit; only the device does."""
        self._pending = self.revert_support is not None and self._device_pending()
        return self._pending

    def _device_pending(self) -> bool:
        """The device's own answer to "is a commit pending on your timer?"; a kind with a
        device-side revert overrides this."""
        return False

    def discard(self) -> None:
        """Drop the candidate without sending anything."""
        self._candidate = ()

    def move(self, moves: Sequence[RouteMove], *, confirm_timeout: float = 10.0) -> Transcript:
        """load + commit + confirm in one call, for tools that verify nothing further (the lab's resets)."""
        self.load(moves)
        transcript = self.commit(confirm_timeout=confirm_timeout)
        transcript.exchanges += self.confirm().exchanges
        return transcript

    def save_config(self) -> Transcript:
        if not self.saves:
            raise DriverError(self.name, f"the {self.kind} driver has no configuration to save")
        transcript = Transcript(self.name)
        self._run(self.dialect._save_steps(), transcript, 0.0)
        return transcript

    def _run(self, steps: Sequence[Step], transcript: Transcript, confirm_timeout: float, *,
             fault_points: bool = False) -> None:
        for step in steps:
            if isinstance(step, WaitFib):
                self.wait_for_fibs({prefix: set(want) for prefix, want in step.hops}, exact=step.exact,
                                   timeout=confirm_timeout)
                if fault_points and not step.exact:
                    faults.hit("after_add")  # make-before-break: both next hops are live here
                continue
            try:
                self._send(step, transcript)
            except CommandRejected as e:
                # Once the device took the arming command, the commit is pending, whatever fails later.
                if isinstance(step, ConfigBlock) and step.arms and e.command != step.enter:
                    self._pending = True
                raise
            except DriverError:
                # A session lost mid-block: whether the timer started is unknown, so assume it did;
                # the rollback's cancel then asks the device, which says if nothing was pending.
                if isinstance(step, ConfigBlock) and step.arms:
                    self._pending = True
                raise
            if isinstance(step, ConfigBlock) and step.arms:
                # From here until confirm() keeps it or rollback() undoes it, the router will undo it itself.
                self._pending = True

    @abstractmethod
    def _send(self, step: ConfigBlock | ExecLine, transcript: Transcript) -> None:
        """Send one step over this kind's transport, recording every exchange; raise on a refusal."""

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
        """Poll the FIB (`_fib_reading`) until `prefix` uses `expected` (exactly, or at least, as asked).

        Installing a route is asynchronous on most routers (zebra queues it to
        the kernel), so a change is never assumed done: it is seen or it fails.
        """
        want = {expected} if isinstance(expected, IPv4Address) else set(expected)
        deadline = clock() + timeout
        while True:
            reading = self._fib_reading(prefix, exact)
            seen = reading.hops
            if (seen == want) if exact else want <= seen:
                return seen
            if clock() >= deadline:
                raise VerifyTimeout(self.name, reading.timeout_message.format(
                    prefix=prefix, have=", ".join(sorted(map(str, seen))) or "no route",
                    timeout=timeout, want=", ".join(sorted(map(str, want)))))
            sleep(interval)

    def wait_for_fibs(
        self,
        wants: Mapping[IPv4Network, IPv4Address | set[IPv4Address]],
        *,
        timeout: float = 10.0,
        exact: bool = True,
    ) -> None:
        """`wait_for_fib` for each prefix in turn. A kind that reads many prefixes in one exchange
        overrides this with `_wait_together`."""
        for prefix, want in wants.items():
            self.wait_for_fib(prefix, want, timeout=timeout, exact=exact)

    def _wait_together(
        self,
        wants: Mapping[IPv4Network, IPv4Address | set[IPv4Address]],
        *,
        timeout: float = 10.0,
        interval: float = 0.1,
        exact: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Poll the FIB until every prefix uses what it should, each poll one `fib_next_hops_many` of
        the prefixes still waited for: `wait_for_fib`'s test for each, under one deadline for all.

        The pauses between polls start at `FIRST_PAUSE` and double up to `interval`: for a kind
        whose read takes a millisecond, the FIB is often a few milliseconds behind the line that
        changed it, and a first pause of `interval` would be most of the wait. The last poll is
        at the deadline. Only for a kind whose reading is the FIB's (`_fib_reading` not overridden).
        """
        pending = {p: ({w} if isinstance(w, IPv4Address) else set(w)) for p, w in wants.items()}
        deadline = clock() + timeout
        pause = min(FIRST_PAUSE, interval)
        while pending:
            seen = self.fib_next_hops_many(list(pending))
            pending = {p: want for p, want in pending.items()
                       if not ((seen[p] == want) if exact else want <= seen[p])}
            if not pending:
                return
            if clock() >= deadline:
                prefix, want = next(iter(pending.items()))
                raise VerifyTimeout(self.name, FibReading(seen[prefix]).timeout_message.format(
                    prefix=prefix, have=", ".join(sorted(map(str, seen[prefix]))) or "no route",
                    timeout=timeout, want=", ".join(sorted(map(str, want)))))
            sleep(min(pause, max(0.0, deadline - clock())))
            pause = min(pause * 2, interval)

    def _fib_reading(self, prefix: IPv4Network, exact: bool) -> FibReading:
        """What one poll of `wait_for_fib` reads: what forwards. A kind whose make-before-break
        wait (`exact=False`) must read something else overrides this, not the loop."""
        return FibReading(self.fib_next_hops(prefix))

    @abstractmethod
    def close(self) -> None:
        """Drop the device session; the next call reconnects."""

    def __enter__(self) -> RouterDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
