"""Parse what a web host says about its loopback VIPs, ARP sysctls and routing.

Three ways to list loopback addresses, newest first, because old hosts lack
`ip -j` (iproute2 < 4.13) or `ip` altogether. Quirks of the real outputs:

* `ip -j addr`: inet entries carry `label` ("lo", "lo:1"); inet6 ones do not.
  Some iproute2 4.x/5.x releases print `{}` for a filtered-out interface or
  address, so empty objects are skipped rather than refused.
* `ip -o addr`: the label is the last word before the `\\` that joins the
  continuation line.
* `ifconfig` (net-tools) shows only the first address of each label: an extra
  address added with `ip addr add ... dev lo` without a label is invisible
  to it, so prefer the `ip` parsers whenever they work.
* `ip -j route get` omits `type` for a unicast route.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address

from bot.drivers.parsers._common import (
    fail,
    ipv4_address,
    load_json,
    netmask_to_prefixlen,
    raise_if_device_error,
    require_int,
    require_str,
    snippet,
)

__all__ = [
    "LoopbackAddress",
    "RouteGet",
    "parse_ifconfig",
    "parse_ip_addr_json",
    "parse_ip_o_addr",
    "parse_route_get_json",
    "parse_sysctl",
]

_LOOPBACK_LABEL = re.compile(r"^lo(?::[\w.\-]+)?$")


@dataclass(frozen=True)
class LoopbackAddress:
    address: IPv4Address
    prefixlen: int
    label: str


@dataclass(frozen=True)
class RouteGet:
    dst: IPv4Address
    type: str
    dev: str | None

    @property
    def is_local(self) -> bool:
        """The host will accept traffic for `dst` itself (it is one of its addresses)."""
        return self.type == "local"


def _label(device: str, value: str, where: str) -> str:
    if not _LOOPBACK_LABEL.match(value):
        fail(device, f"{where} label {snippet(value)} is not a loopback label")
    return value


def parse_ip_addr_json(device: str, text: str) -> list[LoopbackAddress]:
    """IPv4 addresses of `lo` from `ip -j addr show dev lo`; other interfaces are ignored."""
    doc = load_json(device, text, "ip addr")
    if not isinstance(doc, list):
        fail(device, f"ip addr JSON is a {type(doc).__name__}, not a list of interfaces")
    found: list[LoopbackAddress] = []
    for index, link in enumerate(doc):
        if not isinstance(link, dict):
            fail(device, f"interface {index} is not an object")
        if not link:
            continue
        name = require_str(device, link.get("ifname"), f"interface {index} ifname")
        if name != "lo":
            continue
        infos = link.get("addr_info", [])
        if not isinstance(infos, list):
            fail(device, "lo addr_info is not a list")
        for position, info in enumerate(infos):
            where = f"lo address {position}"
            if not isinstance(info, dict):
                fail(device, f"{where} is not an object")
            if not info or info.get("family") == "inet6":
                continue
            if info.get("family") != "inet":
                fail(device, f"{where} has unknown family {snippet(repr(info.get('family')))}")
            found.append(LoopbackAddress(
                address=ipv4_address(device, info.get("local"), f"{where} local"),
                prefixlen=require_int(device, info.get("prefixlen"), f"{where} prefixlen", 0, 32),
                label=_label(device, require_str(device, info.get("label", "lo"), f"{where} label"),
                             where),
            ))
    return found


_IP_O_LINE = re.compile(r"^\d+:\s+(?P<ifname>\S+)\s+(?P<family>inet6?|link/\S+)\s+(?P<rest>.*)$")
_IP_O_INET = re.compile(r"^(?P<addr>[^\s/]+)/(?P<len>\d{1,2})\s(?P<attrs>.*)$")


def parse_ip_o_addr(device: str, text: str) -> list[LoopbackAddress]:
    """IPv4 addresses of `lo` from `ip -o -4 addr show dev lo` (one line per address).

    Empty output is an empty list: `ip -o -4` prints nothing for a device with
    no IPv4 address, and an unknown device is an error message instead.
    """
    raise_if_device_error(device, text)
    found: list[LoopbackAddress] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _IP_O_LINE.match(line)
        if match is None:
            fail(device, f"line {number}: not an `ip -o addr` line: {snippet(line)}")
        if match["family"] != "inet" or match["ifname"] != "lo":
            continue
        inet = _IP_O_INET.match(match["rest"])
        if inet is None:
            fail(device, f"line {number}: no address/length after inet: {snippet(line)}")
        # Attributes end at the `\` that stands for the folded line break.
        words = inet["attrs"].split("\\", 1)[0].split()
        if not words:
            fail(device, f"line {number}: no label after the address: {snippet(line)}")
        found.append(LoopbackAddress(
            address=ipv4_address(device, inet["addr"], f"line {number}: address"),
            prefixlen=require_int(device, int(inet["len"]), f"line {number}: prefix length", 0, 32),
            label=_label(device, words[-1], f"line {number}:"),
        ))
    return found


_IFCONFIG_OLD_HEAD = re.compile(r"^(?P<name>\S+)\s+Link encap:")
_IFCONFIG_NEW_HEAD = re.compile(r"^(?P<name>\S+?):? flags=\d+<")
_IFCONFIG_OLD_INET = re.compile(r"^\s+inet addr:(?P<addr>\S+)\s.*?\bMask:(?P<mask>\S+)\s*$")
_IFCONFIG_NEW_INET = re.compile(r"^\s+inet (?P<addr>\S+)\s+netmask (?P<mask>\S+)(?:\s.*)?$")


def parse_ifconfig(device: str, text: str) -> list[LoopbackAddress]:
    """IPv4 addresses of `lo` and `lo:N` from `ifconfig` or `ifconfig -a`, in
    either the old (`inet addr:... Mask:...`) or the new (`inet ... netmask ...`)
    net-tools format; other interfaces are ignored.
    """
    raise_if_device_error(device, text)
    if not text.strip():
        fail(device, "empty ifconfig output")
    found: list[LoopbackAddress] = []
    name: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if not line[0].isspace():
            head = _IFCONFIG_OLD_HEAD.match(line) or _IFCONFIG_NEW_HEAD.match(line)
            if head is None:
                fail(device, f"line {number}: not an ifconfig interface line: {snippet(line)}")
            name = head["name"]
            continue
        if name is None:
            fail(device, f"line {number}: indented line before any interface: {snippet(line)}")
        if not line.lstrip().startswith("inet "):
            continue
        inet = _IFCONFIG_OLD_INET.match(line) or _IFCONFIG_NEW_INET.match(line)
        if inet is None:
            fail(device, f"line {number}: unrecognised inet line: {snippet(line)}")
        if not _LOOPBACK_LABEL.match(name):
            continue
        found.append(LoopbackAddress(
            address=ipv4_address(device, inet["addr"], f"line {number}: address"),
            prefixlen=netmask_to_prefixlen(device, inet["mask"], f"line {number}: netmask"),
            label=name,
        ))
    return found


def parse_route_get_json(device: str, text: str) -> RouteGet:
    """The route the host would use for one address, from `ip -j route get ADDR`."""
    doc = load_json(device, text, "ip route get")
    if not isinstance(doc, list) or len(doc) != 1:
        fail(device, "ip route get JSON is not a list of exactly one route")
    route = doc[0]
    if not isinstance(route, dict):
        fail(device, "ip route get result is not an object")
    dev = route.get("dev")
    return RouteGet(
        dst=ipv4_address(device, route.get("dst"), "route get dst"),
        type=require_str(device, route.get("type", "unicast"), "route get type"),
        dev=None if dev is None else require_str(device, dev, "route get dev"),
    )


_SYSCTL = re.compile(r"^(?P<name>[A-Za-z0-9_][\w.\-/:@]*)\s*=\s?(?P<value>.*)$")


def parse_sysctl(device: str, text: str) -> dict[str, str]:
    """`name = value` lines of `sysctl NAME...`; any error line is a ParseError,
    so a missing key is never mistaken for a default value.
    """
    raise_if_device_error(device, text)
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _SYSCTL.match(line.strip())
        if match is None:
            fail(device, f"line {number}: not a `name = value` line: {snippet(line)}")
        name, value = match["name"], match["value"].strip()
        if values.get(name, value) != value:
            fail(device, f"line {number}: {name} appears twice with different values")
        values[name] = value
    if not values:
        fail(device, "no sysctl values in the output")
    return values
