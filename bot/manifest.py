"""The Slack app manifest, written from the command table that also parses the chat text (bot.commands).

Slack refuses a whole manifest for one bad slash command, so the names are checked here as well as in
the config, and the manifest follows Slack's schema (slackapi/manifest-schema): display_information,
features.bot_user and slash_commands, oauth_config.scopes.bot, settings.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from bot.commands import CommandNames, check_command_name, slash_commands

Mode = Literal["socket", "http"]
EVENTS_PATH = "/slack/events"  # where lasthop serve listens in HTTP mode (bot.cli, handlers.app)
_NAME_LIMIT = 35  # Slack's limit for display_information.name
_URL_LIMIT = 3000  # Slack's limit for a slash command's url
# (scope, why lasthop needs it): the reason is written next to the scope in the YAML.
_BOT_SCOPES = (
    ("commands", "the slash commands"),
    ("chat:write", "alerts, approval requests, their outcomes"),
    ("usergroups:read", "only if roles name user groups (S... IDs)"),
)


def build_manifest(
    names: CommandNames, *, mode: Mode = "socket", request_url: str | None = None, app_name: str = "lasthop"
) -> dict[str, Any]:
    """The manifest as a mapping; ValueError (one line) if Slack would refuse it."""
    _check(names, mode, request_url, app_name)
    http = {"url": request_url} if mode == "http" else {}
    return {
        "display_information": {
            "name": app_name,
            "description": "Keeps web sites up by moving VIP routes on the last-hop router",
            "background_color": "#2c3e50",
        },
        "features": {
            "bot_user": {"display_name": app_name, "always_online": True},
            "slash_commands": [
                {
                    "command": c.command,
                    "description": c.description,
                    "usage_hint": c.usage_hint,
                    "should_escape": False,
                    **http,
                }
                for c in slash_commands(names)
            ],
        },
        "oauth_config": {"scopes": {"bot": [scope for scope, _ in _BOT_SCOPES]}},
        "settings": {
            "interactivity": {"is_enabled": True, **({"request_url": request_url} if mode == "http" else {})},
            "org_deploy_enabled": False,
            "socket_mode_enabled": mode == "socket",
            "token_rotation_enabled": False,
        },
    }


def manifest_yaml(
    names: CommandNames, *, mode: Mode = "socket", request_url: str | None = None, app_name: str = "lasthop"
) -> str:
    """The manifest as YAML to paste into Slack, with a header saying how."""
    manifest = build_manifest(names, mode=mode, request_url=request_url, app_name=app_name)
    body = yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True, width=4096)
    reasons = {f"- {scope}": why for scope, why in _BOT_SCOPES}
    lines = []
    for line in body.splitlines():
        why = reasons.get(line.strip())
        lines.append(f"{line:<30}# {why}" if why else line)
    how = (
        "Socket Mode: lasthop connects out with SLACK_APP_TOKEN (xapp-...); no public URL is needed."
        if mode == "socket"
        else f"HTTP mode: Slack posts to {request_url}; lasthop checks SLACK_SIGNING_SECRET."
    )
    header = [
        f"# Slack app manifest for {app_name}, made by `lasthop slack-manifest` from the inventory's slack.commands.",
        "# api.slack.com/apps -> Create New App -> From a manifest -> paste this; then install the app and",
        "# invite it to the alert and ops channels. Change command names in the inventory and make this again.",
        f"# {how}",
    ]
    return "\n".join([*header, *lines]) + "\n"


def _check(names: CommandNames, mode: str, request_url: str | None, app_name: str) -> None:
    if mode not in ("socket", "http"):
        raise ValueError(f"the mode is socket or http, not {mode!r}")
    if not 1 <= len(app_name) <= _NAME_LIMIT:
        raise ValueError(f"the app name must be 1 to {_NAME_LIMIT} characters")
    for command in names.all():
        reason = check_command_name(command)
        if reason is not None:
            raise ValueError(f"command {command!r}: {reason}")
    if len(set(names.all())) != len(names.all()):
        raise ValueError("two slash commands have the same name")
    if mode == "socket":
        if request_url is not None:
            raise ValueError("a request URL is for HTTP mode only (Socket Mode needs none)")
        return
    if request_url is None:
        raise ValueError(f"HTTP mode needs the request URL: https://YOUR-HOST{EVENTS_PATH}")
    parts = urlsplit(request_url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"the request URL must be https://HOST{EVENTS_PATH}: Slack sends to HTTPS only")
    if not parts.path.endswith(EVENTS_PATH) or parts.query or parts.fragment:
        raise ValueError(f"the request URL must end in {EVENTS_PATH}, where lasthop serve listens")
    if len(request_url) > _URL_LIMIT or any(c.isspace() or not c.isprintable() for c in request_url):
        raise ValueError("the request URL must be one printable word of at most 3000 characters")
