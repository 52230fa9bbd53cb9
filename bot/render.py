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
    return "\n".join(lines)


def history_text(records: Iterable[AuditRecord]) -> str:
    lines = []
    for r in records:
        took = f" ({r.duration_ms} ms)" if r.duration_ms is not None else ""
        lines.append(f"{r.at:%Y-%m-%d %H:%M:%S}Z {r.actor} [{r.source}] {r.action} {r.target}: {r.result}{took}")
        if r.detail:
            lines.append(f"    {r.detail}")
    return "\n".join(lines) or "(no audit records)"
