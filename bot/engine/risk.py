"""Risk rules: when a plan needs a second person. Data in the policy, each with its reason."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.engine.live import Expected, LiveTable, find_drift, serving_host
from bot.engine.model import Plan, RiskReason
from bot.engine.targets import concentration_note, is_rescue, rescued, serves_all
from bot.health.state import Health
from bot.inventory import Inventory


@dataclass(frozen=True)
class Assessment:
    risks: tuple[RiskReason, ...]
    notes: tuple[str, ...] = ()  # a rule that would have applied, and why it did not


def assess(
    inv: Inventory,
    plan: Plan,
    live: LiveTable,
    health: Mapping[tuple[str, str], Health],
    expected: Expected,
) -> Assessment:
    rules = inv.policy.risky
    out: list[RiskReason] = []
    notes: list[str] = []
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
    # Every service in the plan is down until it moves: the obvious action needs no second person.
    rescues = [(m.from_host, m.service) for m in plan.moves
               if m.from_host is not None and is_rescue(health, m.service, m.from_host)]
    all_rescues = bool(plan.moves) and len(rescues) == len(plan.moves)
    if rules.multiple_prefixes and len(plan.moves) > 1:
        text = f"moves {len(plan.moves)} prefixes at once"
        if all_rescues:
            notes.append(f"{text}: allowed, because {rescued(rescues)}")
        else:
            out.append(RiskReason("multiple_prefixes", text))
    if rules.one_host_serves_all and plan.moves:
        after = {s: serving_host(inv, live, s) for s in inv.services}
        after.update({m.service: m.to_host for m in plan.moves})
        only = serves_all(inv, after)
        if only is not None and all_rescues:
            notes.append(concentration_note(only, rescues))
        elif only is not None:
            out.append(RiskReason("one_host_serves_all", f"afterwards {only} would serve every service"))
    if rules.drift:
        moved = {m.service for m in plan.moves}
        out.extend(RiskReason("drift", d.text) for d in find_drift(inv, live, expected) if d.service in moved)
    return Assessment(tuple(out), tuple(notes))
