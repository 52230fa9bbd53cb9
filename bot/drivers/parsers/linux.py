"""Parse iproute2 `ip -j route show` output (the kernel table is the FIB).

Quirks of the real output (iproute2 6.1) that shape this code:

* `dst` is "default" for 0.0.0.0/0 and a bare address for a /32.
* `protocol` is omitted for `proto boot`, the default of `ip route add`.
* `metric` is omitted when 0, and `type` when unicast.
* `table` is omitted for the main table, and `show table all` mixes in IPv6
  routes (whose default is also "default") with no family field.
* Two routes for one prefix with different metrics both appear; the kernel
  forwards with the lowest metric only, so the others are neither selected nor
  installed here (a blackhole or unreachable route can be the lowest one).
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
    require_int,
    require_str,
    snippet,
)

__all__ = ["fib_next_hops_linux", "parse_ip_route_json"]

_DEFAULT_PROTOCOL = "boot"
_METRIC_MAX = 0xFFFFFFFF


@dataclass(frozen=True)
class _Gateway:
    address: IPv4Address
    # The kernel skips a dead next hop of a multipath route.
    dead: bool


@dataclass(frozen=True)
class _Route:
    prefix: IPv4Network
    table: str
    metric: int
    tos: str
    unicast: bool
    protocol: str
    gateways: tuple[_Gateway, ...]


def _is_ipv6(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return ip_address(value).version == 6
    except ValueError:
        return False


def _flags(device: str, raw: dict[str, object], where: str) -> list[str]:
    flags = raw.get("flags", [])
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        fail(device, f"{where} flags are not a list of words")
    return [str(f) for f in flags]


def _gateways(device: str, raw: dict[str, object], where: str) -> list[_Gateway] | None:
    """The route's gateways; None when it is an IPv6 route to leave out."""
    if "via" in raw:
        # `via inet6 ...`: an IPv4 route over an IPv6 next hop has no IPv4 gateway
        # to report, and dropping it would hide a live route.
        fail(device, f"{where} has a next hop of another address family")
    if "gateway" in raw and "nexthops" in raw:
        fail(device, f"{where} has both a gateway and a nexthops list")
    members: list[tuple[dict[str, object], str]]
    if "nexthops" in raw:
        hops = raw["nexthops"]
        if not isinstance(hops, list) or not hops:
            fail(device, f"{where} nexthops is not a non-empty list")
        members = []
        for index, hop in enumerate(hops):
            if not isinstance(hop, dict):
                fail(device, f"{where} nexthop {index} is not an object")
            if "via" in hop:
                fail(device, f"{where} nexthop {index} is of another address family")
            members.append((hop, f"{where} nexthop {index}"))
    else:
        members = [(raw, where)]
    if any(_is_ipv6(hop.get("gateway")) for hop, _ in members):
        return None
    gateways: list[_Gateway] = []
    for hop, label in members:
        if "gateway" not in hop:
            continue
        gateways.append(_Gateway(
            ipv4_address(device, hop["gateway"], f"{label} gateway"),
            "dead" in _flags(device, hop, label),
        ))
    return gateways


def _routes(device: str, text: str) -> list[_Route]:
    doc = load_json(device, text, "ip route")
    if not isinstance(doc, list):
        fail(device, f"ip route JSON is a {type(doc).__name__}, not a list of routes")
    routes: list[_Route] = []
    for index, raw in enumerate(doc):
        where = f"route {index}"
        if not isinstance(raw, dict):
            fail(device, f"{where} is not an object")
        dst = require_str(device, raw.get("dst"), f"{where} dst")
        if ":" in dst:
            continue
        if dst == "default":
            prefix = IPv4Network("0.0.0.0/0")
        elif "/" in dst:
            prefix = ipv4_network(device, dst, f"{where} dst")
        else:
            prefix = IPv4Network(ipv4_address(device, dst, f"{where} dst"))
        where = f"route {prefix}"
        kind = require_str(device, raw.get("type", "unicast"), f"{where} type")
        gateways = _gateways(device, raw, where)
        if gateways is None:
            if dst != "default":
                fail(device, f"{where} has an IPv6 gateway")
            continue  # the IPv6 default route of `show table all`
        routes.append(_Route(
            prefix=prefix,
            table=str(raw.get("table", "main")),
            metric=require_int(device, raw.get("metric", 0), f"{where} metric", 0, _METRIC_MAX),
            tos=str(raw.get("tos", "")),
            unicast=kind == "unicast",
            protocol=require_str(device, raw.get("protocol", _DEFAULT_PROTOCOL), f"{where} protocol"),
            gateways=tuple(gateways),
        ))
    return routes


def _best_metrics(routes: list[_Route]) -> dict[tuple[IPv4Network, str, str], int]:
    best: dict[tuple[IPv4Network, str, str], int] = {}
    for route in routes:
        key = (route.prefix, route.table, route.tos)
        best[key] = min(best.get(key, route.metric), route.metric)
    return best


def parse_ip_route_json(device: str, text: str) -> list[StaticRoute]:
    """One row per (unicast route, gateway); connected and non-unicast routes
    have no gateway to move and yield no row. `distance` stays None: a metric
    is not an administrative distance.
    """
    routes = _routes(device, text)
    best = _best_metrics(routes)
    rows: list[StaticRoute] = []
    for route in routes:
        if not route.unicast:
            continue
        chosen = route.metric == best[(route.prefix, route.table, route.tos)]
        for gateway in route.gateways:
            rows.append(StaticRoute(
                prefix=route.prefix,
                next_hop=gateway.address,
                selected=chosen,
                installed=chosen and not gateway.dead,
                protocol=route.protocol,
                distance=None,
            ))
    return rows


def fib_next_hops_linux(device: str, text: str, prefix: IPv4Network) -> set[IPv4Address]:
    """Gateways the kernel forwards `prefix` to, from `ip -j route show exact PREFIX`.

    Only the main table and TOS-less routes count: that is what ordinary
    traffic to the prefix uses.
    """
    if not isinstance(prefix, IPv4Network):
        fail(device, f"asked for next hops of a non-IPv4 prefix {snippet(repr(prefix))}")
    routes = [
        r for r in _routes(device, text)
        if r.prefix == prefix and r.table == "main" and not r.tos
    ]
    if not routes:
        return set()
    lowest = min(r.metric for r in routes)
    return {
        g.address
        for r in routes
        if r.metric == lowest and r.unicast
        for g in r.gateways
        if not g.dead
    }
