"""What every vendor's route lines share: the type guard, and the order (every add, then every remove).

Each vendor's `*_commands` module holds only its own line templates (one route in, one
line out, from typed values); this is the one place that guards what reaches a line and
orders the lines, so two vendors cannot drift apart on either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv4Network

from bot.drivers.base import RouteMove

__all__ = ["RouteLine", "change_lines", "require_route"]

RouteLine = Callable[[IPv4Network, IPv4Address], str]


def require_route(prefix: IPv4Network, next_hop: IPv4Address, refusal: str) -> None:
    """Raise TypeError(`refusal`) unless `prefix` is an IPv4Network and `next_hop` an IPv4Address.

    Checked at run time whatever the annotations say: this is the last guard before a value
    is written into a line, and a vendor may read a stray word there as something else.
    """
    if not isinstance(prefix, IPv4Network) or not isinstance(next_hop, IPv4Address):
        raise TypeError(refusal)


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
