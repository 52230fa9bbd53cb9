"""Parse FRR vtysh `show ip route ... json` output.

Quirks of the real output (FRR 8.4) that shape this code:

* A route that lost to another (higher distance, or a kernel route) still lists
  its next hops with `"fib": true` when it shares a nexthop group with an
  installed route. Only the route entry's `installed` says whether it is in
  the FIB, so a next hop counts as installed only when both agree.
* A recursive next hop (`"recursive": true`) never carries `fib`; the next hops
  it resolved through follow it in the list with `"resolver": true`. They are
  not configured next hops, so they are not rows; they decide whether the
  recursive one is in the FIB, and they are what the FIB forwards to.
* A static whose next hop does not resolve is not in zebra at all (staticd
  holds it back), so it is absent from this output rather than "not installed".
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, ip_address

from bot.drivers.base import StaticRoute
from bot.drivers.parsers._common import (
    fail,
    ipv4_address,
    ipv4_network,
    load_json,
    require_bool,
    require_int,
    require_str,
    snippet,
)

__all__ = ["fib_next_hops_json", "parse_routes_json"]


@dataclass(frozen=True)
class _Hop:
    address: IPv4Address | None
    fib: bool
    recursive: bool
    resolver: bool


@dataclass(frozen=True)
class _Entry:
    prefix: IPv4Network
    protocol: str
    selected: bool
    installed: bool
    distance: int | None
    hops: tuple[_Hop, ...]


def _hop(device: str, raw: object, where: str) -> _Hop | None:
    """One nexthop object; None for a non-IPv4 next hop that cannot be a row."""
    if not isinstance(raw, dict):
        fail(device, f"{where} is not an object")
    fib = require_bool(device, raw.get("fib", False), f"{where} fib")
    recursive = require_bool(device, raw.get("recursive", False), f"{where} recursive")
    resolver = require_bool(device, raw.get("resolver", False), f"{where} resolver")
    ip = raw.get("ip")
    if ip is None:
        # Interface-only and blackhole next hops have no address to move.
        return _Hop(None, fib, recursive, resolver)
    afi = raw.get("afi", "ipv4")
    if afi == "ipv6":
        # An IPv4 route over an IPv6 next hop (BGP unnumbered): real, but not
        # something a static-route bot can name; only accept it if it is v6.
        text = require_str(device, ip, f"{where} ip")
        try:
            if ip_address(text).version == 6:
                return None
        except ValueError:
            pass
        fail(device, f"{where} has afi ipv6 but ip {snippet(text)}")
    if afi != "ipv4":
        fail(device, f"{where} has unknown afi {snippet(repr(afi))}")
    return _Hop(ipv4_address(device, ip, f"{where} ip"), fib, recursive, resolver)


def _entries(device: str, text: str) -> list[_Entry]:
    doc = load_json(device, text, "show ip route")
    if not isinstance(doc, dict):
        fail(device, f"show ip route JSON is a {type(doc).__name__}, not an object of prefixes")
    entries: list[_Entry] = []
    for key, routes in doc.items():
        prefix = ipv4_network(device, key, "route key")
        if not isinstance(routes, list):
            fail(device, f"routes for {prefix} are not a list")
        for index, raw in enumerate(routes):
            where = f"route {prefix} entry {index}"
            if not isinstance(raw, dict):
                fail(device, f"{where} is not an object")
            if "prefix" in raw and ipv4_network(device, raw["prefix"], f"{where} prefix") != prefix:
                fail(device, f"{where} names prefix {snippet(str(raw['prefix']))}")
            protocol = require_str(device, raw.get("protocol"), f"{where} protocol")
            if not protocol:
                fail(device, f"{where} has an empty protocol")
            distance_raw = raw.get("distance")
            distance = None if distance_raw is None else require_int(
                device, distance_raw, f"{where} distance", 0, 255)
            nexthops = raw.get("nexthops")
            if not isinstance(nexthops, list):
                fail(device, f"{where} has no nexthops list")
            hops = [_hop(device, nh, f"{where} nexthop {i}") for i, nh in enumerate(nexthops)]
            entries.append(_Entry(
                prefix=prefix,
                protocol=protocol,
                selected=require_bool(device, raw.get("selected", False), f"{where} selected"),
                installed=require_bool(device, raw.get("installed", False), f"{where} installed"),
                distance=distance,
                hops=tuple(h for h in hops if h is not None),
            ))
    return entries


@dataclass
class _Row:
    address: IPv4Address
    fib: bool


def _configured_hops(entry: _Entry) -> list[_Row]:
    """Configured next hops and whether each is in the FIB; resolvers fold into their owner."""
    rows: list[_Row] = []
    owner: _Row | None = None
    for hop in entry.hops:
        if hop.resolver:
            # FRR lists resolvers right after the recursive hop they resolve.
            if owner is not None and hop.fib:
                owner.fib = True
            continue
        owner = None
        if hop.address is None:
            continue
        row = _Row(hop.address, hop.fib and not hop.recursive)
        rows.append(row)
        if hop.recursive:
            owner = row
    for row in rows:
        row.fib = row.fib and entry.installed
    return rows


def parse_routes_json(device: str, text: str) -> list[StaticRoute]:
    """One row per (route entry, next hop with an address), in output order.

    `installed` is true only when the entry is installed and the next hop is in
    the FIB (for a recursive next hop: one of its resolvers is).
    """
    routes: list[StaticRoute] = []
    for entry in _entries(device, text):
        for row in _configured_hops(entry):
            routes.append(StaticRoute(
                prefix=entry.prefix,
                next_hop=row.address,
                selected=entry.selected,
                installed=row.fib,
                protocol=entry.protocol,
                distance=entry.distance,
            ))
    return routes


def fib_next_hops_json(device: str, text: str, prefix: IPv4Network) -> set[IPv4Address]:
    """Addresses the FIB forwards `prefix` to, whichever protocol's route won.

    For a recursive route these are the resolved gateways, as in the kernel.
    """
    hops: set[IPv4Address] = set()
    for entry in _entries(device, text):
        if entry.prefix != prefix or not entry.installed:
            continue
        hops.update(h.address for h in entry.hops if h.fib and h.address is not None)
    return hops
