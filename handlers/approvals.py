"""Approve and Deny on a risky move: a second person, in time, with pre-checks run again."""

from __future__ import annotations

import dataclasses
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.engine.model import Plan
from bot.state import ApprovalClosed, ApprovalRecord
from handlers import blocks
from handlers.context import SlackContext
from handlers.failover import closed_text


def register(app: App, ctx: SlackContext) -> None:
    @app.action("approval_approve")
    def approve(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        user, approval_id = body["user"]["id"], body["actions"][0]["value"]
        channel, ts = _clicked(body)
        ctx.submit(lambda: _decide(ctx, user, channel, ts, approval_id, "approved", respond))

    @app.action("approval_deny")
    def deny(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        user, approval_id = body["user"]["id"], body["actions"][0]["value"]
        channel, ts = _clicked(body)
        ctx.submit(lambda: _decide(ctx, user, channel, ts, approval_id, "denied", respond))


def _clicked(body: dict[str, Any]) -> tuple[str, str]:
    """The channel and message the button was on: the message to replace with the outcome."""
    container = body.get("container", {})
    channel = body.get("channel", {}).get("id", "") or container.get("channel_id", "")
    return channel, str(container.get("message_ts") or body.get("message", {}).get("ts", ""))


def _tell(respond: Respond, text: str) -> None:
    respond(text=text, response_type="ephemeral", replace_original=False)


def _decide(ctx: SlackContext, user: str, channel: str, ts: str, approval_id: str, decision: str,
            respond: Respond) -> None:
    record = ctx.store.get_approval(approval_id)
    if record is None:
        _tell(respond, "This approval request is no longer known.")
        return
    target = str(record.plan.get("target", ""))
    reason = ctx.full_refusal(user, channel, "approver")
    if reason:
        ctx.audit_refusal(user, "slack", decision, target, reason)
        _tell(respond, reason)
        return
    if decision == "approved" and ctx.inv.policy.two_person_rule and user == record.requester:
        text = "You cannot approve your own request: the two-person rule needs someone else."
        ctx.audit_refusal(user, "slack", "approve", target, text)
        _tell(respond, text)
        return
    try:
        decided = ctx.store.decide_approval(approval_id, decision=decision, by=user)
    except ApprovalClosed as e:
        ctx.audit_refusal(user, "slack", decision, target, f"request already {e.record.status}")
        _tell(respond, closed_text(ctx, e.record.status, e.record.decided_by, approval_id))
        return
    # The clicked message is the request: Slack names it even when the click beat our own record of it.
    if channel and ts and not decided.message_ts:
        decided = dataclasses.replace(decided, channel=channel, message_ts=ts)
    plan = Plan.from_dict(record.plan)
    if decision == "denied":
        ctx.store.audit(actor=f"slack:{user}", source="slack", action="deny", target=target, result="denied",
                        detail=f"request by {record.requester}")
        _replace(ctx, decided, f":no_entry_sign: Denied by <@{user}>: {'; '.join(plan.summary)} (asked by "
                               f"<@{record.requester}>). Nothing changed.")
        return
    _replace(ctx, decided, f":hourglass: Approved by <@{user}>, running: {'; '.join(plan.summary)}")
    outcome = ctx.engine.execute(plan, approved_by=f"slack:{user}", idempotency_key=approval_id)
    text = blocks.outcome_text(outcome, by=f"approved by <@{user}>, asked by <@{record.requester}>")
    _replace(ctx, decided, text, blocks.outcome_blocks(outcome, by=f"approved by <@{user}>, asked by "
                                                                 f"<@{record.requester}>", plan=plan))


def _replace(ctx: SlackContext, record: ApprovalRecord, text: str,
             new_blocks: list[dict[str, Any]] | None = None) -> None:
    """The request message becomes its outcome, so its buttons are gone."""
    if record.channel and record.message_ts:
        ctx.poster.update(record.channel, record.message_ts, text, new_blocks or [blocks.section(text)]).result(60)
