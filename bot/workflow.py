"""The chat-neutral workflow: every request, confirmation, approval and alert button, for every front end.

Slack, the console and the CLI call these methods; they return what to tell the person
who acted (an `Answer`) and never reply themselves. Channel messages the workflow owns
(approval requests, the incident thread) go out through a `ChatOut`. Access is checked
here, once per action, whatever the front end: the actor's role, and their relation to
the request (only the requester confirms, never the requester approves, the requester or
an approver cancels).

Every move goes through the engine (plan, risk, live pre-check, lock, verify, rollback,
audit). A button tap carries an idempotency key, so a second tap, a retried delivery or a
tap after a restart reports what the first one did and runs nothing twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from bot import incident_view as iv
from bot.access import Role
from bot.chat import (
    Actor,
    Answer,
    Button,
    Buttons,
    ChatOut,
    Confirm,
    Message,
    MessageRef,
    Offer,
    Progress,
    Text,
    decode,
    encode,
    escape,
    who,
)
from bot.commands import MAINTENANCE_MAX, MAINTENANCE_MIN, REASON_LIMIT, FailoverCommand, MaintenanceCommand
from bot.drivers.errors import DriverError
from bot.durations import format_duration
from bot.echo import quoted
from bot.engine.model import MoveRequest, Plan, Refusal
from bot.engine.pipeline import Engine
from bot.incidents import IncidentUpdate
from bot.inventory import Inventory
from bot.state import ApprovalClosed, ApprovalRecord, StateStore
from bot.status import collect_status, detail_lines
from bot.views import (
    Phrasing,
    approval_message,
    confirm_message,
    outcome_message,
    plan_fallback,
    plan_parts,
    status_message,
)

log = logging.getLogger("lasthop.workflow")
MAINTENANCE_FROM_ALERT = 3600.0


class Access(Protocol):
    def refusal(self, actor: Actor, role: Role) -> str | None:
        """None when `actor` has `role`; otherwise the short reason to show them."""


class OpenAccess:
    """Everyone may do everything: the CLI and the console, whose users already have a shell on the bot host.

    The two-person rule still holds: nobody approves their own request.
    """

    def refusal(self, actor: Actor, role: Role) -> str | None:
        return None


class IncidentDesk(Protocol):
    """What the workflow needs of the incident side (the serve daemon provides it)."""

    def acknowledge(self, incident_id: int, by: str) -> tuple[IncidentUpdate | None, str]: ...

    def view(self, incident_id: int) -> iv.IncidentView | None: ...

    def announce(self, update: IncidentUpdate) -> None: ...

    def parent(self, incident_id: int) -> MessageRef | None: ...

    def after_move(self, incident_id: int) -> None:
        """A button of this incident moved something: its parent shows the routes now (resolved ones too)."""


@dataclass
class Workflow:
    inv: Inventory
    engine: Engine
    store: StateStore
    access: Access = field(default_factory=OpenAccess)
    out: ChatOut | None = None  # None: nobody to ask in a channel (the CLI)
    alert_channel: str = ""
    incidents: IncidentDesk | None = None
    phrasing: Phrasing = field(default_factory=Phrasing)
    # Taps of the same button in this process wait for each other, so the second one sees the
    # first one's result instead of a router in the middle of a change.
    _taps: dict[str, threading.Lock] = field(default_factory=dict)
    _taps_lock: threading.Lock = field(default_factory=threading.Lock)

    def _tap(self, key: str) -> threading.Lock:
        with self._taps_lock:
            return self._taps.setdefault(key, threading.Lock())

    # ---------------------------------------------------------------- helpers

    def _refused(self, actor: Actor, role: Role, action: str, target: str) -> Answer | None:
        reason = self.access.refusal(actor, role)
        if reason is None:
            return None
        self.audit_refusal(actor, action, target, reason)
        return Answer(Message.of(reason), ok=False)

    def audit_refusal(self, actor: Actor, action: str, target: str, reason: str) -> None:
        self.store.audit(actor=actor.ref, source=actor.backend, action=action, target=target or "-",
                         result="refused", detail=reason)

    def _resolve(self, target: str, to_host: str | None) -> tuple[str, str, str | None]:
        kind, name = self.inv.resolve(target)
        to = None
        if to_host:
            to_kind, to = self.inv.resolve(to_host)
            if to_kind != "host":
                raise LookupError(f"'to' takes a host, and {to} is a service")
        return kind, name, to

    def _plan(self, actor: Actor, req: MoveRequest) -> Plan | Answer:
        try:
            return self.engine.plan(req)
        except (Refusal, DriverError) as e:
            self.store.audit(actor=actor.ref, source=actor.backend, action="plan", target=req.target,
                             result="refused", detail=str(e))
            return Answer(Message.of(f":no_entry: Refused: {escape(str(e))}"), ok=False)

    # ---------------------------------------------------------------- status

    def status(self, actor: Actor, target: str | None = None) -> Answer:
        if (no := self._refused(actor, "viewer", "status", target or "")) is not None:
            return no
        only = kind = None
        if target:
            try:
                kind, only = self.inv.resolve(target)
            except LookupError as e:
                return Answer(Message.of(_lookup(e)), ok=False)
        view = collect_status(self.engine, only=only)
        detail = detail_lines(self.engine, view, kind, only) if kind and only else []
        return Answer(status_message(view, detail=detail, offer_post=self.out is not None), replace=True)

    def post_status(self, actor: Actor, channel: str) -> Answer:
        if (no := self._refused(actor, "viewer", "status", "")) is not None:
            return no
        if self.out is None:
            return Answer(Message.of("There is no channel to post to here."), ok=False)
        view = collect_status(self.engine)
        self.out.post(channel, status_message(view, offer_post=False, head=f"Status, asked by {who(actor.ref)}:"))
        return Answer(Message.of("Posted to the channel."))

    # ---------------------------------------------------------------- moves

    def request(self, actor: Actor, cmd: FailoverCommand, *, accept_risk: bool = False, direct: bool = False,
                incident: int | None = None, progress: Progress | None = None) -> Answer:
        """A move someone asked for: a plan to confirm (safe), a request to an approver (risky), or a refusal.

        `direct`: the front end already asked "are you sure" (a button's confirm dialog), so a
        safe plan runs at once. `accept_risk`: the CLI's break-glass, audited as such.
        """
        target = cmd.target or ""
        if (no := self._refused(actor, "operator", "failover", target)) is not None:
            return no
        try:
            kind, name, to_host = self._resolve(target, cmd.to_host)
        except LookupError as e:
            return Answer(Message.of(_lookup(e)), ok=False)
        reason = f"incident {incident}" if incident is not None else ""
        req = MoveRequest(kind=kind, target=name, actor=actor.ref, source=actor.backend,  # type: ignore[arg-type]
                          to_host=to_host, dry_run=cmd.dry_run, reason=reason)
        plan = self._plan(actor, req)
        if isinstance(plan, Answer):
            return plan
        if plan.noop:
            return Answer(Message.of(f":information_source: {self._already(plan, incident)}"), replace=True)
        if cmd.dry_run:
            outcome = self.engine.execute(plan)
            shown = outcome_message(outcome)
            return Answer(Message(shown.fallback, (*plan_parts(plan), *shown.parts)), ok=outcome.ok, replace=True)
        timeout = timedelta(seconds=self.inv.policy.approval_timeout)
        if not plan.risky or accept_risk:
            if direct and not plan.risky:
                key = self._tap_key(f"incident:{incident}:{plan.key}") if incident is not None else None
                answer = self._run(actor, plan, key=key, progress=progress)
                if incident is not None and self.incidents is not None:
                    self.incidents.after_move(incident)
                return answer
            record = self.store.create_approval(plan=plan.to_dict(), requester=actor.ref,
                                                reasons=[r.text for r in plan.risks], expires_in=timeout)
            return Answer(confirm_message(plan, record.id), replace=True, offer=Offer("confirm", record.id))
        return self._ask_approval(actor, plan, timeout, incident)

    def _tap_key(self, base: str) -> str:
        """The idempotency key of an alert button's move: the same for a second tap of the same move,
        a fresh one when every earlier attempt was rolled back, so the button can be tried again."""
        changes = self.store.changes_for_request(base)
        if changes and all(c.status in ("rolled_back", "failed") for c in changes):
            return f"{base}:retry{len(changes)}"
        return base

    def _already(self, plan: Plan, incident: int | None) -> str:
        """Nothing to do: say who did it, when the incident's timeline knows."""
        view = self.incidents.view(incident) if self.incidents is not None and incident is not None else None
        move = view.last_move(plan.request.target) if view is not None else None
        wanted = plan.request.to_host
        if move is None or (wanted is not None and all(t != wanted for _, _, t in move.moves)):
            return plan.noop  # the timeline's last move went elsewhere: it is not what was asked for
        moved = ", ".join(f"{s} {f or 'no route'} → {t}" for s, f, t in move.moves)
        return f"Already done: {moved} by {who(move.by)} at {move.at:%H:%M:%S} UTC. {plan.noop}."

    def _ask_approval(self, actor: Actor, plan: Plan, timeout: timedelta, incident: int | None,
                      then: dict[str, Any] | None = None) -> Answer:
        """Post the risky plan for a second person. `then`: what to do once it ran (start maintenance)."""
        reasons = [r.text for r in plan.risks]
        if self.out is None or not self.alert_channel:
            text = ("Refused: this plan needs a second person's approval (ask in chat), or --accept-risk "
                    "to own it:\n" + "\n".join(f"• {r}" for r in reasons))
            self.audit_refusal(actor, "failover", plan.request.target, "; ".join(reasons))
            return Answer(Message.of(text), ok=False)
        stored = {**plan.to_dict(), **({"then": then} if then else {})}
        record = self.store.create_approval(plan=stored, requester=actor.ref, reasons=reasons,
                                            expires_in=timeout, channel=self.alert_channel)
        self.store.supersede_approvals(target=plan.request.target, except_id=record.id)
        minutes = max(1, int(self.inv.policy.approval_timeout // 60))
        thread = self.incidents.parent(incident) if self.incidents is not None and incident is not None else None
        try:
            posted = self.out.post(self.alert_channel, approval_message(plan, record.id, actor.ref, minutes),
                                   thread=thread).result(timeout=60)
            self.store.set_approval_message(record.id, channel=posted.channel, ts=posted.ts)
        except Exception as e:  # the request stands; the approver can still find it in the channel later
            log.warning("approval %s: posting the request failed (%s)", record.id, type(e).__name__)
        self.store.audit(actor=actor.ref, source=actor.backend, action="approval-request",
                         target=plan.request.target, result="pending", detail="; ".join(reasons),
                         plan=plan.to_dict())
        where = "in the incident's thread" if thread is not None else f"in <#{self.alert_channel}>"
        return Answer(Message.of(f":raised_hand: Risky, so it needs a second person: asked {where}.\n"
                                 + "\n".join(f"• {r}" for r in reasons)), replace=True,
                      offer=Offer("approval", record.id))

    def _run(self, actor: Actor, plan: Plan, *, key: str | None, progress: Progress | None,
             approved_by: str | None = None, accept_risk: bool = False, by: str = "") -> Answer:
        if progress is not None:
            progress(Message.of(f":hourglass: Moving… ({plan.summary[0]})"))
        outcome = self.engine.execute(plan, idempotency_key=key, approved_by=approved_by, allow_risky=accept_risk)
        return Answer(outcome_message(outcome, by=by, plan=plan), ok=outcome.ok, replace=True)

    def confirm(self, actor: Actor, approval_id: str, *, accept_risk: bool = False,
                progress: Progress | None = None) -> Answer:
        record = self.store.get_approval(approval_id)
        if record is None:
            return Answer(Message.of("This plan is no longer known; ask again."), ok=False)
        target = str(record.plan.get("target", ""))
        if record.requester != actor.ref:
            text = "Only the person who asked can confirm this move."
            self.audit_refusal(actor, "confirm", target, text)
            return Answer(Message.of(text), ok=False)
        if (no := self._refused(actor, "operator", "confirm", target)) is not None:
            return no
        if record.reasons and not accept_risk:
            return Answer(Message.of("This move needs an approver's button, not a confirmation."), ok=False)
        try:
            self.store.decide_approval(approval_id, decision="approved", by=actor.ref)
        except ApprovalClosed as e:
            return Answer(Message.of(self.closed_text(e.record)), ok=False)
        return self._run(actor, Plan.from_dict(record.plan), key=approval_id, progress=progress,
                         accept_risk=accept_risk)

    def cancel(self, actor: Actor, approval_id: str) -> Answer:
        record = self.store.get_approval(approval_id)
        if record is None:
            return Answer(Message.of("This request is no longer known."), ok=False)
        target = str(record.plan.get("target", ""))
        if record.requester != actor.ref and self.access.refusal(actor, "approver") is not None:
            text = "Only the person who asked, or an approver, can cancel this request."
            self.audit_refusal(actor, "cancel", target, text)
            return Answer(Message.of(text), ok=False)
        try:
            self.store.decide_approval(approval_id, decision="denied", by=actor.ref)
        except ApprovalClosed as e:
            return Answer(Message.of(self.closed_text(e.record)), ok=False)
        self.store.audit(actor=actor.ref, source=actor.backend, action="cancel", target=target, result="denied",
                         detail=f"request by {record.requester}")
        text = f"Cancelled by {who(actor.ref)}: nothing changed."
        self._replace_request(record, None, Message.of(text))
        return Answer(Message.of(text), replace=True)

    def decide(self, actor: Actor, approval_id: str, decision: str, *,
               clicked: MessageRef | None = None) -> Answer | None:
        """Approve or deny a risky request. The request message becomes its outcome; the answer is for refusals."""
        record = self.store.get_approval(approval_id)
        if record is None:
            return Answer(Message.of("This approval request is no longer known."), ok=False)
        target = str(record.plan.get("target", ""))
        verb = "approve" if decision == "approved" else "deny"
        if (no := self._refused(actor, "approver", verb, target)) is not None:
            return no
        if decision == "approved" and not record.reasons:
            # A safe plan waits for its requester's own confirmation; no approve button was ever shown
            # for it, so a click here is forged or replayed, and the requester may have chosen not to.
            text = "This move waits for the confirmation of the person who asked; there is nothing to approve."
            self.audit_refusal(actor, "approve", target, text)
            return Answer(Message.of(text), ok=False)
        if decision == "approved" and self.inv.policy.two_person_rule and actor.ref == record.requester:
            text = "You cannot approve your own request: the two-person rule needs someone else."
            self.audit_refusal(actor, "approve", target, text)
            return Answer(Message.of(text), ok=False)
        try:
            decided = self.store.decide_approval(approval_id, decision=decision, by=actor.ref)
        except ApprovalClosed as e:
            self.audit_refusal(actor, verb, target, f"request already {e.record.status}")
            return Answer(Message.of(self.closed_text(e.record)), ok=False)
        plan = Plan.from_dict(record.plan)
        asked = f"asked by {who(record.requester)}"
        if decision == "denied":
            self.store.audit(actor=actor.ref, source=actor.backend, action="deny", target=target, result="denied",
                             detail=f"request by {record.requester}")
            self._replace_request(decided, clicked, Message.of(
                f":no_entry_sign: Denied by {who(actor.ref)}: {'; '.join(plan.summary)} ({asked}). Nothing changed."))
            return None
        self._replace_request(decided, clicked, Message.of(
            f":hourglass: Approved by {who(actor.ref)}, running: {'; '.join(plan.summary)}"))
        outcome = self.engine.execute(plan, approved_by=actor.ref, idempotency_key=approval_id)
        by = f"approved by {who(actor.ref)}, {asked}"
        shown = outcome_message(outcome, by=by, plan=plan)
        then = record.plan.get("then")
        if outcome.ok and isinstance(then, dict) and isinstance(then.get("maintenance"), dict):
            # The maintenance is the requester's, started once a second person let the drain run.
            started = self._start_maintenance(Actor.from_ref(record.requester), then["maintenance"])
            shown = Message(shown.fallback, (*shown.parts, *started.parts))
        self._replace_request(decided, clicked, shown)
        return None if self.out is not None else Answer(shown, ok=outcome.ok)

    def _replace_request(self, record: ApprovalRecord, clicked: MessageRef | None, message: Message) -> None:
        """The request message becomes its outcome, so its buttons are gone."""
        ref = MessageRef(record.channel, record.message_ts) if record.message_ts else clicked
        if self.out is not None and ref is not None and ref.ts:
            try:
                self.out.update(ref, message).result(timeout=60)
            except Exception as e:
                log.warning("cannot update the request message (%s)", type(e).__name__)

    def closed_text(self, record: ApprovalRecord) -> str:
        if record.status == "expired":
            return "This request has expired: nothing was changed. Ask again."
        if record.status == "superseded":
            return "A newer request for the same target replaced this one."
        changes = self.store.changes_for_request(record.id)
        result = "; ".join(f"change on {c.router}: {c.status}" for c in changes) or "no change was made"
        return f"Already {record.status} by {who(record.decided_by)} ({result}); not run again."

    # ---------------------------------------------------------------- maintenance

    def maintenance(self, actor: Actor, cmd: MaintenanceCommand, *, confirmed: bool = False,
                    accept_risk: bool = False, progress: Progress | None = None) -> Answer:
        """Maintenance on drains the host through the engine first, then silences it; off ends it."""
        if (no := self._refused(actor, "operator", "maintenance", cmd.host)) is not None:
            return no
        if (problem := _maintenance_problem(cmd)) is not None:
            return Answer(Message.of(problem), ok=False)
        if cmd.host not in self.inv.hosts:
            # A button's value is not the parser's output: the host may be anything, so quoted only if plain.
            return Answer(Message.of(f"unknown host {quoted(cmd.host, 'by that name')} (known: "
                                     f"{', '.join(sorted(self.inv.hosts))})"), ok=False)
        if not cmd.on:
            was = self.store.clear_maintenance(cmd.host)
            self.store.audit(actor=actor.ref, source=actor.backend, action="maintenance", target=cmd.host,
                             result="off", detail="" if was else "was not in maintenance")
            return Answer(Message.of(f"{cmd.host} is out of maintenance: checking it again" if was
                                     else f"{cmd.host} was not in maintenance"), replace=True)
        req = MoveRequest(kind="host", target=cmd.host, actor=actor.ref, source=actor.backend, reason="maintenance")
        plan = self._plan(actor, req)
        if isinstance(plan, Answer):
            return plan
        if plan.moves:
            if plan.risky and not accept_risk:
                if self.out is not None and self.alert_channel:
                    # The drain goes to an approver; maintenance starts when the drain has run.
                    then = {"maintenance": {"host": cmd.host, "duration": cmd.duration, "reason": cmd.reason}}
                    return self._ask_approval(actor, plan, timedelta(seconds=self.inv.policy.approval_timeout),
                                              None, then=then)
                text = (f"Refused: draining {cmd.host} is risky, so maintenance did not start:\n"
                        + "\n".join(f"• {r.text}" for r in plan.risks)
                        + "\nAsk for it in chat, where a second person can approve, or use --accept-risk.")
                self.audit_refusal(actor, "maintenance", cmd.host, "; ".join(r.text for r in plan.risks))
                return Answer(Message.of(text), ok=False)
            if not confirmed:
                value = encode(h=cmd.host, d=cmd.duration, r=cmd.reason)
                return Answer(Message(plan_fallback(plan), (
                    Text(f"Maintenance of *{cmd.host}* drains it first:"), *plan_parts(plan),
                    Buttons((Button("Drain and start", "maintenance", value, style="primary",
                                    confirm=Confirm("Start maintenance?", f"Move traffic off {cmd.host} now?",
                                                    "Start")),
                             Button("Cancel", "dismiss", "")))),
                ), replace=True, offer=Offer("confirm", value))
            if progress is not None:
                progress(Message.of(f":hourglass: Draining {cmd.host}…"))
            outcome = self.engine.execute(plan, allow_risky=accept_risk)
            if not outcome.ok:
                failed = outcome_message(outcome, plan=plan)
                return Answer(Message(failed.fallback, (*failed.parts, Text("Maintenance did not start."))),
                              ok=False, replace=True)
        return Answer(self._start_maintenance(actor, {"host": cmd.host, "duration": cmd.duration,
                                                       "reason": cmd.reason}), replace=True)

    def _start_maintenance(self, actor: Actor, what: Mapping[str, Any]) -> Message:
        host, duration, reason = str(what["host"]), what.get("duration"), str(what.get("reason") or "")
        seconds = float(duration) if isinstance(duration, int | float) else None
        until = self.store.now() + timedelta(seconds=seconds) if seconds else None
        self.store.set_maintenance(host, by=actor.ref, reason=reason, until=until)
        self.store.audit(actor=actor.ref, source=actor.backend, action="maintenance", target=host, result="on",
                         detail=(f"until {until:%Y-%m-%d %H:%M}Z" if until else "until turned off")
                         + (f"; {reason}" if reason else ""))
        when = f" for {format_duration(seconds)}" if seconds else " until it is turned off"
        why = f" ({escape(reason)})" if reason else ""
        return Message.of(f":wrench: {host} is in maintenance{when}{why}: no alerts, no moves to it.")

    # ---------------------------------------------------------------- buttons

    def press(self, actor: Actor, action: str, value: str, *, clicked: MessageRef | None = None,
              progress: Progress | None = None) -> Answer | None:
        """Any button lasthop showed, from any front end: `action` and `value` are the button's own."""
        if action == "confirm":
            return self.confirm(actor, value, progress=progress)
        if action == "cancel":
            return self.cancel(actor, value)
        if action in ("approve", "deny"):
            return self.decide(actor, value, "approved" if action == "approve" else "denied", clicked=clicked)
        if action.startswith("alert_"):
            return self.alert_action(actor, action, value, progress=progress)
        if action == "maintenance":
            data = decode(value)
            host, duration, reason = data.get("h"), data.get("d"), data.get("r", "")
            if isinstance(host, str) and isinstance(duration, int | float | None) and isinstance(reason, str):
                return self.maintenance(actor, MaintenanceCommand(host, True, duration, reason), confirmed=True,
                                        progress=progress)
        if action == "post_status":
            return self.post_status(actor, clicked.channel if clicked is not None else self.alert_channel)
        if action == "dismiss":
            return Answer(Message.of("Dismissed: nothing changed."), replace=True)
        return Answer(Message.of("This button is not one lasthop knows."), ok=False)

    # ---------------------------------------------------------------- alert buttons

    def acknowledge(self, actor: Actor, incident_id: int) -> Answer:
        if (no := self._refused(actor, "operator", "acknowledge", f"incident {incident_id}")) is not None:
            return no
        if self.incidents is None:
            return Answer(Message.of("Incidents are handled by `lasthop serve`, which is not running here."), ok=False)
        view = self.incidents.view(incident_id)
        if view is None:
            return Answer(Message.of("This incident is no longer known."), ok=False)
        if not view.open:
            return Answer(Message.of(f"This incident is already resolved ({view.title})."), ok=False)
        update, already = self.incidents.acknowledge(incident_id, actor.ref)
        if update is None:
            return Answer(Message.of(f"Already acknowledged by {who(already)}." if already
                                     else "This incident is already resolved."), ok=False)
        self.store.audit(actor=actor.ref, source=actor.backend, action="acknowledge", target=view.key, result="ok")
        self.incidents.announce(update)
        return Answer(Message.of(f"You are on it: {view.title}. Reminders stop."))

    def alert_action(self, actor: Actor, action: str, value: str, *, progress: Progress | None = None) -> Answer:
        """A button on an incident's parent message. The value is checked against the inventory, never trusted."""
        data = decode(value)
        incident_id = data.get("i")
        if not isinstance(incident_id, int) or self.incidents is None:
            return Answer(Message.of("This button is not one lasthop knows."), ok=False)
        if action == "alert_ack":
            return self.acknowledge(actor, incident_id)
        view = self.incidents.view(incident_id)
        if view is None:
            return Answer(Message.of("This incident is no longer known."), ok=False)
        if action == "alert_failover_all":
            named = data.get("h")
            hosts = [h for h in named if isinstance(h, str) and h in self.inv.hosts] if isinstance(named, list) else []
            if not view.open:
                return self._after_the_fact(view)
            with self._tap(f"{incident_id}:*"):
                answers = [self.request(actor, FailoverCommand(h), direct=True, incident=incident_id,
                                        progress=progress) for h in hosts]
            return _combined(answers) if answers else Answer(Message.of("Nothing to move."), ok=False)
        if action == "alert_maintenance":
            host = data.get("h")
            if not isinstance(host, str) or host not in self.inv.hosts:
                return Answer(Message.of("This button is not one lasthop knows."), ok=False)
            return self.maintenance(actor, MaintenanceCommand(host, True, MAINTENANCE_FROM_ALERT,
                                                              f"incident {incident_id}"),
                                    confirmed=True, progress=progress)
        service, host = data.get("s"), data.get("h")
        if (not isinstance(service, str) or service not in self.inv.services or not isinstance(host, str)
                or host not in self.inv.hosts):
            return Answer(Message.of("This button is not one lasthop knows."), ok=False)
        if action in ("alert_failover", "alert_failback"):
            if action == "alert_failover" and not view.open:
                return self._after_the_fact(view)
            with self._tap(f"{incident_id}:{service}"):
                return self.request(actor, FailoverCommand(service, host), direct=True, incident=incident_id,
                                    progress=progress)
        return Answer(Message.of("This button is not one lasthop knows."), ok=False)

    def _after_the_fact(self, view: iv.IncidentView) -> Answer:
        when = f" after {format_duration(round((view.resolved_at - view.opened_at).total_seconds()))}" \
            if view.resolved_at else ""
        moved = [f"{s} went to {t}" for m in view.moves if m.status == "done" for s, _, t in m.moves]
        story = "; ".join(moved) if moved else "nothing was moved"
        return Answer(Message.of(f"This incident is over: {view.title_past}, resolved{when} ({story}). "
                                 "Nothing moved now."), ok=False)


def _maintenance_problem(cmd: MaintenanceCommand) -> str | None:
    """The command's own rules, checked again here: a button's value is not the parser's output."""
    if cmd.duration is not None and not MAINTENANCE_MIN <= cmd.duration <= MAINTENANCE_MAX:
        return f"a maintenance window lasts from {format_duration(MAINTENANCE_MIN)} to " \
               f"{format_duration(MAINTENANCE_MAX)}"
    if len(cmd.reason) > REASON_LIMIT or not all(c.isprintable() for c in cmd.reason):
        return f"the reason must be at most {REASON_LIMIT} printable characters"
    return None


def _lookup(e: LookupError) -> str:
    return str(e).strip("'\"")


def _combined(answers: list[Answer]) -> Answer:
    if len(answers) == 1:
        return answers[0]
    parts = tuple(p for a in answers for p in a.message.parts)
    return Answer(Message("\n".join(a.message.fallback for a in answers), parts), ok=all(a.ok for a in answers),
                  replace=True)

