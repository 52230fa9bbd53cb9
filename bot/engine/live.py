"""The router's live table as the engine sees it, and what it says about who serves what."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from bot.inventory import Inventory

# router -> prefix -> next hops in the FIB (empty: no route)
LiveTable = Mapping[str, Mapping[IPv4Network, frozenset[IPv4Address]]]
# prefix -> the next hop lasthop last set and verified
Expected = Mapping[IPv4Network, IPv4Address]


def hops(live: LiveTable, router: str, prefix: IPv4Network) -> frozenset[IPv4Address]:
    return live.get(router, {}).get(prefix, frozenset())


def serving_host(inv: Inventory, live: LiveTable, service: str) -> str | None:
    """The one host the route points at, or None (no route, several, or an unknown address)."""
    svc = inv.services[service]
    now = hops(live, svc.router, svc.prefix)
    if len(now) != 1:
        return None
    host = inv.host_by_address(next(iter(now)))
    return host.name if host else None


@dataclass(frozen=True)
class Drift:
    service: str
    router: str
    prefix: IPv4Network
    text: str


def find_drift(inv: Inventory, live: LiveTable, expected: Expected) -> list[Drift]:
    """Where the router differs from what lasthop expects, or is in a state no plan starts from."""
    out: list[Drift] = []
    for svc in inv.services.values():
        if svc.router not in live:
            continue  # not read: unknown is not drift
        now = hops(live, svc.router, svc.prefix)
        where = f"{svc.router} {svc.prefix}"
        names = ", ".join(_label(inv, h) for h in sorted(now))
        if not now:
            text = f"{where} has no route in the FIB"
        elif len(now) > 1:
            text = f"{where} has {len(now)} next hops ({names}): a change is half done or was made by hand"
        elif inv.host_by_address(next(iter(now))) is None:
            text = f"{where} points at {names}, which is no known host"
        elif svc.prefix in expected and expected[svc.prefix] not in now:
            text = f"{where} points at {names}, but lasthop last set {_label(inv, expected[svc.prefix])}"
        else:
            continue
        out.append(Drift(svc.name, svc.router, svc.prefix, text))
    return out


def _label(inv: Inventory, hop: IPv4Address) -> str:
    host = inv.host_by_address(hop)
    return f"{host.name} ({hop})" if host else str(hop)
