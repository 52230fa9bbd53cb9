"""Arista EOS over netmiko's `arista_eos` device type, through configuration sessions.

A change is two sessions, make-before-break: the adds, committed; the new next hop seen in
the forwarding table; the removes, committed. Nothing in a session takes effect before its
`commit`, and the session's own `commit` is what leaves it, so that is each block's `leave`:

    configure session lasthop-add
    ip route P NEW
    commit
    configure session lasthop-change
    no ip route P OLD
    commit timer 00:05:00       (plain `commit` without a revert delay)

The revert timer is on the session that finishes the change (the removes; the adds when
there are none), not the first. A timer commit stays pending until `configure session NAME
commit`, and napalm's EOS driver refuses a second timer commit while one is pending; so
there is only ever one, and its undoing is always safe: if it fires, the old next hop comes
back beside the new one (both were verified), never a prefix without a route. An add
committed plainly first is harmless on its own: both next hops are healthy hosts.

Session names are fixed, not per change: a plan is rendered before its change has an id,
and what confirms or cancels the pending session (`confirm_lines`) knows no moves, yet
must name it. One change per router runs at a time (the store's router lock), so a fixed
name is never in use twice at once.

`saves = True`: EOS keeps running-config apart from startup-config; `write memory` copies it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network
from typing import Literal

from bot.drivers.base import (
    ConfigBlock,
    ExecLine,
    RevertSupport,
    StaticRoute,
    Step,
    WaitFib,
)
from bot.drivers.block_session import BlockSessionDriver
from bot.drivers.cli_session import ERROR_PATTERN
from bot.drivers.eos_commands import (
    ABORT,
    MAX_COMMIT_TIMER_SECONDS,
    abort_pending,
    commit_timer,
    configure_session,
    confirm_pending,
    no_route_line,
    route_line,
    session_name,
    session_pending_timer,
)
from bot.drivers.options import RevertOptions
from bot.drivers.parsers.eos import fib_next_hops_json, parse_routes_json
from bot.drivers.parsers.static_config import parse_static_config

ADD_SESSION = session_name("add")  # the adds, when removes follow in a second session
SESSION = session_name("change")  # the session that finishes a change: the one a timer is on
COMMIT = "commit"
ERROR = re.compile(ERROR_PATTERN, re.M)  # EOS refuses with `% ...` lines, as IOS does


class EosOptions(RevertOptions):
    """EOS: `revert_timer` is the session's `commit timer`."""

    driver: Literal["arista_eos"]


class EosDriver(BlockSessionDriver):
    kind = "arista_eos"
    options = EosOptions
    saves = True
    # `commit timer HH:MM:SS`: whole seconds, under a day (eos_commands).
    revert_support = RevertSupport(1, MAX_COMMIT_TIMER_SECONDS)

    # -- rendering -----------------------------------------------------------------
    @classmethod
    def _steps(cls, adds: Sequence[tuple[IPv4Network, IPv4Address]],
               removes: Sequence[tuple[IPv4Network, IPv4Address]],
               waits: Sequence[tuple[IPv4Network, IPv4Address]], revert_seconds: int | None) -> list[Step]:
        blocks = [[route_line(p, h) for p, h in adds], [no_route_line(p, h) for p, h in removes]]
        last = max((i for i, lines in enumerate(blocks) if lines), default=-1)
        steps: list[Step] = []
        for i, lines in enumerate(blocks):
            if i == 1 and waits:
                steps.append(WaitFib(tuple((p, frozenset({h})) for p, h in waits)))
            if not lines:
                continue
            if i != last:
                steps.append(ConfigBlock(configure_session(ADD_SESSION), tuple(lines), leave=COMMIT))
            elif revert_seconds is None:
                steps.append(ConfigBlock(configure_session(SESSION), tuple(lines), leave=COMMIT))
            else:
                steps.append(ConfigBlock(configure_session(SESSION), tuple(lines),
                                         leave=commit_timer(revert_seconds), arms=True))
        return steps

    @classmethod
    def _confirm_steps(cls) -> list[Step]:
        return [ExecLine(confirm_pending(SESSION))]

    @classmethod
    def _cancel_steps(cls) -> list[Step]:
        # Rolls the pending session back now and ends its timer; EOS refuses it when the
        # session is not pending (committed for good, or never timer-committed).
        return [ExecLine(abort_pending(SESSION))]

    @classmethod
    def _save_steps(cls) -> list[Step]:
        return [ExecLine("write memory", expect="Copy completed successfully")]

    # -- reads -----------------------------------------------------------------------
    def get_static_routes(self) -> list[StaticRoute]:
        out = self.cli.show("show ip route static | json")
        return [r for r in parse_routes_json(self.name, out) if r.protocol == "static"]

    def fib_next_hops(self, prefix: IPv4Network) -> set[IPv4Address]:
        out = self.cli.show(f"show ip route {prefix.with_prefixlen} | json")
        return fib_next_hops_json(self.name, out, prefix)

    def _device_pending(self) -> bool:
        # Not yet checked against a real EOS: a timer-committed session is listed with a
        # state naming its commit timer ("pending-commit-timer").
        return session_pending_timer(self.cli.show("show configuration sessions"), SESSION)

    def configured(self) -> set[tuple[IPv4Network, IPv4Address]]:
        # EOS lists only the static it chose: a floating or unresolved one is in no
        # `show ip route`, so what is configured is read from the configuration. Lines of
        # other VRFs (`ip route vrf X ...`) are not this table's and are left out.
        out = self.cli.show("show running-config | include ^ip route")
        default_vrf = "\n".join(line for line in out.splitlines() if not line.strip().startswith("ip route vrf "))
        return parse_static_config(self.name, default_vrf)

    # -- transport -----------------------------------------------------------------
    refusal = ERROR
    abandon = (ABORT,)  # on a refusal inside a session, `abort` discards it: nothing of it was committed
