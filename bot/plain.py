"""The common markup as plain terminal text: for the console, the log and the CLI.

`*bold*` loses its stars, mentions become @name, Slack's date tokens become the local time,
emoji names become a word or a symbol a terminal shows, and escaped text is unescaped last.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from bot.chat import Button, Buttons, Code, Message, Note, Text

_DATE = re.compile(r"<!date\^(\d+)\^(\{[a-z_]+\})[^|>]*\|[^>]*>")
_MENTION = re.compile(r"<@([^>|]+)(?:\|[^>]*)?>")
_CHANNEL = re.compile(r"<#([^>|]+)(?:\|([^>]*))?>")
_BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_([^_\n]+)_(?![\w_])")
_EMOJI = re.compile(r":([a-z0-9_+-]+):( ?)")
EMOJI = {
    "red_circle": "[DOWN]", "large_green_circle": "[ok]", "large_yellow_circle": "[!]", "white_circle": "[?]",
    "wrench": "[maint]", "white_check_mark": "[ok]", "warning": "[!]", "x": "[x]", "no_entry": "[no]",
    "no_entry_sign": "[no]", "rotating_light": "[ALERT]", "raised_hand": "[approval]", "mag": "",
    "information_source": "", "hourglass": "...", "leftwards_arrow_with_hook": "[rolled back]",
    "eyes": "[ack]",
}


def _emoji(m: re.Match[str]) -> str:
    word = EMOJI.get(m[1])
    if word is None:
        return m[0]
    return f"{word}{m[2]}" if word else ""  # a symbol that only repeats the next word goes, with its space


def _time(m: re.Match[str]) -> str:
    at = datetime.fromtimestamp(int(m[1]))
    return at.strftime("%H:%M:%S" if m[2] == "{time_secs}" else "%H:%M")


def text(markup: str) -> str:
    out = _DATE.sub(_time, markup)
    out = _MENTION.sub(lambda m: f"@{m[1]}", out)
    out = _CHANNEL.sub(lambda m: f"#{m[2] or m[1]}", out)
    out = _BOLD.sub(r"\1", out)
    out = _ITALIC.sub(r"\1", out)
    out = _EMOJI.sub(_emoji, out)
    return out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def render(message: Message, number: Callable[[Button], int | None] | None = None, indent: str = "",
           *, buttons: bool = True) -> str:
    """The message as lines; `number` gives each button its number (None: not pressable here).

    `buttons=False` leaves them out, for a front end that asks its own way (the CLI's y/N).
    """
    lines: list[str] = []
    for part in message.parts or (Text(message.fallback),):
        if isinstance(part, Buttons) and not buttons:
            continue
        if isinstance(part, Text):
            lines.extend(text(part.text).splitlines())
        elif isinstance(part, Note):
            lines.extend(f"  {line}" for line in text(part.text).splitlines())
        elif isinstance(part, Code):
            lines.extend(f"    {line}" for line in part.text.splitlines())
        elif isinstance(part, Buttons):
            labels = []
            for b in part.buttons:
                n = number(b) if number is not None else None
                labels.append(f"[{n}] {b.label}" if n is not None else f"[{b.label}]")
            lines.append("  ".join(labels))
    return "\n".join(indent + line for line in lines)
