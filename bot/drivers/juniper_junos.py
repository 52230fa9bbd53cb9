"""Juniper Junos over netmiko's `juniper_junos` device type, in the Junos commit model.

A change is two commits, make-before-break: `set ... next-hop NEW` and a commit; the new
next hop seen usable; `delete ... next-hop OLD` and a commit. Each is one block:

    configure exclusive
    set routing-options static route P next-hop NEW
    commit confirmed N          (plain `commit` without a revert delay)
    exit configuration-mode

Why `configure exclusive`: plain `configure` shares one candidate with every other user,
so our `commit` would also commit whatever someone left uncommitted there; `configure
private` isolates us, but Junos refuses `commit confirmed` on a private copy. Exclusive
locks the candidate while we are in it, and Junos refuses to enter it while another user
holds the lock, which is the refusal we want.

With a revert delay both commits are `commit confirmed N`, so the whole change is one
pending unit: a plain `commit` in the second block would confirm the first one and leave
the removal beyond the router's reach before lasthop has verified anything. The second
`commit confirmed` restarts the timer; if lasthop dies, the router rolls back by itself
(at worst to the configuration between the two commits, which still has the old next hop:
never a prefix without a route). `confirm` is a `commit` with nothing changed, which is how
Junos confirms; `rollback` cancels with `rollback 1` + `commit` (junos_commands).

Nothing to save (`saves = False`): a Junos commit writes the active configuration to
flash (juniper.conf.gz, with the rollback history); there is no running/startup split.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network
from typing import Literal

from bot.drivers.base import (
    ConfigBlock,
    ExecLine,
    FibReading,
    RevertSupport,
    StaticRoute,
    Step,
    Transcript,
    WaitFib,
)
from bot.drivers.block_session import BlockSessionDriver
from bot.drivers.errors import CommandRejected
from bot.drivers.junos_commands import (
    CANCEL_CONFIRMED,
    COMMIT,
    MAX_CONFIRM_MINUTES,
    ROLLBACK,
    commit_confirmed,
    route_delete,
    route_set,
)
from bot.drivers.options import RevertOptions
from bot.drivers.parsers.junos import fib_next_hops_json, parse_routes_json
from bot.drivers.parsers.junos_config import commit_confirmed_pending, parse_static_set

ENTER = "configure exclusive"
LEAVE = "exit configuration-mode"
# On a refusal inside a block: drop our uncommitted candidate changes, then leave; exclusive
# mode discards them on exit anyway, but `rollback 0` leaves nothing to ask about.
ABANDON = ("rollback 0", LEAVE)
# Junos CLI errors are plain text lines, never `%`; `warning:` lines are not refusals.
ERROR = re.compile(r"^\s*(?:error:|syntax error\b|unknown command\b|missing argument\b|invalid \w+)", re.M)


class JunosOptions(RevertOptions):
    """Junos: `revert_timer` is the `commit confirmed` delay."""

    driver: Literal["juniper_junos"]


class JunosDriver(BlockSessionDriver):
    kind = "juniper_junos"
    options = JunosOptions
    saves = False
    # `commit confirmed <1-65535>` counts whole minutes.
    revert_support = RevertSupport(60, MAX_CONFIRM_MINUTES * 60, step_seconds=60)

    # -- rendering -----------------------------------------------------------------
    @classmethod
    def _commit_line(cls, revert_seconds: int | None) -> str:
        return COMMIT if revert_seconds is None else commit_confirmed(revert_seconds // 60)

    @classmethod
    def _steps(cls, adds: Sequence[tuple[IPv4Network, IPv4Address]],
               removes: Sequence[tuple[IPv4Network, IPv4Address]],
               waits: Sequence[tuple[IPv4Network, IPv4Address]], revert_seconds: int | None) -> list[Step]:
        commit = cls._commit_line(revert_seconds)
        armed = revert_seconds is not None
        blocks = [[route_set(p, h) for p, h in adds], [route_delete(p, h) for p, h in removes]]
        steps: list[Step] = []
        for i, lines in enumerate(blocks):
            if i == 1 and waits:
                steps.append(WaitFib(tuple((p, frozenset({h})) for p, h in waits)))
            if lines:
                # Every commit of an armed change is confirmed-commit: see the module docstring.
                steps.append(ConfigBlock(ENTER, (*lines, commit), leave=LEAVE, arms=armed))
        return steps

    @classmethod
    def _confirm_steps(cls) -> list[Step]:
        return [ConfigBlock(ENTER, (COMMIT,), leave=LEAVE)]

    @classmethod
    def _cancel_steps(cls) -> list[Step]:
        # `rollback 1` alone changes only the candidate; the commit activates it and stops the timer.
        return [ConfigBlock(ENTER, CANCEL_CONFIRMED, leave=LEAVE)]

    # -- reads -----------------------------------------------------------------------
    def get_static_routes(self) -> list[StaticRoute]:
        out = self.cli.show("show route protocol static table inet.0 | display json")
        return [r for r in parse_routes_json(self.name, out) if r.protocol == "static"]

    def _routes(self, prefix: IPv4Network) -> str:
        return self.cli.show(f"show route {prefix.with_prefixlen} exact table inet.0 | display json")

    def fib_next_hops(self, prefix: IPv4Network) -> set[IPv4Address]:
        return fib_next_hops_json(self.name, self._routes(prefix), prefix)

    def usable_next_hops(self, prefix: IPv4Network) -> set[IPv4Address]:
        """Next hops of the route Junos chose for exactly `prefix`, forwarding over them or not."""
        return {r.next_hop for r in parse_routes_json(self.name, self._routes(prefix))
                if r.prefix == prefix and r.selected}

    def configured(self) -> set[tuple[IPv4Network, IPv4Address]]:
        # The configuration, not the table: a static whose next hop does not resolve is hidden
        # from `show route`, and deleting it still needs its statement.
        return parse_static_set(self.name, self.cli.show("show configuration routing-options static | display set"))

    def _fib_reading(self, prefix: IPv4Network, exact: bool) -> FibReading:
        """As the base, except the make-before-break wait (`exact=False`).

        Junos forwards a static with two next hops over only the one it marks selected,
        unless a load-balance policy is exported, and mid-move that is usually still the
        old one. Waiting for the new hop to forward before removing the old would then
        never end; what the removal needs is that the new hop is a resolved next hop of
        the active route, so Junos can switch to it the moment the old one goes. The exact
        verification after the change still reads what forwards.
        """
        if exact:
            return super()._fib_reading(prefix, exact)
        return FibReading(self.usable_next_hops(prefix), "{prefix}'s active route has next hops {have} "
                          "after {timeout:g}s (expected {want} among them)")

    # -- transport -----------------------------------------------------------------
    refusal = ERROR
    abandon = ABANDON

    @staticmethod
    def _expect(line: str) -> str | None:
        # A commit that did not print this did not happen, whatever else it printed.
        if line.startswith(COMMIT):
            return "commit complete"
        if line.startswith("rollback "):
            return "load complete"
        return None

    def _device_pending(self) -> bool:
        return self._confirmed_commit_pending(None)

    def _confirmed_commit_pending(self, transcript: Transcript | None) -> bool:
        return commit_confirmed_pending(self.name, self.cli.show("show system commit", transcript))

    def _send(self, step: ConfigBlock | ExecLine, transcript: Transcript) -> None:
        # Unlike IOS's `configure revert now`, `rollback 1` + `commit` is never refused: with
        # nothing pending it would undo whatever was committed last, ours or someone else's.
        # So the device is asked first, and a cancel with nothing to cancel is refused here.
        if (isinstance(step, ConfigBlock) and step.lines == CANCEL_CONFIRMED
                and not self._confirmed_commit_pending(transcript)):
            raise CommandRejected(self.name, ROLLBACK, "no commit confirmed is pending: nothing to cancel")
        super()._send(step, transcript)
