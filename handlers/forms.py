"""The failover form: `/failover` with no words opens it; its answer is a plan, as if typed."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.chat import Actor, Message
from bot.commands import FailoverCommand
from bot.inventory import Inventory
from handlers import blocks
from handlers.context import SlackContext, context_of

log = logging.getLogger("lasthop.slack")
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


def submitted(view: dict[str, Any]) -> tuple[FailoverCommand, str] | None:
    """The command the form asks for, and the channel it was opened from; None if the view is not our form's."""
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
        values = view["state"]["values"]
        service = values["service"]["service"]["selected_option"]["value"]
        target = (values.get("target", {}).get("target", {}).get("selected_option") or {}).get("value",
                                                                                               FIRST_HEALTHY)
        dry = bool(values.get("dry", {}).get("dry", {}).get("selected_options"))
        channel = meta.get("channel", "")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if not all(isinstance(v, str) for v in (service, target, channel)):
        return None
    return FailoverCommand(service, None if target == FIRST_HEALTHY else target, dry), channel


def on_submit(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: Any) -> None:
    ctx = context_of(context)
    found = submitted(view)
    if found is None:  # Slack sends the form it was given; anything else asks for nothing
        log.warning("failover form: a submission lasthop cannot read; nothing done")
        ack(response_action="errors", errors={"service": "Pick a service"})
        return
    ack()
    cmd, channel = found
    actor = Actor(body["user"]["id"], "slack", channel)

    def show(message: Message) -> None:
        client.chat_postEphemeral(channel=channel, user=actor.id, text=blocks.fallback(message),
                                  blocks=blocks.render(message))

    ctx.submit(lambda: show(ctx.workflow.request(actor, cmd, progress=show).message), on_error=show)
