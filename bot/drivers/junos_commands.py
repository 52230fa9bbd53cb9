"""Junos configuration lines for moving a static route, built from typed values only.

Pure functions: the Junos driver sends these in `configure` mode. Every value
that reaches a line is an `ipaddress` object or a validated int, so nothing a
user typed can be injected into the candidate configuration.

Commit model (Juniper CLI User Guide, "commit confirmed"; Junos XML protocol
guide, `<confirm-timeout>` "1 through 65,535 minutes"):

* `commit confirmed N` activates the candidate and rolls it back by itself
  after N minutes unless confirmed.
* A plain `commit` (or `commit check`) before the deadline confirms it.
* To cancel early, `rollback 1` loads the configuration that was active before
  the confirmed commit into the candidate, and `commit` activates it; that
  commit also clears the pending timer. `rollback 1` alone changes only the
  candidate and leaves the timer running, so both lines are needed:
  `CANCEL_CONFIRMED`.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network

from bot.drivers import route_lines
from bot.drivers.base import RouteMove

__all__ = [
    "CANCEL_CONFIRMED",
    "COMMIT",
    "MAX_CONFIRM_MINUTES",
    "ROLLBACK",
    "change_lines",
    "commit_confirmed",
    "route_delete",
    "route_set",
]

MAX_CONFIRM_MINUTES = 65535
COMMIT = "commit"
ROLLBACK = "rollback 1"
CANCEL_CONFIRMED = (ROLLBACK, COMMIT)


def _route_path(prefix: IPv4Network, next_hop: IPv4Address) -> str:
    # Junos reads a word after `next-hop` as an interface name, so only an
    # address object may stand there.
    route_lines.require_route(prefix, next_hop, "Junos route lines take an IPv4Network and an IPv4Address")
    return f"routing-options static route {prefix.with_prefixlen} next-hop {next_hop}"


def route_set(prefix: IPv4Network, next_hop: IPv4Address) -> str:
    """Add `next_hop` to the route (Junos keeps a list; other next hops stay)."""
    return "set " + _route_path(prefix, next_hop)


def route_delete(prefix: IPv4Network, next_hop: IPv4Address) -> str:
    """Remove only `next_hop` from the route, not the whole route."""
    return "delete " + _route_path(prefix, next_hop)


def commit_confirmed(minutes: int) -> str:
    # bool is an int subclass: `True` minutes is a caller bug, not 1.
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise TypeError("commit_confirmed takes whole minutes as an int")
    if not 1 <= minutes <= MAX_CONFIRM_MINUTES:
        raise ValueError(f"Junos commit confirmed takes 1..{MAX_CONFIRM_MINUTES} minutes, not {minutes}")
    return f"commit confirmed {minutes}"


def change_lines(moves: Sequence[RouteMove]) -> list[str]:
    """Junos lines for `moves`: every add, then every remove (`route_lines.change_lines`)."""
    return route_lines.change_lines(moves, route_set, route_delete)
