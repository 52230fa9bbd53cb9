"""The order a change's route lines come in, whatever the vendor: every add, then every remove.

Each vendor's `*_commands` module holds only its own line templates (one route in, one
line out, from typed values); this is the one place that guards the moves and orders the
lines, so two vendors cannot drift apart on what a change sends first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv4Network

from bot.drivers.base import RouteMove

__all__ = ["RouteLine", "change_lines"]

RouteLine = Callable[[IPv4Network, IPv4Address], str]


def change_lines(moves: Sequence[RouteMove], add: RouteLine, remove: RouteLine) -> list[str]:
    """`add` for every move, then `remove` for every old next hop, in the order given.

    The caller decides which adds to skip; this only renders. A move whose old
    next hop is None (a new route) or equal to the new one removes nothing.
    """
    # A tuple or a string with the right fields is a caller bug; only a RouteMove was checked.
    for move in moves:
        if not isinstance(move, RouteMove):
            raise TypeError("change_lines takes RouteMove values")
    adds = [add(m.prefix, m.new) for m in moves]
    removes = [remove(m.prefix, m.old) for m in moves if m.old is not None and m.old != m.new]
    return adds + removes
