"""Parse Arista EOS `show ip route ... | json` output.

Quirks of the format that shape this code:

* EOS lists only the route it chose for each prefix, as IOS does: a static
  beaten by OSPF, or whose next hop is unreachable, is absent, not a row
  marked unselected. Every row here is therefore `selected`.
* Whether it forwards is per route, not per via: `hardwareProgrammed` says it
  is in the forwarding hardware (on cEOS/vEOS, the software forwarding
  agent). A route just added can be in the RIB, kernel-programmed, and not yet
  in hardware; that is "selected, not installed".
* `routeAction` other than `forward` (`drop` for a Null0 static) does not
  forward to any via.
* A command EOS cannot render as JSON answers `{"errors": [...]}` instead of
  a table; a command it rejects answers `% Invalid input ...` as text.
* `vrfs` holds one object per VRF. Rows carry no VRF, so output covering two
  VRFs (`vrf all`) is refused rather than merged.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

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

# Names as the other parsers report them, so a caller filters on one vocabulary.
_PROTOCOL_PREFIXES = (("ospf", "ospf"), ("isis", "isis"), ("eBGP", "bgp"), ("iBGP", "bgp"), ("bgp", "bgp"))


@dataclass(frozen=True)
class _Route:
    prefix: IPv4Network
    protocol: str
    forwarding: bool
    preference: int | None
    next_hops: tuple[IPv4Address, ...]


def _protocol(route_type: str) -> str:
    for prefix, name in _PROTOCOL_PREFIXES:
        if route_type.startswith(prefix):
            return name
    return route_type


def _next_hops(device: str, raw: object, where: str) -> tuple[IPv4Address, ...]:
    if not isinstance(raw, list):
        fail(device, f"{where} has no vias list")
    hops: list[IPv4Address] = []
    for index, via in enumerate(raw):
        if not isinstance(via, dict):
            fail(device, f"{where} via {index} is not an object")
        # Connected, Null0 and interface-only vias have no address to move.
        if "nexthopAddr" in via:
            hops.append(ipv4_address(device, via["nexthopAddr"], f"{where} via {index} nexthopAddr"))
    return tuple(hops)


def _route(device: str, prefix: IPv4Network, raw: object) -> _Route:
    where = f"route {prefix}"
    if not isinstance(raw, dict):
        fail(device, f"{where} is not an object")
    route_type = require_str(device, raw.get("routeType"), f"{where} routeType")
    if not route_type:
        fail(device, f"{where} has an empty routeType")
    hardware = require_bool(device, raw.get("hardwareProgrammed"), f"{where} hardwareProgrammed")
    action = require_str(device, raw.get("routeAction", "forward"), f"{where} routeAction")
    preference = raw.get("preference")
    return _Route(
        prefix=prefix,
        protocol=_protocol(route_type),
        forwarding=hardware and action == "forward",
        preference=None if preference is None else require_int(
            device, preference, f"{where} preference", 0, 255),
        next_hops=_next_hops(device, raw.get("vias"), where),
    )


def _routes(device: str, text: str) -> list[_Route]:
    doc = load_json(device, text, "show ip route")
    if not isinstance(doc, dict):
        fail(device, f"show ip route JSON is a {type(doc).__name__}, not an object")
    errors = doc.get("errors")
    if errors is not None:
        first = errors[0] if isinstance(errors, list) and errors else errors
        fail(device, f"device replied with an error: {snippet(str(first))}")
    vrfs = doc.get("vrfs")
    if not isinstance(vrfs, dict):
        fail(device, "show ip route JSON has no vrfs object")
    if len(vrfs) != 1:
        names = ", ".join(sorted(map(str, vrfs))) or "none"
        fail(device, f"output covers {len(vrfs)} VRFs ({names}), expected one")
    ((vrf_name, vrf),) = vrfs.items()
    if not isinstance(vrf, dict):
        fail(device, f"VRF {snippet(vrf_name)} is not an object")
    routes = vrf.get("routes")
    if not isinstance(routes, dict):
        fail(device, f"VRF {snippet(vrf_name)} has no routes object")
    return [_route(device, ipv4_network(device, key, "route key"), raw) for key, raw in routes.items()]


def parse_routes_json(device: str, text: str) -> list[StaticRoute]:
    """One row per (route, via with an address), in output order.

    `installed` is the route's `hardwareProgrammed` (and it forwards rather than drops).
    """
    return [
        StaticRoute(
            prefix=route.prefix,
            next_hop=hop,
            selected=True,
            installed=route.forwarding,
            protocol=route.protocol,
            distance=route.preference,
        )
        for route in _routes(device, text)
        for hop in route.next_hops
    ]


def fib_next_hops_json(device: str, text: str, prefix: IPv4Network) -> set[IPv4Address]:
    """Addresses the forwarding hardware sends exactly `prefix` to, whichever protocol won."""
    return {
        hop
        for route in _routes(device, text)
        if route.prefix == prefix and route.forwarding
        for hop in route.next_hops
    }
