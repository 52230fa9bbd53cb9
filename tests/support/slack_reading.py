"""Reading the Slack stand-in's channel as a person would: buttons, incident parents, thread text."""

from __future__ import annotations

from typing import Any

from bench._slack_standin import SlackStandIn

INCIDENT_STATES = ("OPEN", "MITIGATED", "RESOLVED", "NOT SERVING")


def buttons(message: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """A message's buttons by action (lh.<action>.<n> -> <action>)."""
    found = {}
    for block in (message or {}).get("blocks", []):
        for e in block.get("elements", []) if block.get("type") == "actions" else []:
            found[e["action_id"].split(".")[1]] = e
    return found


def incident_parents(standin: SlackStandIn, channel: str) -> list[dict[str, Any]]:
    """Incident parents: top-level messages of `channel` that show an incident's state."""
    return [m for m in standin.channel_messages(channel) if any(s in m.get("text", "") for s in INCIDENT_STATES)]


def thread_text(standin: SlackStandIn, channel: str, ts: str) -> str:
    return "\n".join(m.get("text", "") for m in standin.thread(channel, ts))
