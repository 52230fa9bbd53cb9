"""Slash commands: `/lasthop …`, `/failover …` and `/vip-status …` (names from slack.commands).

Each is parsed by bot.commands, acknowledged at once (Slack gives up after 3 s), and worked
on in the background through the workflow, whose answer replaces the acknowledgement.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.access import Role
from bot.chat import Actor, Answer
from bot.commands import (
    Command,
    FailoverCommand,
    HelpCommand,
    MaintenanceCommand,
    StatusCommand,
    UsageError,
    help_text,
    parse,
)
from handlers import blocks, forms
from handlers.context import SlackContext, context_of

_ROLE: dict[type, Role] = {StatusCommand: "viewer", FailoverCommand: "operator", MaintenanceCommand: "operator"}
_WORKING: dict[type, str] = {StatusCommand: "Reading the routers…", FailoverCommand: "Planning…",
                             MaintenanceCommand: "Working…"}


def register(app: App, ctx: SlackContext) -> None:
    for name in ctx.names.all():
        app.command(name)(on_command)


def on_command(ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient, context: Any) -> None:
    ctx = context_of(context)
    try:
        cmd = parse(ctx.names, command.get("command", ""), command.get("text", ""))
    except UsageError as e:
        ack(f"{e}\n{help_text(ctx.names, e.topic)}")
        return
    if isinstance(cmd, HelpCommand):
        ack(help_text(ctx.names, cmd.topic))
        return
    actor = Actor(command["user_id"], "slack", command["channel_id"])
    quick = ctx.access.quick(actor, _ROLE[type(cmd)])
    if quick:
        ack(quick)
        ctx.submit(lambda: ctx.workflow.audit_refusal(actor, type(cmd).__name__.removesuffix("Command").lower(),
                                                        _target(cmd), quick))
        return
    if isinstance(cmd, FailoverCommand) and cmd.target is None:
        ack()
        client.views_open(trigger_id=command["trigger_id"], view=forms.failover_form(ctx.workflow.inv, actor.channel))
        return
    ack(_WORKING[type(cmd)])
    ctx.submit(lambda: run(ctx, actor, cmd, respond),
               on_error=lambda message: respond(**blocks.reply(message, replace=True)))


def _target(cmd: Command) -> str:
    if isinstance(cmd, MaintenanceCommand):
        return cmd.host
    return getattr(cmd, "target", None) or ""


def run(ctx: SlackContext, actor: Actor, cmd: Command, respond: Respond) -> Answer:
    """The command's work, after the ack; its answer replaces the "working" note."""
    def progress(message: Any) -> None:
        respond(**blocks.reply(message, replace=True))

    wf = ctx.workflow
    if isinstance(cmd, StatusCommand):
        answer = wf.status(actor, cmd.target)
    elif isinstance(cmd, FailoverCommand):
        answer = wf.request(actor, cmd, progress=progress)
    elif isinstance(cmd, MaintenanceCommand):
        answer = wf.maintenance(actor, cmd, progress=progress)
    else:  # pragma: no cover - parse() returns only these
        raise TypeError(type(cmd).__name__)
    respond(**blocks.reply(answer.message, replace=True))
    return answer
