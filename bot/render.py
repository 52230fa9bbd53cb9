"""Plain-text tables for terminals (80 columns): status and history. Plans and outcomes are bot.views,
rendered by bot.plain, the same messages chat shows. No logic lives here."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

from bot.state.records import AuditRecord
from bot.status import StatusView

MARK = {"up": "ok", "down": "DOWN", "init": "?", "falling": "falling", "rising": "rising", "disabled": "maint"}
LO = {"ok": "ok", "missing": "MISS", "unknown": "unknown", "unchecked": "-"}


def status_text(view: StatusView, width: int = 80) -> str:
    lines = [f"{'SERVICE':<10} {'PREFIX':<18} {'ROUTER':<6} {'SERVED BY':<10} {'HEALTH':<8} LO"]
    for r in view.rows:
        hops = len(r.next_hops)
        served = r.host or ("?" if r.error else ("none" if not hops else f"{hops} hops" if hops > 1 else "unknown"))
        lo = LO[r.loopback_state]
        health = MARK.get(r.health, r.health)
        lines.append(f"{r.service:<10} {r.prefix:<18} {r.router:<6} {served:<10} {health:<8} {lo}")
        unknown = f"loopback unknown: {r.loopback_error}" if r.loopback_state == "unknown" else ""
        for note in (r.error, r.drift, unknown):
            if note:
                lines.extend(textwrap.wrap(note, width, initial_indent="  ! ", subsequent_indent="    "))
    for m in view.maintenance.values():
        until = f"until {m.until:%Y-%m-%d %H:%M}Z" if m.until else "until turned off"
        why = f": {m.reason}" if m.reason else ""
        lines.extend(textwrap.wrap(f"{m.host} is in maintenance {until}, by {m.by}{why}", width,
                                   subsequent_indent="  "))
    for note in view.notes:
        lines.extend(textwrap.wrap(note, width, initial_indent="! ", subsequent_indent="  "))
    if (lead := view.leadership.words(lambda at: f"{at:%Y-%m-%d %H:%M:%S}Z")) is not None:
        lines.extend(textwrap.wrap(lead, width, subsequent_indent="  "))
    return "\n".join(lines)


# Audit actions as a person reads them; an action of a dry run carries ":dry-run" (older records: "dry-run:dry-run").
ACTION_WORDS = {"dry-run": "dry run", "precheck": "pre-check", "approval-request": "approval request",
                "plan": "plan"}
RESULT_WORDS = {"rolled_back": "rolled back", "needs_human": "FAILED, a human is needed", "refused": "REFUSED"}


def action_words(action: str) -> str:
    base, _, dry = action.partition(":")
    words = ACTION_WORDS.get(base, base.replace("-", " ").replace("_", " "))
    if dry == "dry-run" and base != "dry-run":
        return f"dry run {words}"
    return words


def history_text(records: Iterable[AuditRecord]) -> str:
    lines = []
    for r in records:
        took = f" ({r.duration_ms} ms)" if r.duration_ms is not None else ""
        result = RESULT_WORDS.get(r.result, r.result.replace("_", " "))
        if isinstance(r.plan, dict) and r.plan.get("risk_accepted"):
            result += ", RISK ACCEPTED without a second person"
        lines.append(f"{r.at:%Y-%m-%d %H:%M:%S}Z {r.actor} [{r.source}] {action_words(r.action)} {r.target}: "
                     f"{result}{took}")
        if r.detail:
            lines.extend(textwrap.wrap(r.detail, 76, initial_indent="    ", subsequent_indent="    "))
    return "\n".join(lines) or "(no audit records)"
