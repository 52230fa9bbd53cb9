"""Parse `show ip route` text from Cisco IOS / IOS-XE, and FRR vtysh's look-alike.

The two dialects share the line shapes but not their meaning:

* IOS shows only the best route per prefix, all of it in the FIB, so every row
  is selected and installed; `*` there means "candidate default".
* FRR shows losing routes too: in its code field `>` is "selected" and `*` is
  "FIB". FRR prints `*` on every non-recursive next hop of an installed route,
  even one it marks `inactive` and did not install, so `inactive` overrides `*`.
  A recursive next hop never gets a `*`; the lines resolving it follow, two
  columns further right, and are FIB detail rather than configured next hops.

Every line must be recognised: an unknown line means the output is not what we
think it is (wrong command, truncation, a new format), and guessing past it
could report a route wrongly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import NoReturn

from bot.drivers.base import StaticRoute
from bot.drivers.parsers._common import (
    fail,
    ipv4_address,
    ipv4_network,
    raise_if_device_error,
    require_int,
    snippet,
)

__all__ = ["parse_show_ip_route"]

_IOS_PROTOCOLS = {
    "C": "connected", "L": "local", "S": "static", "U": "static", "P": "static",
    "R": "rip", "M": "mobile", "B": "bgp", "D": "eigrp", "O": "ospf", "i": "isis",
    "o": "odr", "H": "nhrp", "G": "nhrp", "g": "nhrp", "l": "lisp", "a": "application",
    "m": "omp", "n": "nat", "E": "egp", "I": "igrp",
}
_FRR_PROTOCOLS = {
    "K": "kernel", "C": "connected", "L": "local", "S": "static", "R": "rip",
    "O": "ospf", "I": "isis", "B": "bgp", "E": "eigrp", "N": "nhrp", "T": "table",
    "v": "vnc", "V": "vnc-direct", "A": "babel", "D": "sharp", "F": "pbr",
    "f": "openfabric", "Z": "zebra",
}

_ADDR = r"\d{1,3}(?:\.\d{1,3}){3}"

# Code letter, status flags (`*` IOS/FRR, `>` FRR, `%`/`+`/`&`/`p` IOS, maybe
# space-separated), optional sub-type (`E2`, `IA`, `L1`, `EX`, `su`, or FRR's
# `q`/`r` status letters, which then do not count as `*`).
_ROUTE = re.compile(
    rf"^(?P<code>[A-Za-z])(?P<flags>(?: ?[*>%+&p])*)(?: ?(?P<sub>[A-Za-z]{{1,2}}\d?))?\s+"
    rf"(?P<addr>{_ADDR})(?:/(?P<len>\d{{1,2}}))?(?P<rest>(?:\s.*)?)$"
)
_HEADER = re.compile(
    rf"^\s+(?P<addr>{_ADDR})/(?P<len>\d{{1,2}}) is (?P<variably>variably )?subnetted, .*$"
)
# IOS: next hops after the first carry their own [AD/metric], aligned under it.
_IOS_CONTINUATION = re.compile(r"^\s+(?P<body>\[.*|is directly connected\b.*|is a summary\b.*)$")
# FRR: next hops after the first carry only a status flag in column 2.
_FRR_CONTINUATION = re.compile(
    r"^  (?P<flags>[*>qrbto ]?)\s*(?P<body>(?:via\s|is directly connected|unreachable).*)$"
)
_BRACKET = re.compile(r"^\[(?P<ad>\d+)/(?P<metric>\d+)\](?P<after>.*)$")
_VIA = re.compile(r"^\s*via\s+(?P<nh>[^\s,]+)(?P<tail>.*)$")
_NO_NEXT_HOP = re.compile(r"^(?:,\s|\s*is directly connected\b|\s*unreachable\b|\s*is a summary\b)")
_INACTIVE = re.compile(r"\binactive\b")
# FRR's route age: hh:mm:ss under a day, then 1d02h03m, then 01w2d03h.
_FRR_UPTIME = re.compile(r", (?:\d{2}:\d{2}:\d{2}|\d+d\d{2}h\d{2}m|\d+w\dd\d{2}h)$")
_IGNORED = re.compile(r"^(?:Gateway of last resort is |Load for |Time source is )")
# The per-prefix detail view and a switch without IP routing have other shapes;
# reading them as a table would invent or drop rows.
_FOREIGN = re.compile(r"^(?:Routing entry for |Default gateway is )")
_VRF = re.compile(r"^(?:Routing Table: (?P<ios>\S+)|(?:IPv4 unicast )?VRF (?P<frr>\S+):)\s*$")


@dataclass
class _Hop:
    address: IPv4Address
    distance: int
    installed: bool
    column: int
    recursive: bool = False
    resolvers: int = 0


@dataclass
class _Route:
    prefix: IPv4Network
    protocol: str
    selected: bool
    distance: int | None
    # None until a next-hop part is seen: IOS wraps a long route after the
    # prefix, and the next line must then supply where it goes.
    column: int | None
    hops: list[_Hop] = field(default_factory=list)
    owner: _Hop | None = None


@dataclass(frozen=True)
class _Subnetted:
    major: IPv4Network
    length: int | None


def _classful(address: IPv4Address) -> IPv4Network:
    first = int(address) >> 24
    length = 8 if first < 128 else 16 if first < 192 else 24
    return IPv4Network(f"{address}/{length}", strict=False)


def _is_frr(lines: list[str]) -> bool:
    for line in lines:
        if "> - selected route" in line or re.search(r", weight \d+", line):
            return True
        match = _ROUTE.match(line)
        if match and ">" in match["flags"]:
            return True
    return False


class _Parser:
    def __init__(self, device: str, frr: bool) -> None:
        self.device = device
        self.frr = frr
        self.routes: list[_Route] = []
        self.current: _Route | None = None
        self.subnetted: _Subnetted | None = None
        self.vrf: str | None = None

    def fail(self, number: int | None, problem: str) -> NoReturn:
        fail(self.device, f"{'end of output' if number is None else f'line {number}'}: {problem}")

    def close_current(self, number: int | None) -> None:
        route = self.current
        if route is not None and route.column is None:
            self.fail(number, f"route {route.prefix} has no next-hop line")
        if route is not None:
            for hop in route.hops:
                # FRR always shows what a recursive next hop resolved through;
                # without those lines its FIB state is unknown (cut output).
                if hop.recursive and not hop.resolvers:
                    self.fail(number, f"recursive next hop {hop.address} has no resolving line")
        self.current = None

    def prefix(self, number: int, addr: str, length: str | None) -> IPv4Network:
        if length is not None:
            return ipv4_network(self.device, f"{addr}/{length}", f"line {number}: prefix")
        # Under "A.B.C.D/M is subnetted" IOS drops the length from each line.
        address = ipv4_address(self.device, addr, f"line {number}: prefix")
        context = self.subnetted
        if context is None or context.length is None:
            fail(self.device, f"line {number}: {addr} has no length and no 'is subnetted' header")
        if address not in context.major:
            fail(self.device, f"line {number}: {addr} is outside the {context.major} header above it")
        return ipv4_network(self.device, f"{addr}/{context.length}", f"line {number}: prefix")

    def header(self, number: int, match: re.Match[str]) -> None:
        self.close_current(number)
        address = ipv4_address(self.device, match["addr"], f"line {number}: header network")
        length = require_int(self.device, int(match["len"]), f"line {number}: header length", 0, 32)
        self.subnetted = _Subnetted(_classful(address), None if match["variably"] else length)

    def route(self, number: int, match: re.Match[str]) -> None:
        self.close_current(number)
        code = match["code"]
        protocols = _FRR_PROTOCOLS if self.frr else _IOS_PROTOCOLS
        if code not in protocols:
            self.fail(number, f"unknown route code {code!r}")
        route = _Route(
            prefix=self.prefix(number, match["addr"], match["len"]),
            protocol=protocols[code],
            selected=(">" in match["flags"]) if self.frr else True,
            distance=None,
            column=None,
        )
        self.current = route
        self.routes.append(route)
        rest = match["rest"]
        if not rest.strip():
            if self.frr:
                self.fail(number, f"route {route.prefix} has nothing after the prefix")
            return
        body_column = match.start("rest") + len(rest) - len(rest.lstrip())
        self.next_hop(number, route, rest.strip(), body_column, "*" in match["flags"])

    def next_hop(self, number: int, route: _Route, body: str, column: int, star: bool) -> None:
        if self.frr and _FRR_UPTIME.search(body) is None:
            # FRR ends every next-hop line with the route's age, so a line without
            # it was cut short, and what was cut may be the word "inactive".
            self.fail(number, f"next-hop line does not end with an uptime (truncated?): {snippet(body)}")
        bracket = _BRACKET.match(body)
        if bracket:
            distance: int | None = require_int(
                self.device, int(bracket["ad"]), f"line {number}: administrative distance", 0, 255)
            after = bracket["after"]
            column += bracket.start("after") + len(after) - len(after.lstrip())
        elif self.frr or route.column is None:
            # FRR continuations never repeat [AD/metric]; connected routes have none.
            distance = route.distance
            after = " " + body
        else:
            self.fail(number, f"next-hop line has no [distance/metric]: {snippet(body)}")
        if route.column is None:
            route.column = column
            route.distance = distance
        elif self.frr and column > route.column:
            self.resolver(number, route, after, star)
            return
        elif self.frr and column < route.column:
            self.fail(number, f"next-hop line is out of column: {snippet(body)}")
        route.owner = None
        via = _VIA.match(after)
        if via is None:
            if _NO_NEXT_HOP.match(after) is None:
                self.fail(number, f"unrecognised route line: {snippet(body)}")
            return
        if distance is None:
            self.fail(number, f"next hop for {route.prefix} has no [distance/metric]")
        tail = via["tail"]
        recursive = "(recursive)" in tail
        inactive = _INACTIVE.search(tail) is not None
        hop = _Hop(
            address=ipv4_address(self.device, via["nh"], f"line {number}: next hop"),
            distance=distance,
            installed=(star and not inactive and not recursive) if self.frr else True,
            column=column,
            recursive=recursive,
        )
        route.hops.append(hop)
        if recursive:
            route.owner = hop

    def resolver(self, number: int, route: _Route, after: str, star: bool) -> None:
        if route.owner is None:
            self.fail(number, f"indented next hop under a non-recursive one: {snippet(after)}")
        route.owner.resolvers += 1
        # Only the FIB state of a resolver matters: it says whether the
        # recursive next hop it belongs to is actually forwarding.
        if star and _INACTIVE.search(after) is None and "(recursive)" not in after:
            route.owner.installed = True

    def continuation(self, number: int, line: str) -> bool:
        route = self.current
        if self.frr:
            match = _FRR_CONTINUATION.match(line)
            if match is None:
                return False
            if route is None:
                self.fail(number, "next-hop line before any route")
            self.next_hop(number, route, match["body"], match.start("body"), "*" in match["flags"])
            return True
        match = _IOS_CONTINUATION.match(line)
        if match is None:
            return False
        if route is None:
            self.fail(number, "next-hop line before any route")
        self.next_hop(number, route, match["body"], match.start("body"), True)
        return True

    def vrf_header(self, number: int, name: str) -> None:
        self.close_current(number)
        # Rows carry no VRF, so two tables in one output would merge silently.
        if self.vrf is not None and self.vrf != name:
            self.fail(number, f"output covers more than one routing table ({self.vrf}, {name})")
        self.vrf = name
        self.subnetted = None

    def rows(self) -> list[StaticRoute]:
        rows: list[StaticRoute] = []
        for route in self.routes:
            for hop in route.hops:
                rows.append(StaticRoute(
                    prefix=route.prefix,
                    next_hop=hop.address,
                    selected=route.selected,
                    installed=hop.installed,
                    protocol=route.protocol,
                    distance=hop.distance,
                ))
        return rows


def parse_show_ip_route(device: str, text: str) -> list[StaticRoute]:
    """Rows for every next hop with an address; connected, local, Null0 and
    interface-only routes have none and yield no row.

    Empty output is an empty table: FRR prints nothing at all, not even its
    legend, when no route matches.
    """
    raise_if_device_error(device, text)
    lines = text.expandtabs().splitlines()
    parser = _Parser(device, _is_frr(lines))
    in_legend = False
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip()
        if not line.strip():
            in_legend = False
            continue
        if line.startswith("Codes:"):
            in_legend = True
            continue
        if in_legend and line[0].isspace() and " - " in line:
            continue
        in_legend = False
        vrf = _VRF.match(line)
        if vrf:
            parser.vrf_header(number, vrf["ios"] or vrf["frr"])
            continue
        if _FOREIGN.match(line):
            parser.fail(number, f"not a routing table listing: {snippet(line)}")
        if _IGNORED.match(line):
            parser.close_current(number)
            continue
        header = _HEADER.match(line)
        if header:
            parser.header(number, header)
            continue
        route = _ROUTE.match(line)
        if route:
            parser.route(number, route)
            continue
        if line[0].isspace() and parser.continuation(number, line):
            continue
        parser.fail(number, f"unrecognised line: {snippet(line)}")
    parser.close_current(None)
    return parser.rows()


# `configure terminal revert timer N` arms this; its state is what a restarted lasthop asks.
ROLLBACK_TIMER = "show archive config rollback timer"
NO_ROLLBACK_PENDING = "No Rollback Confirmed Change pending"
_TIMER_FIELD = re.compile(r"^\s*Timer (?:type|value)\s*:", re.M)


def rollback_timer_pending(device: str, text: str) -> bool:
    """Whether `show archive config rollback timer` shows an armed timer (a commit waiting for
    `configure confirm`). IOS prints the timer's fields when one is armed, and a `%No Rollback
    Confirmed Change pending` refusal when none is."""
    if NO_ROLLBACK_PENDING in text:
        return False
    if _TIMER_FIELD.search(text):
        return True
    fail(device, f"cannot tell from '{ROLLBACK_TIMER}' whether a commit is pending: {snippet(text)}")
