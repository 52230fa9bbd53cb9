"""Pure parsers of device output: text in, values out, ParseError on anything unexpected.

They never talk to a device, so each one is tested against captured outputs.
"""

from __future__ import annotations

from bot.drivers.parsers.frr import fib_next_hops_json, parse_routes_json
from bot.drivers.parsers.host import (
    LoopbackAddress,
    RouteGet,
    parse_ifconfig,
    parse_ip_addr_json,
    parse_ip_o_addr,
    parse_route_get_json,
    parse_sysctl,
)
from bot.drivers.parsers.ios import parse_show_ip_route
from bot.drivers.parsers.linux import fib_next_hops_linux, parse_ip_route_json

__all__ = [
    "LoopbackAddress",
    "RouteGet",
    "fib_next_hops_json",
    "fib_next_hops_linux",
    "parse_ifconfig",
    "parse_ip_addr_json",
    "parse_ip_o_addr",
    "parse_ip_route_json",
    "parse_route_get_json",
    "parse_routes_json",
    "parse_show_ip_route",
    "parse_sysctl",
]
