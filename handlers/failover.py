"""/failover: plan, confirm (safe) or ask an approver (risky), from a phone or a form."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.commands import FAILOVER, FailoverCommand, UsageError, parse_failover
from bot.drivers.errors import DriverError
from bot.engine.model import MoveRequest, Plan, Refusal
from bot.state import ApprovalClosed
from handlers import blocks
from handlers.context import SlackContext

Reply = Callable[..., Any]
FIRST_HEALTHY = "__first_healthy__"


def register(app: App, ctx: SlackContext) -> None:
    @app.command("/failover")
    def failover(ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient) -> None:
        user, channel = command["user_id"], command["channel_id"]
        try:
            cmd = parse_failover(command.get("text", ""))
        except UsageError as e:
            ack(f"{e}\n{FAILOVER.help()}")
            return
        if cmd.help:
            ack(FAILOVER.help())
            return
        quick = ctx.quick_refusal(user, channel, "operator")
        if quick:
            ack(quick)
            ctx.submit(lambda: ctx.audit_refusal(user, "slack", "failover", cmd.target or "", quick))
            return
        if cmd.target is None:
            ack()
            client.views_open(trigger_id=command["trigger_id"], view=_modal(ctx, channel))
            return
        ack("Planning…")
        ctx.submit(lambda: plan_and_offer(ctx, user, channel, cmd, _responder(respond)))

    @app.view("failover_modal")
    def submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        ack()
        user = body["user"]["id"]
        channel = json.loads(view.get("private_metadata") or "{}").get("channel", "")
        values = view["state"]["values"]
        service = values["service"]["service"]["selected_option"]["value"]
        target = values["target"]["target"].get("selected_option") or {"value": FIRST_HEALTHY}
        dry = bool(values.get("dry", {}).get("dry", {}).get("selected_options"))
        cmd = FailoverCommand(service, None if target["value"] == FIRST_HEALTHY else target["value"], dry)

        def reply(**kw: Any) -> None:
            kw.pop("replace_original", None)
            client.chat_postEphemeral(channel=channel, user=user, text=kw.get("text", ""), blocks=kw.get("blocks"))

        ctx.submit(lambda: plan_and_offer(ctx, user, channel, cmd, reply))

    @app.action("failover_confirm")
    def confirm(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        user, approval_id = body["user"]["id"], body["actions"][0]["value"]
        ctx.submit(lambda: _confirm(ctx, user, approval_id, _responder(respond)))

    @app.action("failover_cancel")
    def cancel(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        user, approval_id = body["user"]["id"], body["actions"][0]["value"]
        ctx.submit(lambda: _cancel(ctx, user, approval_id, _responder(respond)))


def _responder(respond: Respond) -> Reply:
    def reply(**kw: Any) -> None:
        kw.setdefault("replace_original", True)
        respond(**kw)
    return reply


def plan_and_offer(ctx: SlackContext, user: str, channel: str, cmd: FailoverCommand, reply: Reply) -> None:
    reason = ctx.full_refusal(user, channel, "operator")
    if reason:
        ctx.audit_refusal(user, "slack", "failover", cmd.target or "", reason)
        reply(text=reason)
        return
    inv = ctx.inv
    try:
        kind, target = inv.resolve(cmd.target or "")
        to_host = None
        if cmd.to_host:
            to_kind, to_host = inv.resolve(cmd.to_host)
            if to_kind != "host":
                raise LookupError(f"'to' takes a host, and {to_host} is a service")
    except LookupError as e:
        reply(text=str(e).strip("'\""))
        return
    req = MoveRequest(kind=kind, target=target, actor=f"slack:{user}", source="slack", to_host=to_host,
                      dry_run=cmd.dry_run)
    try:
        plan = ctx.engine.plan(req)
    except (Refusal, DriverError) as e:
        ctx.audit_refusal(user, "slack", "plan", target, str(e))
        reply(text=f":no_entry: Refused: {e}")
        return
    if plan.noop:
        reply(text=f":information_source: {plan.noop}")
        return
    if cmd.dry_run:
        outcome = ctx.engine.execute(plan)
        reply(text=blocks.outcome_text(outcome),
              blocks=[blocks.section(blocks.plan_text(plan)), *blocks.outcome_blocks(outcome)])
        return
    timeout = timedelta(seconds=inv.policy.approval_timeout)
    if not plan.risky:
        record = ctx.store.create_approval(plan=plan.to_dict(), requester=user, reasons=[], expires_in=timeout)
        reply(text=blocks.plan_text(plan), blocks=blocks.confirm_blocks(plan, record.id))
        return
    alert = inv.slack.alert_channel or channel
    record = ctx.store.create_approval(plan=plan.to_dict(), requester=user, reasons=[r.text for r in plan.risks],
                                       expires_in=timeout, channel=alert)
    ctx.store.supersede_approvals(target=target, except_id=record.id)
    minutes = int(inv.policy.approval_timeout // 60)
    posted = ctx.poster.post(alert, f"Approval needed: {', '.join(plan.summary)}",
                             blocks=blocks.approval_blocks(plan, record.id, user, minutes)).result(timeout=60)
    ctx.store.set_approval_message(record.id, channel=alert, ts=str(posted.get("ts", "")))
    ctx.store.audit(actor=f"slack:{user}", source="slack", action="approval-request", target=target,
                    result="pending", detail="; ".join(r.text for r in plan.risks), plan=plan.to_dict())
    reply(text=f":raised_hand: Risky, so it needs a second person: asked in <#{alert}>.\n"
               + "\n".join(f"• {r.text}" for r in plan.risks))


def _confirm(ctx: SlackContext, user: str, approval_id: str, reply: Reply) -> None:
    record = ctx.store.get_approval(approval_id)
    if record is None:
        reply(text="This plan is no longer known; run /failover again.", replace_original=False)
        return
    if record.requester != user:
        reply(text="Only the person who asked can confirm this move.", replace_original=False)
        return
    if record.reasons:
        reply(text="This move needs an approver's button, not a confirmation.", replace_original=False)
        return
    try:
        ctx.store.decide_approval(approval_id, decision="approved", by=user)
    except ApprovalClosed as e:
        reply(text=closed_text(ctx, e.record.status, e.record.decided_by, approval_id), replace_original=False)
        return
    plan = Plan.from_dict(record.plan)
    reply(text=f"Moving: {'; '.join(plan.summary)}…",
          blocks=[blocks.section(f":hourglass: Moving… ({plan.summary[0]})")])
    outcome = ctx.engine.execute(plan, idempotency_key=approval_id)
    reply(text=blocks.outcome_text(outcome), blocks=blocks.outcome_blocks(outcome, plan=plan))


def _cancel(ctx: SlackContext, user: str, approval_id: str, reply: Reply) -> None:
    try:
        ctx.store.decide_approval(approval_id, decision="denied", by=user)
    except ApprovalClosed as e:
        reply(text=closed_text(ctx, e.record.status, e.record.decided_by, approval_id), replace_original=False)
        return
    reply(text="Cancelled: nothing changed.")


def closed_text(ctx: SlackContext, status: str, by: str, approval_id: str) -> str:
    if status == "expired":
        return "This request has expired: nothing was changed. Run /failover again."
    if status == "superseded":
        return "A newer request for the same target replaced this one."
    changes = ctx.store.changes_for_request(approval_id)
    result = "; ".join(f"change on {c.router}: {c.status}" for c in changes) or "no change was made"
    return f"Already {status} by <@{by}> ({result}); not run again."


def _modal(ctx: SlackContext, channel: str) -> dict[str, Any]:
    def option(text: str, value: str) -> dict[str, Any]:
        return {"text": {"type": "plain_text", "text": text[:75]}, "value": value}

    services = [option(f"{s.name} ({s.prefix})", s.name) for s in ctx.inv.services.values()]
    hosts = [option("First healthy host", FIRST_HEALTHY)] + [option(h, h) for h in ctx.inv.hosts]
    return {
        "type": "modal",
        "callback_id": "failover_modal",
        "private_metadata": json.dumps({"channel": channel}),
        "title": {"type": "plain_text", "text": "Failover"},
        "submit": {"type": "plain_text", "text": "Show plan"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "input", "block_id": "service", "label": {"type": "plain_text", "text": "Service"},
             "element": {"type": "static_select", "action_id": "service", "options": services}},
            {"type": "input", "block_id": "target", "optional": True,
             "label": {"type": "plain_text", "text": "Move to"},
             "element": {"type": "static_select", "action_id": "target", "options": hosts,
                         "initial_option": hosts[0]}},
            {"type": "input", "block_id": "dry", "optional": True, "label": {"type": "plain_text", "text": "Mode"},
             "element": {"type": "checkboxes", "action_id": "dry",
                         "options": [option("Dry run: plan and check only", "dry")]}},
        ],
    }
