"""What the lab's fault cases share: the lab's addresses, an engine on an inventory, the
move they make, and the end every case must reach (`settle_and_check`)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from support.labtools import client_answer

from bot.engine.model import MoveRequest
from bot.engine.pipeline import Engine
from bot.inventory import Inventory
from bot.state import StateStore
from lab import Lab

A = IPv4Network("198.51.100.32/27")
VIP_A = IPv4Address("198.51.100.33")
WEB1, WEB2 = IPv4Address("198.51.100.2"), IPv4Address("198.51.100.3")
ENDED = {"done", "rolled_back", "failed", "refused"}


def engine_for(inv: Inventory) -> Engine:
    return Engine(inv, StateStore(inv.state_url), probe_source=inv.probe.source, probe_vips=inv.probe.verify_vips)


def www_a(to: str = "web2", actor: str = "alice") -> MoveRequest:
    return MoveRequest(kind="service", target="www-a", actor=actor, source="test", to_host=to)


def r1_hops(inv: Inventory, prefix: IPv4Network = A) -> set[IPv4Address]:
    engine = engine_for(inv)
    try:
        return engine.devices.router("r1").fib_next_hops(prefix)
    finally:
        engine.close()
        engine.store.close()


def readable_hops(inv: Inventory) -> set[IPv4Address] | None:
    """r1's next hops for www-a, or None while r1 cannot be read (for polling until it can)."""
    try:
        return r1_hops(inv)
    except Exception:  # still cut, or the session still dying: poll again
        return None


def settle_and_check(lab: Lab, inv: Inventory, serving: str) -> list[str]:
    """The end every case must reach; returns problems found (none: consistent and reported)."""
    problems: list[str] = []
    engine = engine_for(inv)
    try:
        for prefix in [s.prefix for s in inv.services_on("r1")]:
            hops = engine.devices.router("r1").fib_next_hops(prefix)
            if len(hops) != 1:
                problems.append(f"{prefix} has {len(hops)} next hops: {sorted(map(str, hops))}")
        left = engine.store.changes_in_flight(unsettled=True)
        problems += [f"change {c.id[:8]} left {c.status}" for c in left]
        audited = {a.change_id for a in engine.store.history(limit=200) if a.change_id}
        for c in engine.store.recent_changes(limit=50):
            if c.status not in ENDED:
                problems.append(f"change {c.id[:8]} ended {c.status}")
            if c.id not in audited:
                problems.append(f"change {c.id[:8]} ({c.status}) has no audit record")
    finally:
        engine.close()
        engine.store.close()
    got = client_answer(lab, VIP_A, serving)
    if got != serving:
        problems.append(f"the client got {got!r} from {VIP_A}, not {serving}")
    return problems
