"""The one rule for choosing where a service goes, shared by plans, drains and automatic failover.

A target must be UP for the service, out of maintenance and not flapping. Among those,
the host serving the fewest other services wins, so that one failure does not pile every
service onto one host; the service's own preference order breaks ties. Concentration is
never a reason to leave a service down: a rescue (a move away from a host that is DOWN
for the service) may end with one host serving everything, and only says so in a note.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from bot.health.state import Health
from bot.inventory import Inventory

HealthMap = Mapping[tuple[str, str], Health]  # (service, host) -> state


@dataclass(frozen=True)
class TargetChoice:
    host: str | None  # None: no usable host
    why_none: str = ""  # each candidate and why it was skipped, e.g. "web2 down, web3 in maintenance"
    notes: tuple[str, ...] = ()


def choose_target(
    inv: Inventory,
    service: str,
    *,
    health: HealthMap,
    serving: Mapping[str, str | None],
    maintenance: AbstractSet[str] = frozenset(),
    flapping: AbstractSet[str] = frozenset(),
    exclude: AbstractSet[str] = frozenset(),
    load: Mapping[str, int] | None = None,
) -> TargetChoice:
    """Where `service` should go now, by the rule above; never the host it is on now.

    `serving`: service -> the host its route points at now. `load`: host -> services it
    serves, instead of the count derived from `serving` (a drain passes its running count,
    which includes the moves it has already planned). The notes judge this one move
    against `serving`.
    """
    svc = inv.services[service]
    current = serving.get(service)
    candidates: list[str] = []
    skipped: list[str] = []
    for host in svc.hosts:
        if host == current or host in exclude:
            continue
        state = health.get((service, host), Health.INIT)
        if host in maintenance:
            skipped.append(f"{host} in maintenance")
        elif host in flapping:
            skipped.append(f"{host} flapping")
        elif state is not Health.UP:
            skipped.append(f"{host} {state.value}")
        else:
            candidates.append(host)
    if not candidates:
        return TargetChoice(None, ", ".join(skipped))
    # Only the other services count: this one leaves its current host, which is no candidate anyway.
    counts = load if load is not None else Counter(
        h for s, h in serving.items() if s != service and h is not None
    )
    target = min(candidates, key=lambda h: (counts.get(h, 0), svc.hosts.index(h)))
    notes: tuple[str, ...] = ()
    if current is not None and is_rescue(health, service, current):
        only = serves_all(inv, {**serving, service: target})
        if only is not None:
            notes = (concentration_note(only, [(current, service)]),)
    return TargetChoice(target, notes=notes)


def is_rescue(health: HealthMap, service: str, from_host: str | None) -> bool:
    """A move away from a host that is DOWN for the service: the service is down until it moves."""
    return from_host is not None and health.get((service, from_host)) is Health.DOWN


def serves_all(inv: Inventory, serving: Mapping[str, str | None]) -> str | None:
    """The one host serving every service of the inventory, when there are several services; else None."""
    if len(inv.services) < 2:
        return None
    hosts = {serving.get(s) for s in inv.services}
    if len(hosts) != 1:
        return None
    return hosts.pop()


def rescued(pairs: Iterable[tuple[str, str]]) -> str:
    """(down host, service) pairs in words: "web1 is down for www-a and www-d"."""
    by_host: dict[str, list[str]] = {}
    for host, service in pairs:
        by_host.setdefault(host, []).append(service)
    return "; ".join(f"{host} is down for {_and(services)}" for host, services in sorted(by_host.items()))


def concentration_note(host: str, pairs: Iterable[tuple[str, str]]) -> str:
    return f"afterwards {host} serves every service: allowed, because {rescued(pairs)}"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
