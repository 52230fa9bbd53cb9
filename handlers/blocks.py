"""Block Kit for phones: lasthop's chat-neutral messages (bot.chat) as Slack blocks, within Slack's limits.

Rendering only. A button's action_id is `lh.<action>.<n>`: one Bolt listener takes them all,
and `n` keeps two buttons of the same action in one message distinct, as Slack requires.
"""

from __future__ import annotations

import re
from typing import Any

from bot.chat import Button, Buttons, Code, Message, Note, Text

Block = dict[str, Any]
ACTION_ID = re.compile(r"^lh\.([a-z_]+)\.\d+$")
MAX_BLOCKS = 50
SECTION_MAX = 3000
LABEL_MAX = 75


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:SECTION_MAX]}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:SECTION_MAX]}]}


def button(b: Button, n: int) -> Block:
    out: Block = {"type": "button", "text": {"type": "plain_text", "text": b.label[:LABEL_MAX]},
                  "action_id": f"lh.{b.action}.{n}", "value": b.value[:2000]}
    if b.style:
        out["style"] = b.style
    if b.confirm:
        out["confirm"] = {"title": {"type": "plain_text", "text": b.confirm.title[:100]},
                          "text": {"type": "mrkdwn", "text": b.confirm.text[:300]},
                          "confirm": {"type": "plain_text", "text": b.confirm.yes[:30]},
                          "deny": {"type": "plain_text", "text": b.confirm.no[:30]}}
    return out


def _chunks(text: str, limit: int = SECTION_MAX) -> list[str]:
    """Long text split at line ends (a line longer than `limit` at `limit`) into sections Slack accepts."""
    out, current = [], ""
    for whole in text.split("\n"):
        for line in [whole[i:i + limit] for i in range(0, len(whole), limit)] or [""]:
            if current and len(current) + 1 + len(line) > limit:
                out.append(current)
                current = line
            else:
                current = f"{current}\n{line}" if current else line
    out.append(current)
    return [c for c in out if c]


def render(message: Message) -> list[Block]:
    blocks: list[Block] = []
    n = 0
    for part in message.parts or (Text(message.fallback),):
        if isinstance(part, Text):
            blocks.extend(section(c) for c in _chunks(part.text))
        elif isinstance(part, Note):
            if part.text.strip():  # Slack refuses a context element with no text
                blocks.append(context(part.text))
        elif isinstance(part, Code):
            code = part.text.replace("```", "'''")
            blocks.extend(section(f"```{c}```") for c in _chunks(code, SECTION_MAX - 6))
        elif isinstance(part, Buttons):
            elements = []
            for b in part.buttons[:25]:
                elements.append(button(b, n))
                n += 1
            if elements:
                blocks.append({"type": "actions", "elements": elements})
    if len(blocks) > MAX_BLOCKS:
        # Keep the buttons (what the reader acts on) where they are; drop text from the end.
        drop = len(blocks) - MAX_BLOCKS
        keep = [True] * len(blocks)
        for i in range(len(blocks) - 1, -1, -1):
            if drop and blocks[i]["type"] != "actions":
                keep[i], drop = False, drop - 1
        blocks = [b for b, k in zip(blocks, keep, strict=True) if k][:MAX_BLOCKS]
    return blocks


def fallback(message: Message) -> str:
    return message.fallback[:SECTION_MAX] or "lasthop"


def action_of(action_id: str) -> str | None:
    m = ACTION_ID.match(action_id)
    return m[1] if m else None


def reply(message: Message, *, replace: bool) -> dict[str, Any]:
    """respond() arguments: an ephemeral answer, taking the place of the clicked message when `replace`."""
    return {"text": fallback(message), "blocks": render(message), "response_type": "ephemeral",
            "replace_original": replace}
