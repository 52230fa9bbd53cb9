"""Risk rules: when a plan needs a second person. Data in the policy, each with its reason."""

from __future__ import annotations

from collections.abc import Mapping

from bot.engine.live import Expected, LiveTable, find_drift, serving_host
from bot.engine.model import Plan, RiskReason
from bot.health.state import Health
from bot.inventory import Inventory


def assess(
    inv: Inventory,
    plan: Plan,
    live: LiveTable,
    health: Mapping[tuple[str, str], Health],
    expected: Expected,
) -> tuple[RiskReason, ...]:
    rules = inv.policy.risky
    out: list[RiskReason] = []
    for m in plan.moves:
        to_state = health.get((m.service, m.to_host), Health.INIT)
        if rules.target_health_unknown and not to_state.known_good:
            out.append(RiskReason(
                "target_health_unknown", f"{m.to_host}'s health for {m.service} is {to_state.value}, not known good"
            ))
        if m.from_host is not None:
            from_state = health.get((m.service, m.from_host), Health.INIT)
            if rules.moves_from_healthy_host and from_state.serving:
                out.append(RiskReason(
                    "moves_from_healthy_host", f"moves {m.service} away from {m.from_host}, which is healthy"
                ))
    if rules.multiple_prefixes and len(plan.moves) > 1:
        out.append(RiskReason("multiple_prefixes", f"moves {len(plan.moves)} prefixes at once"))
    if rules.one_host_serves_all and plan.moves and len(inv.services) > 1:
        after = {s: serving_host(inv, live, s) for s in inv.services}
        after.update({m.service: m.to_host for m in plan.moves})
        only = set(after.values())
        if len(only) == 1 and None not in only:
            out.append(RiskReason(
                "one_host_serves_all", f"afterwards {only.pop()} would serve every service"
            ))
    if rules.drift:
        moved = {m.service for m in plan.moves}
        out.extend(RiskReason("drift", d.text) for d in find_drift(inv, live, expected) if d.service in moved)
    return tuple(out)
