"""Every name and address of one lab, derived from its prefix and slot alone.

This is the only module of the lab that holds address literals: everything else
asks the plan, so two labs (different prefix and slot) can never disagree about
who is where, and the documentation-only ranges are enforced in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any, Literal

from lab.errors import LabError

DeviceKind = Literal["frr", "linux", "host"]

# RFC 5737 documentation nets and the RFC 2544 benchmarking block: traffic to
# them can never reach a real network by accident, which is why nothing else is used.
ALLOWED_RANGES: tuple[IPv4Network, ...] = (
    IPv4Network("198.51.100.0/24"),
    IPv4Network("203.0.113.0/24"),
    IPv4Network("192.0.2.0/24"),
    IPv4Network("198.18.0.0/15"),
)

VIP_BLOCK = IPv4Network("198.51.100.0/24")
# The servers' Ethernet side is the first /27 of the VIP block, as in the seed article (there,
# the first /27 of a private class C). Not 192.0.2.0/24: a sandbox's own uplink may use that
# range, and the root namespace must never have a lab destination that is one of its own addresses.
SERVER_LAN = IPv4Network("198.51.100.0/27")
CLIENT_LAN = IPv4Network("203.0.113.0/28")
# One /24 per slot: the root namespace sees only this net, so labs with
# different slots can run side by side.
_MGMT_BASE = IPv4Address("198.18.0.0")
MAX_SLOT = 255
DEFAULT_ROUTE = IPv4Network("0.0.0.0/0")

# Interface names are limited to 15 characters; "<prefix>-mgmt" is the longest.
_PREFIX_RE = re.compile(r"[a-z][a-z0-9]{0,5}")

BRIDGE_LAN = "br-lan"
BRIDGE_CLIENT = "br-cli"
BRIDGE_MGMT = "br-mgmt"
BRIDGES = (BRIDGE_LAN, BRIDGE_CLIENT, BRIDGE_MGMT)
ROOT_SWITCH_PORT = "root-mgmt"
WEB_PORT = 80

# (host offset in the mgmt /24, host offset in the server LAN, kind)
_ROUTERS: dict[str, tuple[int, int, DeviceKind]] = {
    "r1": (11, 1, "frr"),
    "r2": (12, 30, "linux"),
}
_CLIENT_LAN_OFFSETS = {"r1": 1, "r2": 2, "client": 10}
_HOSTS = ("web1", "web2", "web3")
_ROOT_MGMT_OFFSET = 1
# Root-namespace routing table (and rule priority) per slot for traffic sourced from the
# lab's root mgmt address: lasthop's health checks and VIP probes, routed through the routers.
PROBE_TABLE_BASE = 3000
# webN sits at mgmt .2N
_HOST_MGMT_BASE = 20

# (name, prefix, vip, router, initial host)
_SERVICES = (
    ("www-a", "198.51.100.32/27", "198.51.100.33", "r1", "web1"),
    ("www-b", "198.51.100.64/27", "198.51.100.65", "r1", "web2"),
    ("www-c", "198.51.100.200/32", "198.51.100.200", "r1", "web3"),
    ("www-d", "198.51.100.96/27", "198.51.100.97", "r2", "web1"),
)
# The client reaches the whole VIP block through r1, except what r2 serves.
_CLIENT_ROUTES = (
    ("198.51.100.0/24", "r1"),
    ("198.51.100.96/27", "r2"),
)


class PlanError(LabError, ValueError):
    """A prefix or slot that cannot make a valid lab."""


@dataclass(frozen=True)
class Route:
    destination: IPv4Network
    gateway: IPv4Address


@dataclass(frozen=True)
class Link:
    """One veth pair: `ifname` inside `namespace`, `switch_port` on `bridge` in the switch."""

    namespace: str
    ifname: str
    bridge: str
    switch_port: str
    address: IPv4Interface


@dataclass(frozen=True)
class Device:
    """Something reachable over SSH on the mgmt net."""

    name: str
    namespace: str
    kind: DeviceKind
    mgmt: IPv4Interface

    @property
    def address(self) -> IPv4Address:
        return self.mgmt.ip


@dataclass(frozen=True)
class Host:
    """A web server: the VIPs on its loopback, one address on the server LAN."""

    name: str
    namespace: str
    address: IPv4Interface


@dataclass(frozen=True)
class Vip:
    address: IPv4Address
    label: str

    @property
    def interface(self) -> IPv4Interface:
        return IPv4Interface((self.address, 32))


@dataclass(frozen=True)
class Service:
    """A VIP prefix and the static route for it on one router."""

    name: str
    prefix: IPv4Network
    vip: IPv4Address
    router: str
    initial_host: str
    next_hop: IPv4Address


@dataclass(frozen=True)
class LabPlan:
    prefix: str = "lh"
    slot: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str) or not _PREFIX_RE.fullmatch(self.prefix):
            raise PlanError(
                f"bad lab prefix {self.prefix!r}: use 1-6 lowercase letters or digits, starting with a letter"
            )
        # bool is an int; a slot of True is a bug, not slot 1.
        if isinstance(self.slot, bool) or not isinstance(self.slot, int):
            raise PlanError(f"bad lab slot {self.slot!r}: must be an integer")
        if not 0 <= self.slot <= MAX_SLOT:
            raise PlanError(f"bad lab slot {self.slot}: must be 0..{MAX_SLOT}")

    # --- names -----------------------------------------------------------

    def ns(self, suffix: str) -> str:
        return f"{self.prefix}-{suffix}"

    @property
    def switch_ns(self) -> str:
        return self.ns("sw")

    @property
    def client_ns(self) -> str:
        return self.ns("client")

    @property
    def namespaces(self) -> tuple[str, ...]:
        """Switch first: every other namespace is wired into it."""
        names = ["sw", *_ROUTERS, *_HOSTS, "client"]
        return tuple(self.ns(n) for n in names)

    @property
    def root_mgmt_ifname(self) -> str:
        return self.ns("mgmt")

    @property
    def frr_pathspace(self) -> str:
        return self.ns("r1")

    # --- addresses ------------------------------------------------------

    @property
    def mgmt_net(self) -> IPv4Network:
        return IPv4Network((int(_MGMT_BASE) + 256 * self.slot, 24))

    def _mgmt(self, offset: int) -> IPv4Interface:
        return IPv4Interface((self.mgmt_net[offset], self.mgmt_net.prefixlen))

    @property
    def root_mgmt(self) -> IPv4Interface:
        return self._mgmt(_ROOT_MGMT_OFFSET)

    @property
    def gateway(self) -> IPv4Address:
        """The web hosts' default route: r1 on the server LAN."""
        return SERVER_LAN[_ROUTERS["r1"][1]]

    def _lan(self, offset: int) -> IPv4Interface:
        return IPv4Interface((SERVER_LAN[offset], SERVER_LAN.prefixlen))

    def _cli(self, who: str) -> IPv4Interface:
        return IPv4Interface((CLIENT_LAN[_CLIENT_LAN_OFFSETS[who]], CLIENT_LAN.prefixlen))

    @property
    def client_address(self) -> IPv4Interface:
        return self._cli("client")

    @property
    def devices(self) -> tuple[Device, ...]:
        routers = [Device(name, self.ns(name), kind, self._mgmt(mgmt)) for name, (mgmt, _lan, kind) in _ROUTERS.items()]
        hosts = [
            Device(name, self.ns(name), "host", self._mgmt(_HOST_MGMT_BASE + i))
            for i, name in enumerate(_HOSTS, start=1)
        ]
        return (*routers, *hosts)

    @property
    def hosts(self) -> tuple[Host, ...]:
        return tuple(Host(name, self.ns(name), self._lan(1 + i)) for i, name in enumerate(_HOSTS, start=1))

    def device(self, name: str) -> Device:
        for device in self.devices:
            if name in (device.name, device.namespace):
                return device
        raise PlanError(f"unknown device {name!r}: choose {', '.join(self.device_names)}")

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if name in (host.name, host.namespace):
                return host
        raise PlanError(f"unknown host {name!r}: choose {', '.join(h.name for h in self.hosts)}")

    @property
    def device_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.devices)

    @property
    def services(self) -> tuple[Service, ...]:
        hosts = {h.name: h for h in self.hosts}
        return tuple(
            Service(name, IPv4Network(prefix), IPv4Address(vip), router, host, hosts[host].address.ip)
            for name, prefix, vip, router, host in _SERVICES
        )

    def service(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        raise PlanError(f"unknown service {name!r}")

    @property
    def vips(self) -> tuple[Vip, ...]:
        """Every web host carries every VIP, so any of them can take over any service."""
        return tuple(Vip(s.vip, f"lo:{i}") for i, s in enumerate(self.services, start=1))

    def static_routes(self, router: str) -> tuple[Route, ...]:
        return tuple(Route(s.prefix, s.next_hop) for s in self.services if s.router == router)

    @property
    def probe_table(self) -> int:
        return PROBE_TABLE_BASE + self.slot

    @property
    def probe_routes(self) -> tuple[Route, ...]:
        """What the root namespace reaches from its mgmt address: the VIP block and the
        server LAN through r1 (r2's prefixes through r2), like a NOC behind the routers."""
        r1 = self.device("r1").address
        extra = tuple(Route(s.prefix, self.device(s.router).address) for s in self.services if s.router != "r1")
        return (Route(VIP_BLOCK, r1), *extra)

    @property
    def client_routes(self) -> tuple[Route, ...]:
        return tuple(Route(IPv4Network(dest), self._cli(router).ip) for dest, router in _CLIENT_ROUTES)

    @property
    def links(self) -> tuple[Link, ...]:
        """Every veth from a lab namespace into the switch (the root one is separate)."""
        links: list[Link] = []
        for name, (mgmt, lan, _kind) in _ROUTERS.items():
            links += [
                self._link(name, "eth0", BRIDGE_LAN, self._lan(lan)),
                self._link(name, "eth1", BRIDGE_CLIENT, self._cli(name)),
                self._link(name, "mgmt0", BRIDGE_MGMT, self._mgmt(mgmt)),
            ]
        devices = {d.name: d for d in self.devices}
        for host in self.hosts:
            links += [
                self._link(host.name, "eth0", BRIDGE_LAN, host.address),
                self._link(host.name, "mgmt0", BRIDGE_MGMT, devices[host.name].mgmt),
            ]
        links.append(self._link("client", "eth0", BRIDGE_CLIENT, self.client_address))
        return tuple(links)

    def _link(self, who: str, ifname: str, bridge: str, address: IPv4Interface) -> Link:
        return Link(self.ns(who), ifname, bridge, f"{who}-{ifname}", address)

    def links_in(self, namespace: str) -> tuple[Link, ...]:
        return tuple(link for link in self.links if link.namespace == namespace)

    def all_addresses(self) -> list[IPv4Address]:
        """Every address the plan hands out, for range checks."""
        found = [self.root_mgmt.ip, self.gateway, *(lk.address.ip for lk in self.links)]
        found += [v.address for v in self.vips]
        found += [s.next_hop for s in self.services]
        found += [r.gateway for r in self.client_routes]
        return found

    def all_networks(self) -> list[IPv4Network]:
        nets = [self.mgmt_net, SERVER_LAN, CLIENT_LAN, VIP_BLOCK]
        nets += [s.prefix for s in self.services]
        nets += [r.destination for r in self.client_routes]
        return nets

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain JSON values, for other tools (STATE/lab.json)."""
        devices = {d.name: d for d in self.devices}
        return {
            "prefix": self.prefix,
            "slot": self.slot,
            "namespaces": list(self.namespaces),
            "mgmt_net": str(self.mgmt_net),
            "root_mgmt": {"ifname": self.root_mgmt_ifname, "address": str(self.root_mgmt)},
            "server_lan": str(SERVER_LAN),
            "client_lan": str(CLIENT_LAN),
            "gateway": str(self.gateway),
            "devices": [
                {
                    "name": d.name,
                    "namespace": d.namespace,
                    "kind": d.kind,
                    "mgmt": str(d.address),
                    "interfaces": {lk.ifname: str(lk.address) for lk in self.links_in(d.namespace)},
                }
                for d in devices.values()
            ],
            "client": {"namespace": self.client_ns, "address": str(self.client_address)},
            "hosts": [{"name": h.name, "namespace": h.namespace, "address": str(h.address.ip)} for h in self.hosts],
            "vips": [{"address": str(v.address), "label": v.label} for v in self.vips],
            "services": [
                {
                    "name": s.name,
                    "prefix": str(s.prefix),
                    "vip": str(s.vip),
                    "router": s.router,
                    "router_mgmt": str(devices[s.router].address),
                    "initial_host": s.initial_host,
                    "next_hop": str(s.next_hop),
                }
                for s in self.services
            ],
        }
