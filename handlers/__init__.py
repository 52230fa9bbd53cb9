"""Slack handlers: thin listeners, each registered with `register(app, ctx)`. They parse,
authorise, call the engine and render; no network logic lives here."""

from __future__ import annotations

from slack_bolt import App

from handlers import approvals, failover, status
from handlers.context import SlackContext


def register_all(app: App, ctx: SlackContext) -> None:
    for module in (status, failover, approvals):
        module.register(app, ctx)
