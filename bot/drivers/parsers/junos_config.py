"""Junos static routes as configured: `show configuration routing-options static | display set`.

The routing table is not enough to know what is configured: Junos hides a static whose
next hop does not resolve (only `show route hidden` lists it), and deleting it still
needs the configured statement. `display set` prints one `set` line per next hop, so a
`next-hop [ A B ]` list is two lines. And whether a confirmed commit is pending, read
from `show system commit`, decides whether `rollback 1` may be sent at all.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network

from bot.drivers.parsers._common import fail, ipv4_network, snippet

__all__ = ["commit_confirmed_pending", "parse_static_set"]

_STATIC = "set routing-options static route "
_NEXT_HOP = re.compile(r"^set routing-options static route (?P<net>\S+) next-hop (?P<hop>\S+)$")
# `error: ...`, `syntax error, expecting <command>.`, `unknown command.`
_ERROR = re.compile(r"^\s*(?:error:|syntax error\b|unknown command\b)", re.M)
# `0   2024-05-02 10:41:07 UTC by ops via cli commit confirmed, rollback in 4mins`
_PENDING = re.compile(r"^\s*0\s.*\bcommit confirmed, rollback in \d+\s*mins?\b", re.M)
_ENTRY = re.compile(r"^\s*\d+\s+\d{4}-\d\d-\d\d ", re.M)


def _raise_if_error(device: str, text: str) -> None:
    if m := _ERROR.search(text):
        fail(device, f"device replied with an error: {snippet(text[m.start():].splitlines()[0])}")


def parse_static_set(device: str, text: str) -> set[tuple[IPv4Network, IPv4Address]]:
    """(prefix, next hop) of every configured `next-hop` address of an inet.0 static.

    Other statements of a route (`discard`, `preference`, `qualified-next-hop`, an
    interface next hop) are not next hops lasthop moves and are left out.
    """
    _raise_if_error(device, text)
    out: set[tuple[IPv4Network, IPv4Address]] = set()
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith(_STATIC):
            continue
        words = line.split()
        if len(words) < 6 or words[5] != "next-hop":
            continue  # `... route P discard`, `... route P preference 200`, `... qualified-next-hop ...`
        m = _NEXT_HOP.match(line)
        if m is None:
            fail(device, f"unreadable static route line {snippet(line)}")
        try:
            hop = IPv4Address(m["hop"])
        except ValueError:
            continue  # an interface name (`next-hop ge-0/0/0.0`): not a next hop lasthop moves
        out.add((ipv4_network(device, m["net"], "static route prefix"), hop))
    return out


def commit_confirmed_pending(device: str, text: str) -> bool:
    """Whether the latest commit (entry 0 of `show system commit`) still waits for confirmation.

    Only entry 0 counts: any later commit, by anyone, confirms a pending one.
    """
    _raise_if_error(device, text)
    if not _ENTRY.search(text):
        fail(device, f"show system commit lists no commits: {snippet(text)}")
    return bool(_PENDING.search(text))
