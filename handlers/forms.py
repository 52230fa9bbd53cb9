"""The failover form: `/failover` with no words opens it; its answer is a plan, as if typed."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.chat import Actor, Message
from bot.commands import FailoverCommand
from bot.inventory import Inventory
from handlers import blocks
from handlers.context import SlackContext, context_of

CALLBACK = "failover_form"
FIRST_HEALTHY = "__first_healthy__"


def register(app: App, ctx: SlackContext) -> None:
    app.view(CALLBACK)(on_submit)


def failover_form(inv: Inventory, channel: str) -> dict[str, Any]:
    def option(text: str, value: str) -> dict[str, Any]:
        return {"text": {"type": "plain_text", "text": text[:75]}, "value": value}

    services = [option(f"{s.name} ({s.prefix})", s.name) for s in inv.services.values()][:100]
    hosts = [option("The best healthy host", FIRST_HEALTHY), *[option(h, h) for h in inv.hosts][:99]]
    return {
        "type": "modal",
        "callback_id": CALLBACK,
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


def submitted(view: dict[str, Any]) -> tuple[FailoverCommand, str]:
    """The command the form asks for, and the channel it was opened from."""
    channel = str(json.loads(view.get("private_metadata") or "{}").get("channel", ""))
    values = view["state"]["values"]
    service = values["service"]["service"]["selected_option"]["value"]
    target = (values.get("target", {}).get("target", {}).get("selected_option") or {}).get("value", FIRST_HEALTHY)
    dry = bool(values.get("dry", {}).get("dry", {}).get("selected_options"))
    return FailoverCommand(service, None if target == FIRST_HEALTHY else target, dry), channel


def on_submit(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: Any) -> None:
    ack()
    ctx = context_of(context)
    cmd, channel = submitted(view)
    actor = Actor(body["user"]["id"], "slack", channel)

    def show(message: Message) -> None:
        client.chat_postEphemeral(channel=channel, user=actor.id, text=blocks.fallback(message),
                                  blocks=blocks.render(message))

    ctx.submit(lambda: show(ctx.workflow.request(actor, cmd, progress=show).message), on_error=show)
