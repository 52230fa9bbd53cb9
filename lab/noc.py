"""Policy routing in the root namespace, so lasthop (there) reaches the lab's data plane.

Only traffic *sourced* from the lab's root mgmt address uses the lab's table, so
several labs coexist and nothing else on the machine changes. The table ends in
an `unreachable` default: a probe from that address can never fall through to
the machine's own default route and leave the lab.
"""

from __future__ import annotations

from lab.plan import LabPlan
from lab.proc import run


def _rule(plan: LabPlan) -> list[str]:
    return ["from", f"{plan.root_mgmt.ip}/32", "lookup", str(plan.probe_table), "priority", str(plan.probe_table)]


def route_commands(plan: LabPlan) -> list[list[str]]:
    table = ["table", str(plan.probe_table)]
    cmds = [["ip", "route", "replace", str(plan.mgmt_net), "dev", plan.root_mgmt_ifname, *table]]
    cmds += [["ip", "route", "replace", str(r.destination), "via", str(r.gateway), *table] for r in plan.probe_routes]
    cmds.append(["ip", "route", "replace", "unreachable", "default", *table])
    return cmds


def present(plan: LabPlan) -> bool:
    rules = run(["ip", "-4", "rule", "show", "priority", str(plan.probe_table)], check=False).stdout
    routes = run(["ip", "-4", "route", "show", "table", str(plan.probe_table)], check=False).stdout
    want = [str(r.destination) for r in plan.probe_routes]
    return f"lookup {plan.probe_table}" in rules and all(w in routes for w in want) and "unreachable default" in routes


def ensure(plan: LabPlan) -> None:
    """Idempotent. Routes need the root mgmt interface to exist (`dev` route)."""
    for argv in route_commands(plan):
        run(argv)
    if f"lookup {plan.probe_table}" not in run(["ip", "-4", "rule", "show", "priority", str(plan.probe_table)]).stdout:
        run(["ip", "-4", "rule", "add", *_rule(plan)])


def remove(plan: LabPlan) -> None:
    """Fine if nothing is there."""
    for _ in range(4):  # a rule added twice by hand is deleted one at a time
        if run(["ip", "-4", "rule", "del", "priority", str(plan.probe_table)], check=False).returncode != 0:
            break
    run(["ip", "-4", "route", "flush", "table", str(plan.probe_table)], check=False)
