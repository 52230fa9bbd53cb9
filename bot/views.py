"""Every message lasthop shows, composed once as chat-neutral data (bot.chat.Message).

Rendering only: each decision was made by the engine, the incident tracker or the workflow;
this turns their data into short lines for a phone, the important word first. Slack turns
the result into Block Kit, the console into numbered plain text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot import incident_view as iv
from bot.chat import Button, Buttons, Code, Confirm, Message, Note, Part, Text, encode, escape, when, who
from bot.commands import CommandNames
from bot.durations import format_duration
from bot.engine.model import Outcome, Plan
from bot.engine.targets import choose_target
from bot.inventory import Inventory
from bot.situation import Situation
from bot.status import HostMaintenance, StatusView

ICON = {"up": ":large_green_circle:", "down": ":red_circle:", "falling": ":large_yellow_circle:",
        "rising": ":large_yellow_circle:", "init": ":white_circle:", "disabled": ":wrench:"}


@dataclass(frozen=True)
class Phrasing:
    """Commands as the reader can copy and run them: the chat's slash commands, or the CLI's."""

    names: CommandNames | None = None  # None: the `lasthop` command line

    def failover(self, target: str, to: str | None = None) -> str:
        if self.names is None:
            return f"`lasthop failover {target}{f' --to {to}' if to else ''}`"
        return f"`{self.names.failover} {target}{f' to {to}' if to else ''}`"

    def status(self, target: str = "") -> str:
        if self.names is None:
            return f"`lasthop status{f' {target}' if target else ''}`"
        return f"`{self.names.status}{f' {target}' if target else ''}`"


CLI = Phrasing()


def _and(items: Sequence[str]) -> str:
    items = list(items)
    if not items:
        return "nothing"
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _secs(ms: Any) -> str:
    return f" in {ms / 1000:.1f} s" if isinstance(ms, int) else ""


# ---------------------------------------------------------------- timeline


def event_text(inv: Inventory, kind: str, member: str, data: Mapping[str, Any]) -> str:
    """One timeline entry in words, from its data alone (a restart, another process, a new wording)."""
    mkind, _, name = member.partition(":")
    failing = [str(s) for s in data.get("failing", [])]
    detail = escape(str(data.get("detail", "") or ""))  # device output: never markup
    if kind == iv.RESOLVED:
        took = data.get("took")
        why = str(data.get("why", ""))
        head = (event_text(inv, why, member, data) if why in iv.MEMBER_KINDS and member
                else "nothing is failing any more")
        return f"{head}; all clear" + (f" after {format_duration(took)}" if isinstance(took, int) else "")
    if mkind == "service":
        router = inv.services[name].router if name in inv.services else "the router"
        if kind in (iv.DOWN, iv.STILL_DOWN):
            host = (data.get("serving") or {}).get(name)
            behind = f"it is served by {host}" if host else "who serves it is unknown"
            return f"{name} is unreachable through {router} (VIP check); {behind}" + (f": {detail}" if detail else "")
        if kind == iv.FLAPPING:
            return f"{name} through {router} is flapping: {data.get('changes')} changes in " \
                   f"{format_duration(float(data.get('window', 0)))}; quiet about it until it is stable"
        if kind == iv.STABLE:
            state = "unreachable" if failing else "reachable"
            return f"{name} is stable again and {state} through {router}"
        return f"{name} is reachable again through {router}"
    if kind == iv.DOWN:
        text = f"{name} is down for {_and(failing)}"
        service = str(data.get("service", ""))
        return text + (f" ({service}: {detail})" if detail and service else "")
    if kind == iv.STILL_DOWN:
        return f"{name} is still down after maintenance ({_and(failing)})"
    if kind == iv.PARTIAL:
        return f"{_and(data.get('back', []))} back on {name}; {name} is still down for {_and(failing)}"
    if kind == iv.UP:
        return f"{name} is back up" + (" after maintenance" if data.get("after_maintenance") else "")
    if kind == iv.FLAPPING:
        window = format_duration(float(data.get("window", 0)))
        return (f"{name} is flapping: {data.get('changes')} changes in {window}; lasthop moves nothing to or from "
                f"it automatically, and says nothing more about it until it has been stable for {window}")
    if kind == iv.STABLE:
        return f"{name} is stable again and " + (f"down for {_and(failing)}" if failing else "up")
    if kind == iv.MAINTENANCE_ON:
        return f"{name} is in maintenance: its alerts are silenced and nothing moves to it"
    if kind == iv.MAINTENANCE_OFF:
        return f"{name} is out of maintenance: checking it again"
    if kind == iv.ACK:
        return f"{who(str(data.get('by', '')))} is on it (acknowledged)"
    if kind == iv.MOVE:
        return _move_text(data)
    return str(data.get("text", "")) or kind


def _move_text(data: Mapping[str, Any]) -> str:
    moves = [m for m in data.get("moves", []) if isinstance(m, dict)]
    what = ", ".join(f"{m.get('service')} {m.get('from') or 'no route'} → {m.get('to')}" for m in moves)
    by = who(str(data.get("by", "")))
    approved = str(data.get("approved_by") or "")
    actor = by + (f", approved by {who(approved)}" if approved else "")
    status = data.get("status")
    took = _secs(data.get("ms"))
    if status == "done":
        notes = "".join(f"; {n}" for n in data.get("notes", []) if isinstance(n, str))
        return f"moved {what} ({actor}){took}, verified in the router's FIB{notes}"
    why = escape(str(data.get("why") or "").removeprefix("change failed: "))
    if status == "rolled_back":
        return f"move {what} ({actor}) failed and was rolled back{took}" + (f": {why}" if why else "")
    if status == "needs_human":
        return f"move {what} ({actor}) FAILED and its rollback failed: a human is needed now"
    return f"move {what} ({actor}): {status}"


def thread_line(event_at: datetime, text: str) -> Message:
    """A line of an incident's thread; `text` is event_text's, whose device output is already escaped."""
    return Message(text, (Text(f"{when(event_at, '{time_secs}')} {text}"),))


# ---------------------------------------------------------------- the alert


@dataclass(frozen=True)
class ServiceLine:
    service: str
    routed_to: str | None
    failing_host: str | None  # the host it is routed to, while clients cannot be served through it
    problem: str  # why it is down for clients, in words; "" when it is served
    target: str | None  # where the one rule would move it now
    why_none: str = ""


def affected_lines(inv: Inventory, view: iv.IncidentView, now: Situation) -> list[ServiceLine]:
    failing = {h: set(view.failing_on(h)) for h in view.failing_hosts()}
    unreachable = {m.name for m in view.members if m.kind == "service" and m.failing}
    lines = []
    # Targets are chosen one after the other, each counting the ones before it, in the drain's
    # order: the confirm dialog of "Fail over all" then names the moves the drain will make.
    planned = dict(now.serving)
    chosen: dict[str, tuple[str | None, str]] = {}
    for service in sorted(view.affected):
        routed = now.serving.get(service)
        if view.open and service in inv.services and routed is not None and (
                service in failing.get(routed, set()) or service in unreachable):
            choice = choose_target(inv, service, health=now.health, serving=planned,
                                   maintenance=now.maintenance, flapping=now.flapping)
            chosen[service] = (choice.host, choice.why_none)
            if choice.host is not None:
                planned[service] = choice.host
    for service in view.affected:
        if service not in inv.services:
            continue
        routed = now.serving.get(service)
        problem = ""
        if routed is not None and service in failing.get(routed, set()):
            problem = f"still on {routed}, which is down"
        elif service in unreachable:
            problem = f"unreachable through {inv.services[service].router}"
        on_failed = routed if problem else None
        target, why = chosen.get(service, (None, ""))
        lines.append(ServiceLine(service, routed, on_failed, problem, target, why))
    return lines


def incident_message(inv: Inventory, view: iv.IncidentView, now: Situation, phrasing: Phrasing,
                     at: datetime) -> Message:
    """The parent message: its state at a glance, what is affected and where it is routed, the buttons."""
    lines = affected_lines(inv, view, now)
    head = _state_line(view, lines, at)
    body = []
    for line in lines:
        where = line.routed_to or "no single host"
        if line.problem:
            mark = f":red_circle: {line.problem}"
        elif view.last_move(line.service):
            m = view.last_move(line.service)
            assert m is not None
            mark = f":white_check_mark: moved ({who(m.by)}{_secs(m.ms)})"
        else:
            mark = ":white_check_mark:"
        body.append(f"• *{line.service}* → {where} {mark}")
    for member in view.members:
        if member.maintenance:
            body.append(f":wrench: {member.name} is in maintenance")
        if member.flapping:
            body.append(f":warning: {member.name} is flapping: no automatic moves")
    parts: list[Part] = [Text(head), Text("\n".join(body) or "No service is affected.")]
    buttons: list[Button] = []
    todo = [line for line in lines if line.failing_host and line.target]
    if view.open:
        if len(todo) == 1:
            line = todo[0]
            buttons.append(Button(
                f"Fail over {line.service} to {line.target}", "alert_failover",
                encode(i=view.id, s=line.service, h=line.target), style="danger",
                confirm=Confirm("Move traffic?", f"Move *{line.service}* from {line.failing_host} to "
                                f"{line.target}? The target is checked live first.", "Fail over")))
        elif len(todo) > 1:
            plan = ", ".join(f"{line.service} → {line.target}" for line in todo)
            hosts = sorted({line.failing_host for line in todo if line.failing_host})
            buttons.append(Button(
                "Fail over all", "alert_failover_all", encode(i=view.id, h=hosts), style="danger",
                confirm=Confirm("Move traffic?", f"Move {plan}? Each target is checked live first.", "Fail over")))
        if not view.acked_by:
            buttons.append(Button("Acknowledge", "alert_ack", encode(i=view.id)))
        down = [m.name for m in view.members if m.kind == "host" and m.failing and not m.maintenance]
        if down:
            buttons.append(Button("Maintenance 1h", "alert_maintenance", encode(i=view.id, h=down[0]),
                                  confirm=Confirm(f"Put {down[0]} in maintenance?",
                                                  f"Drains {down[0]} if it still serves anything, silences its "
                                                  "alerts and keeps moves away from it for 1 hour.", "Start")))
        stuck = [line for line in lines if line.failing_host and not line.target]
        notes = [f"{line.service}: no healthy host to move it to ({line.why_none})" for line in stuck]
        if todo:
            notes.append("Or type: " + " · ".join(phrasing.failover(line.service, line.target) for line in todo))
        if notes:
            parts.append(Note("\n".join(notes)))
    else:
        for service, home in _fail_back(inv, view, now):
            buttons.append(Button(f"Fail back {service} to {home}", "alert_failback",
                                  encode(i=view.id, s=service, h=home),
                                  confirm=Confirm("Move traffic back?", f"Move *{service}* back to {home}? "
                                                  "It is checked live first; moving away from a healthy host "
                                                  "may need a second person.", "Fail back")))
    if buttons:
        parts.append(Buttons(tuple(buttons[:5])))
    return Message(f"{view.title}: {head}", tuple(parts))


def _fail_back(inv: Inventory, view: iv.IncidentView, now: Situation) -> list[tuple[str, str]]:
    """Services that moved off a host that failed in this incident, and are not back on it."""
    out = []
    for service in view.affected:
        move = view.last_move(service)
        if move is None or service not in inv.services:
            continue
        home = next((f for s, f, _ in move.moves if s == service and f), None)
        if home and home in inv.services[service].hosts and now.serving.get(service) != home:
            out.append((service, home))
    return out


def _state_line(view: iv.IncidentView, lines: Sequence[ServiceLine], at: datetime) -> str:
    since = when(view.opened_at)
    if not view.open:
        took = format_duration(round(((view.resolved_at or at) - view.opened_at).total_seconds()))
        return f":white_check_mark: *RESOLVED* {view.title_past} from {since} for {took}"
    clear = not any(line.problem for line in lines)
    moved = [m for m in view.moves if m.status == "done"]
    ack = f" · acknowledged by {who(view.acked_by)}" if view.acked_by else ""
    if clear and not moved:
        # A standby failing: worth knowing (it cannot take traffic), not an outage.
        return f":large_yellow_circle: *DOWN, NOT SERVING* {view.title} since {since}: it serves no traffic " \
               f"now, so nothing is affected{ack}"
    if clear:
        after = f" after {format_duration(round((moved[-1].at - view.opened_at).total_seconds()))}"
        return f":large_yellow_circle: *MITIGATED*{after}: traffic is off the failed host · " \
               f"{view.title} since {since}{ack}"
    # No age here: a posted message does not tick, and "since" stays true.
    return f":red_circle: *OPEN* {view.title} since {since}{ack}"


# ---------------------------------------------------------------- plans and outcomes

HEAD = {"done": ":white_check_mark: Done", "dry-run": ":mag: Dry run: nothing changed",
        "noop": ":information_source: Nothing to do", "refused": ":no_entry: Refused",
        "rolled_back": ":leftwards_arrow_with_hook: Failed and rolled back", "failed": ":x: Failed",
        "needs_human": ":rotating_light: FAILED and rollback failed: a human is needed now"}


def plan_parts(plan: Plan) -> list[Part]:
    parts: list[Part] = [Text(f"*Plan* ({plan.request.target}):\n" + "\n".join(f"• {s}" for s in plan.summary))]
    for router, commands in plan.commands.items():
        parts.append(Note(f"Commands on {router}:"))
        parts.append(Code("\n".join(commands)))
    notes = list(getattr(plan, "notes", ()))
    if notes:
        parts.append(Note("\n".join(f"• {n}" for n in notes)))
    if plan.risks:
        parts.append(Text("*Needs approval:*\n" + "\n".join(f"• {r.text}" for r in plan.risks)))
    return parts


def plan_fallback(plan: Plan) -> str:
    return "Plan: " + "; ".join(plan.summary)


def confirm_message(plan: Plan, approval_id: str) -> Message:
    question = f"Move {', '.join(m.service for m in plan.moves)} now?"
    return Message(plan_fallback(plan), (*plan_parts(plan), Buttons((
        Button("Confirm move", "confirm", approval_id, style="primary", confirm=Confirm("Move traffic?", question,
                                                                                      "Move")),
        Button("Cancel", "cancel", approval_id),
    ))))


def approval_message(plan: Plan, approval_id: str, requester: str, minutes: int) -> Message:
    head = f":raised_hand: {who(requester)} asks to move traffic. Approval needed within {minutes} min."
    return Message(f"Approval needed: {', '.join(plan.summary)}", (Text(head), *plan_parts(plan), Buttons((
        Button("Approve", "approve", approval_id, style="primary",
               confirm=Confirm("Approve this move?", "Pre-checks run again before anything changes.", "Approve")),
        Button("Deny", "deny", approval_id, style="danger"),
    ))))


def outcome_text(outcome: Outcome, *, by: str = "") -> str:
    lines = [HEAD[outcome.status] + (f" ({by})" if by else "")]
    lines += [f"• {escape(line)}" for line in outcome.lines]
    if outcome.timings_ms:
        lines.append("_" + ", ".join(f"{k.removesuffix('_ms')} {v} ms" for k, v in outcome.timings_ms.items()) + "_")
    return "\n".join(lines)


def outcome_message(outcome: Outcome, *, by: str = "", plan: Plan | None = None) -> Message:
    text = outcome_text(outcome, by=by)
    parts: list[Part] = [Text(text)]
    if plan is not None:
        parts.append(Note("\n".join(plan.summary)))
    return Message(text, tuple(parts))


# ---------------------------------------------------------------- status


def status_lines(view: StatusView) -> list[str]:
    lines = []
    for r in view.rows:
        served = r.host or ("?" if r.error else "no single host")
        lo = {"ok": " lo ok", "missing": " *VIP missing on lo*", "unknown": " lo unknown",
              "unchecked": ""}[r.loopback_state]
        mark = " :warning: drift" if r.drift else ""
        err = f" :x: {escape(r.error)}" if r.error else ""
        lines.append(f"{ICON.get(r.health, '')} *{r.service}* → {served} ({r.health}){lo}{mark}{err}")
    return lines


def maintenance_line(m: HostMaintenance) -> str:
    until = f"until {when(m.until)}" if m.until else "until turned off"
    why = f": {escape(m.reason)}" if m.reason else ""
    return f":wrench: {m.host} is in maintenance {until}, by {who(m.by)}{why}"


def leader_line(view: StatusView) -> str | None:
    """Who leads, for chat: times in the reader's zone; a warning when nobody does."""
    lead = view.leadership
    words = lead.words(lambda at: when(at, "{time_secs}"), escape)
    if words is None:
        return None
    return words if lead.record is not None and lead.record.leading else f":warning: {words}"


def status_message(view: StatusView, *, detail: Sequence[str] = (), offer_post: bool = True,
                   head: str = "") -> Message:
    text = "\n".join(status_lines(view)) or "No services."
    parts: list[Part] = []
    if head:
        parts.append(Text(head))
    parts.append(Text(text))
    if detail:
        parts.append(Code("\n".join(detail)))
    unknown = [f"loopback of {r.host or r.service} unknown: {r.loopback_error}" for r in view.rows
               if r.loopback_state == "unknown"]
    notes = [r.drift for r in view.rows if r.drift] + list(dict.fromkeys(unknown)) + view.notes
    if notes:
        parts.append(Note("\n".join(f":warning: {escape(n)}" for n in notes)))
    if view.maintenance:
        parts.append(Note("\n".join(maintenance_line(m) for m in view.maintenance.values())))
    if (lead := leader_line(view)) is not None:
        parts.append(Note(lead))
    if offer_post:
        parts.append(Buttons((Button("Post to channel", "post_status", "all"),)))
    fallback = "\n".join(([head] if head else []) + [text] + list(detail))
    return Message(fallback, tuple(parts))
