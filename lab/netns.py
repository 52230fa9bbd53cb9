"""The wiring: namespaces, the switch's bridges, veths, addresses, routes, sysctls.

Reads every name and address from the plan; knows nothing about daemons.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

from lab import noc
from lab.plan import BRIDGE_MGMT, BRIDGES, DEFAULT_ROUTE, ROOT_SWITCH_PORT, LabPlan
from lab.proc import in_namespace, run

# The web hosts answer from a VIP on lo through r1 even for r2's service, so
# every hop sees asymmetric traffic that reverse-path filtering would drop.
_SYSCTLS_ALL = 'for f in /proc/sys/net/ipv4/conf/*/rp_filter; do echo 0 > "$f"; done'
_FORWARDING = "echo 1 > /proc/sys/net/ipv4/ip_forward"
# The router whose routes are plain kernel routes (r1's belong to FRR).
LINUX_ROUTER = "r2"


@dataclass
class Interface:
    name: str
    admin_up: bool
    operstate: str
    addresses: set[IPv4Interface] = field(default_factory=set)

    @property
    def state(self) -> str:
        """One of up, down (set down) or no-carrier (up, but the other end is down)."""
        if not self.admin_up:
            return "down"
        return "up" if self.operstate in ("UP", "UNKNOWN") else "no-carrier"


def existing_namespaces() -> set[str]:
    done = run(["ip", "netns", "list"], check=False)
    # Lines look like "name" or "name (id: 3)".
    return {line.split()[0] for line in done.stdout.splitlines() if line.strip()}


def interfaces(namespace: str | None) -> dict[str, Interface]:
    """Interfaces of a namespace (None: the root namespace) with their IPv4 addresses."""
    where = [] if namespace is None else ["-n", namespace]
    argv = ["ip", *where, "-j", "addr", "show"]
    done = run(argv, check=False)
    if done.returncode != 0:
        return {}
    found: dict[str, Interface] = {}
    for entry in _json_list(done.stdout):
        iface = Interface(
            name=str(entry.get("ifname", "")),
            admin_up="UP" in entry.get("flags", []),
            operstate=str(entry.get("operstate", "")),
        )
        for info in entry.get("addr_info", []):
            if info.get("family") == "inet":
                iface.addresses.add(IPv4Interface(f"{info['local']}/{info['prefixlen']}"))
        found[iface.name] = iface
    return found


def routes(namespace: str) -> dict[IPv4Network, set[IPv4Address | None]]:
    """Main-table IPv4 routes: destination -> gateways (None for on-link)."""
    done = run(["ip", "-n", namespace, "-j", "-4", "route", "show"], check=False)
    found: dict[IPv4Network, set[IPv4Address | None]] = {}
    for entry in _json_list(done.stdout):
        dst = str(entry.get("dst", ""))
        dest = DEFAULT_ROUTE if dst == "default" else IPv4Network(dst, strict=False)
        gateways = found.setdefault(dest, set())
        if "gateway" in entry:
            gateways.add(IPv4Address(entry["gateway"]))
        for hop in entry.get("nexthops", []):
            if "gateway" in hop:
                gateways.add(IPv4Address(hop["gateway"]))
        if not gateways:
            gateways.add(None)
    return found


def build(plan: LabPlan) -> None:
    """Create every namespace and wire it up. Expects none of them to exist."""
    for namespace in plan.namespaces:
        run(["ip", "netns", "add", namespace])
    _batch(plan.switch_ns, _switch_commands(plan))
    # The only change to the root namespace: one veth into the switch's mgmt bridge.
    root_if = plan.root_mgmt_ifname
    run(["ip", "link", "add", root_if, "type", "veth", "peer", "name", ROOT_SWITCH_PORT,
         "netns", plan.switch_ns])  # fmt: skip
    _batch(plan.switch_ns, [f"link set {ROOT_SWITCH_PORT} master {BRIDGE_MGMT} up"])
    run(["ip", "link", "set", root_if, "up"])
    # Probe routing before the address exists: nothing can ever leave from it unrouted.
    noc.ensure(plan)
    run(["ip", "addr", "add", str(plan.root_mgmt), "dev", root_if])
    for namespace in plan.namespaces[1:]:
        _batch(namespace, namespace_commands(plan, namespace))
    _batch(plan.ns(LINUX_ROUTER), missing_router_routes(plan, LINUX_ROUTER))
    for namespace in plan.namespaces:
        set_sysctls(plan, namespace)


def _switch_commands(plan: LabPlan) -> list[str]:
    commands = ["link set lo up"]
    for bridge in BRIDGES:
        commands += [f"link add {bridge} type bridge", f"link set {bridge} up"]
    for link in plan.links:
        commands += [
            f"link add {link.switch_port} type veth peer name {link.ifname} netns {link.namespace}",
            f"link set {link.switch_port} master {link.bridge} up",
        ]
    return commands


def namespace_commands(plan: LabPlan, namespace: str) -> list[str]:
    """Addresses, links up, VIPs and fixed routes of one namespace; safe to repeat.

    r2's service routes are not here: after a failover they point elsewhere,
    and repeating this must not undo that (see `missing_router_routes`).
    """
    commands = ["link set lo up"]
    for link in plan.links_in(namespace):
        commands += [
            f"addr replace {link.address} dev {link.ifname}",
            f"link set {link.ifname} up",
        ]
    if namespace in {h.namespace for h in plan.hosts}:
        for vip in plan.vips:
            commands.append(f"addr replace {vip.interface} dev lo label {vip.label}")
        commands.append(f"route replace default via {plan.gateway} dev eth0")
    if namespace == plan.client_ns:
        for route in plan.client_routes:
            commands.append(f"route replace {route.destination} via {route.gateway}")
    return commands


def missing_router_routes(plan: LabPlan, router: str) -> list[str]:
    """`ip` commands adding the plan's routes of a Linux router whose prefix has no route at all."""
    present = routes(plan.ns(router))
    return [
        f"route add {route.destination} via {route.gateway}"
        for route in plan.static_routes(router)
        if route.destination not in present
    ]


def apply(namespace: str, commands: Sequence[str]) -> None:
    if commands:
        _batch(namespace, commands)


def set_sysctls(plan: LabPlan, namespace: str) -> None:
    script = _SYSCTLS_ALL
    if namespace in (plan.ns("r1"), plan.ns("r2")):
        script += f"; {_FORWARDING}"
    run(in_namespace(namespace, ["sh", "-c", script]))


def set_link(namespace: str, ifname: str, up: bool) -> None:
    run(["ip", "-n", namespace, "link", "set", ifname, "up" if up else "down"])


def root_address_conflicts(plan: LabPlan) -> list[str]:
    """Root-namespace interfaces (other than this lab's) with an address in its mgmt net."""
    clashes = []
    for name, iface in interfaces(None).items():
        if name == plan.root_mgmt_ifname:
            continue
        clashes += [f"{name} has {addr}" for addr in iface.addresses if addr.ip in plan.mgmt_net]
    return clashes


def delete(plan: LabPlan) -> None:
    """Remove the root veth, then every namespace of the lab; missing ones are fine."""
    # Deleting the root end first: a namespace is destroyed asynchronously, and
    # its peer in the root namespace would linger for a moment after `netns del`.
    if plan.root_mgmt_ifname in interfaces(None):
        run(["ip", "link", "del", plan.root_mgmt_ifname], check=False)
    noc.remove(plan)
    present = existing_namespaces()
    for namespace in reversed(plan.namespaces):
        if namespace in present:
            run(["ip", "netns", "del", namespace], check=False)


def _batch(namespace: str, commands: Sequence[str]) -> None:
    run(["ip", "-n", namespace, "-batch", "-"], input="\n".join(commands) + "\n")


def _json_list(text: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text or "[]")
    except ValueError:
        return []
    return [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []
