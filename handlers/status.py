"""/status: who serves what, read live, on one phone screen."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond

from bot.commands import STATUS, UsageError, parse_status
from bot.status import detail_lines
from handlers import blocks
from handlers.context import SlackContext


def register(app: App, ctx: SlackContext) -> None:
    @app.command("/status")
    def status(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        user, channel = command["user_id"], command["channel_id"]
        try:
            cmd = parse_status(command.get("text", ""))
        except UsageError as e:
            ack(f"{e}\n{STATUS.help()}")
            return
        if cmd.help:
            ack(STATUS.help())
            return
        quick = ctx.quick_refusal(user, channel, "viewer")
        ack(quick or "Reading the routers…")
        if quick:
            ctx.submit(lambda: ctx.audit_refusal(user, "slack", "status", cmd.target or "", quick))
            return
        ctx.submit(lambda: _status(ctx, user, channel, cmd.target, respond))

    @app.action("status_post")
    def post(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        user, channel = body["user"]["id"], body["channel"]["id"]
        ctx.submit(lambda: _post(ctx, user, channel, respond))


def _status(ctx: SlackContext, user: str, channel: str, target: str | None, respond: Respond) -> None:
    reason = ctx.full_refusal(user, channel, "viewer")
    if reason:
        ctx.audit_refusal(user, "slack", "status", target or "", reason)
        respond(text=reason, replace_original=True)
        return
    only = kind = None
    if target:
        try:
            kind, only = ctx.inv.resolve(target)
        except LookupError as e:
            respond(text=str(e).strip("'\""), replace_original=True)
            return
    view = ctx.read_status(only)
    text = "\n".join(blocks.status_lines(view))
    body = blocks.status_blocks(view)
    if kind and only:
        detail = detail_lines(ctx.engine, view, kind, only)
        text += "\n" + "\n".join(detail)
        body.insert(1, blocks.section("```" + "\n".join(detail) + "```"))
    respond(text=text or "No services.", blocks=body, replace_original=True)


def _post(ctx: SlackContext, user: str, channel: str, respond: Respond) -> None:
    reason = ctx.full_refusal(user, channel, "viewer")
    if reason:
        respond(text=reason, replace_original=False)
        return
    view = ctx.read_status(None)
    text = "\n".join(blocks.status_lines(view))
    head = f"Status, asked by <@{user}>:"
    body = [blocks.section(head), *blocks.status_blocks(view, offer_post=False)]
    ctx.poster.post(channel, f"{head}\n{text}", blocks=body)
    respond(text="Posted to the channel.", replace_original=False)
