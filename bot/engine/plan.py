"""Planning: which prefixes move where. A pure function of the inventory and what was read."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from ipaddress import IPv4Address

from bot.drivers import change_commands, save_commands
from bot.engine.live import Expected, LiveTable, hops, serving_host
from bot.engine.model import MoveRequest, Plan, PlannedMove, Refusal
from bot.engine.risk import assess
from bot.engine.targets import choose_target
from bot.health.state import Health
from bot.inventory import Inventory, Service

HealthMap = Mapping[tuple[str, str], Health]  # (service, host) -> state


def health_of(health: HealthMap, service: str, host: str) -> Health:
    return health.get((service, host), Health.INIT)


@dataclass(frozen=True)
class _Avoid:
    """Hosts never chosen as a target, from outside the health map."""

    maintenance: AbstractSet[str]
    flapping: AbstractSet[str]


def make_plan(
    inv: Inventory,
    req: MoveRequest,
    live: LiveTable,
    health: HealthMap,
    expected: Expected | None = None,
    *,
    maintenance: AbstractSet[str] = frozenset(),
    flapping: AbstractSet[str] = frozenset(),
) -> Plan:
    """`maintenance` and `flapping`: hosts never chosen as a target (maintenance is refused even when asked for)."""
    if req.to_host is not None and req.to_host not in inv.hosts:
        raise Refusal(f"unknown host {req.to_host!r}")
    avoid = _Avoid(maintenance, flapping)
    if req.kind == "service":
        moves = [_service_move(inv, inv.services[req.target], req.to_host, live, health, avoid)]
        noop = ""
        if moves[0] is None:
            svc = inv.services[req.target]
            noop = f"{svc.name} is already served by {serving_host(inv, live, svc.name)}"
        planned = [m for m in moves if m is not None]
    else:
        planned, noop = _drain(inv, req.target, req.to_host, live, health, avoid)
    commands = {
        router: change_commands(
            inv.routers[router].driver,
            [m.route for m in planned if m.router == router],
            inv.routers[router].revert_seconds,
        ) + _save(inv, router)
        for router in sorted({m.router for m in planned})
    }
    summary = tuple(
        f"{m.service} ({m.prefix} on {m.router}): {m.from_host or m.from_hop or 'no route'} -> {m.to_host}"
        for m in planned
    ) or (noop,)
    plan = Plan(req, tuple(planned), summary, commands, noop=noop)
    found = assess(inv, plan, live, health, expected or {})
    return Plan(req, plan.moves, summary, commands, found.risks, noop, found.notes)


def _save(inv: Inventory, router: str) -> list[str]:
    """The save step the engine runs after a verified change (pipeline: save_config and save_after_change)."""
    r = inv.routers[router]
    return save_commands(r.driver) if r.save_config and inv.policy.save_after_change else []


def _current(inv: Inventory, svc: Service, live: LiveTable) -> tuple[str | None, IPv4Address | None]:
    now = hops(live, svc.router, svc.prefix)
    if len(now) > 1:
        listed = ", ".join(map(str, sorted(now)))
        raise Refusal(
            f"{svc.prefix} has {len(now)} next hops on {svc.router} ({listed}), which no lasthop change in "
            "flight explains (made by hand?); put the router right, then try again"
        )
    hop = next(iter(now)) if now else None
    host = inv.host_by_address(hop) if hop else None
    return (host.name if host else None), hop


def _service_move(
    inv: Inventory, svc: Service, to_host: str | None, live: LiveTable, health: HealthMap, avoid: _Avoid
) -> PlannedMove | None:
    from_host, from_hop = _current(inv, svc, live)
    if to_host is not None:
        if to_host not in svc.hosts:
            raise Refusal(f"{to_host} may not serve {svc.name} (allowed: {', '.join(svc.hosts)})")
        # The CLI's live health has no DISABLED state: maintenance is known only from the store.
        if health_of(health, svc.name, to_host) is Health.DISABLED or to_host in avoid.maintenance:
            raise Refusal(f"{to_host} is in maintenance")
        if to_host == from_host:
            return None
        target = to_host
    else:
        choice = choose_target(
            inv, svc.name, health=health, serving=_serving(inv, live),
            maintenance=avoid.maintenance, flapping=avoid.flapping,
        )
        if choice.host is None:
            raise Refusal(f"no healthy host to take {svc.name} ({choice.why_none})")
        target = choice.host
    return _planned(inv, svc, from_host, from_hop, target)


def _serving(inv: Inventory, live: LiveTable) -> dict[str, str | None]:
    return {s: serving_host(inv, live, s) for s in inv.services}


def _planned(
    inv: Inventory, svc: Service, from_host: str | None, from_hop: IPv4Address | None, target: str
) -> PlannedMove:
    return PlannedMove(
        service=svc.name,
        router=svc.router,
        prefix=svc.prefix,
        from_host=from_host,
        from_hop=from_hop,
        to_host=target,
        to_hop=inv.hosts[target].address,
        vips=svc.vips,
    )


def _drain(
    inv: Inventory, host: str, to_host: str | None, live: LiveTable, health: HealthMap, avoid: _Avoid
) -> tuple[list[PlannedMove], str]:
    served = _serving(inv, live)
    mine = sorted(s for s, h in served.items() if h == host)
    if not mine:
        return [], f"{host} serves nothing"
    # Running: each service planned so far counts on its new host, so the drain spreads them.
    load = Counter(h for h in served.values() if h is not None)
    moves: list[PlannedMove] = []
    for name in mine:
        svc = inv.services[name]
        if to_host is not None:
            move = _service_move(inv, svc, to_host, live, health, avoid)
            if move is None:  # pragma: no cover - to_host == host is refused below
                continue
        else:
            choice = choose_target(
                inv, name, health=health, serving=served, maintenance=avoid.maintenance,
                flapping=avoid.flapping, exclude={host}, load=load,
            )
            if choice.host is None:
                raise Refusal(f"cannot drain {host}: no healthy host for {name} ({choice.why_none})")
            from_host, from_hop = _current(inv, svc, live)
            move = _planned(inv, svc, from_host, from_hop, choice.host)
        load[move.to_host] += 1
        load[host] -= 1
        moves.append(move)
    return moves, ""
