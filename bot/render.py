"""Plain-text rendering of the engine's data for terminals (80 columns). No logic lives here."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

from bot.engine.model import Outcome, Plan
from bot.state.records import AuditRecord
from bot.status import StatusView

MARK = {"up": "ok", "down": "DOWN", "init": "?", "falling": "falling", "rising": "rising", "disabled": "maint"}


def status_text(view: StatusView, width: int = 80) -> str:
    lines = [f"{'SERVICE':<10} {'PREFIX':<18} {'ROUTER':<6} {'SERVED BY':<10} {'HEALTH':<8} LO"]
    for r in view.rows:
        hops = len(r.next_hops)
        served = r.host or ("?" if r.error else ("none" if not hops else f"{hops} hops" if hops > 1 else "unknown"))
        lo = "-" if r.loopback is None else ("ok" if r.loopback else "MISS")
        health = MARK.get(r.health, r.health)
        lines.append(f"{r.service:<10} {r.prefix:<18} {r.router:<6} {served:<10} {health:<8} {lo}")
        for note in (r.error, r.drift):
            if note:
                lines.extend(textwrap.wrap(note, width, initial_indent="  ! ", subsequent_indent="    "))
    for note in view.notes:
        lines.extend(textwrap.wrap(note, width, initial_indent="! ", subsequent_indent="  "))
    return "\n".join(lines)


def plan_text(plan: Plan) -> str:
    lines = ["Plan:"] + [f"  {s}" for s in plan.summary]
    for router, commands in plan.commands.items():
        lines.append(f"Commands on {router}:")
        lines.extend(f"  {c}" for c in commands)
    if plan.risks:
        lines.append("Risky, needs approval:")
        lines.extend(f"  - {r.text}" for r in plan.risks)
    lines.extend(f"Note: {n}" for n in plan.notes)
    return "\n".join(lines)


def outcome_text(outcome: Outcome) -> str:
    head = {
        "done": "Done.", "dry-run": "Dry run: nothing changed.", "noop": "Nothing to do.",
        "refused": "Refused.", "rolled_back": "Failed and rolled back.", "failed": "Failed.",
        "needs_human": "FAILED, and the rollback failed: a human is needed now.",
    }[outcome.status]
    lines = [head, *(f"  {line}" for line in outcome.lines)]
    if outcome.timings_ms:
        steps = (f"{k.removesuffix('_ms')} {v} ms" for k, v in outcome.timings_ms.items())
        lines.append("  timings: " + ", ".join(steps))
    return "\n".join(lines)


def history_text(records: Iterable[AuditRecord]) -> str:
    lines = []
    for r in records:
        took = f" ({r.duration_ms} ms)" if r.duration_ms is not None else ""
        lines.append(f"{r.at:%Y-%m-%d %H:%M:%S}Z {r.actor} [{r.source}] {r.action} {r.target}: {r.result}{took}")
        if r.detail:
            lines.append(f"    {r.detail}")
    return "\n".join(lines) or "(no audit records)"
