"""What a reply may quote of what a person typed.

Chat text can hold mentions (`<!channel>`, `<@U123>`), links (`<https://x|y>`), `&` entities,
control characters and direction overrides. A Slack reply quotes a word only when it is plain
(letters, digits and `._:/-`, at most ECHO_LIMIT characters), so it is inert in Slack's markup
with nothing to escape and cannot ping anyone; anything else is named by a stand-in ("that
word"). The console shows plain text, where markup is harmless but control characters are
not: there it is quoted with every unprintable character replaced, and capped. An error about
a file (bot.config) quotes a value from it `shortened`: escaped and cut, saying how long it was.
"""

from __future__ import annotations

import re

ECHO_LIMIT = 40
_PLAIN_WORD = re.compile(rf"[A-Za-z0-9._:/-]{{1,{ECHO_LIMIT}}}")


def quoted(text: str, instead: str) -> str:
    """`'text'` when it is a plain word, else `instead`: for chat replies (Slack mrkdwn)."""
    return f"'{text}'" if _PLAIN_WORD.fullmatch(text) else instead


def terminal(text: str, limit: int = ECHO_LIMIT) -> str:
    """`'text'` for a terminal: unprintable characters (escapes, bidi overrides, newlines) as `?`, capped."""
    shown = "".join(c if c.isprintable() else "?" for c in text[:limit])
    return f"'{shown}…'" if len(text) > limit else f"'{shown}'"


def one_line(text: str) -> str:
    """`text` with every unprintable character (newline, escape, NUL, bidi override) written as its escape."""
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def shortened(text: str, limit: int = ECHO_LIMIT) -> str:
    """`text` for an error message: `one_line`, and past `limit` characters cut, saying how long it was.

    A value in a file may be thousands of characters long; the message needs only enough of it to
    recognise it. An escape counts with its own length, so what is shown stays within `limit`.
    """
    shown: list[str] = []
    width = 0
    for c in text:
        piece = c if c.isprintable() else _escape(c)
        if width + len(piece) > limit:
            return f"{''.join(shown)}… ({len(text)} characters)"
        shown.append(piece)
        width += len(piece)
    return "".join(shown)


def _escape(c: str) -> str:
    return repr(c)[1:-1]
