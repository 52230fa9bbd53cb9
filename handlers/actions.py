"""Every button lasthop posts (action_id `lh.<action>.<n>`), answered through the workflow.

A click on an ephemeral message (a plan to confirm) replaces it with the outcome; a click on
a channel message (an alert, an approval request) never does: the workflow updates those
itself, and the clicker gets a private answer.
"""

from __future__ import annotations

import re
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.chat import Actor, Answer, Message, MessageRef
from handlers import blocks
from handlers.context import SlackContext, context_of

ACTIONS = re.compile(r"^lh\.[a-z_]+\.\d+$")


def register(app: App, ctx: SlackContext) -> None:
    app.action(ACTIONS)(on_action)


def clicked(body: dict[str, Any]) -> tuple[MessageRef, bool]:
    """The message the button was on, and whether only the clicker sees it."""
    container = body.get("container", {})
    channel = body.get("channel", {}).get("id", "") or container.get("channel_id", "")
    ts = str(container.get("message_ts") or body.get("message", {}).get("ts", ""))
    return MessageRef(channel, ts), bool(container.get("is_ephemeral"))


def on_action(ack: Ack, body: dict[str, Any], respond: Respond, context: Any) -> None:
    ack()
    ctx = context_of(context)
    action_id = body["actions"][0].get("action_id", "")
    value = str(body["actions"][0].get("value", ""))
    where, ephemeral = clicked(body)
    actor = Actor(body["user"]["id"], "slack", where.channel)
    ctx.submit(lambda: run(ctx, actor, blocks.action_of(action_id) or "", value, where, ephemeral, respond),
               on_error=lambda message: respond(**blocks.reply(message, replace=False)))


def run(ctx: SlackContext, actor: Actor, action: str, value: str, where: MessageRef, ephemeral: bool,
        respond: Respond) -> Answer | None:
    def progress(message: Message) -> None:
        respond(**blocks.reply(message, replace=ephemeral))

    if action == "dismiss":
        respond(delete_original=True)
        return None
    answer = ctx.workflow.press(actor, action, value, clicked=where, progress=progress)
    if answer is not None:
        respond(**blocks.reply(answer.message, replace=ephemeral and answer.replace))
    return answer
