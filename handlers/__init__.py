"""Slack handlers: thin listeners, each module registered with `register(app, ctx)`. They parse,
call the chat-neutral workflow (bot.workflow) and render its answers as Block Kit."""

from __future__ import annotations

from slack_bolt import App

from handlers import actions, commands, forms
from handlers.context import SlackContext


def register_all(app: App, ctx: SlackContext) -> None:
    for module in (commands, actions, forms):
        module.register(app, ctx)
