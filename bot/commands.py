"""The chat commands' grammar: one definition parses the text and writes the help.

Parsing only splits and checks words. Names are turned into inventory values by
Inventory.resolve, so no text typed here ever reaches a device.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD = re.compile(r"(?:--)?[A-Za-z0-9][A-Za-z0-9._/:-]{0,63}")
DRY_RUN_WORDS = ("dry-run", "dryrun", "--dry-run")


class UsageError(ValueError):
    """Bad syntax; `str()` is a short sentence, followed in chat by the command's help."""


@dataclass(frozen=True)
class Syntax:
    command: str
    usage: str
    summary: str
    examples: tuple[str, ...]

    def help(self) -> str:
        lines = [f"`{self.command} {self.usage}`", self.summary, "Examples:"]
        lines += [f"• `{self.command} {e}`".rstrip() for e in self.examples]
        return "\n".join(lines)


STATUS = Syntax(
    "/status", "[SERVICE|HOST|help]",
    "Who serves what, read live from the routers. With a name: the checks, last changes and current route.",
    ("", "www-a", "web1"),
)
FAILOVER = Syntax(
    "/failover", "SERVICE|PREFIX|HOST [to HOST] [dry-run]",
    "Move a service (or every service a host serves) to another host. Shows the plan first; "
    "risky plans go to an approver. With no words: a form with pickers.",
    ("www-a", "www-a to web2", "198.51.100.32/27 dry-run", "web1"),
)


@dataclass(frozen=True)
class StatusCommand:
    target: str | None = None
    help: bool = False


@dataclass(frozen=True)
class FailoverCommand:
    target: str | None = None
    to_host: str | None = None
    dry_run: bool = False
    help: bool = False


def _words(text: str) -> list[str]:
    words = text.split()
    for w in words:
        if not _WORD.fullmatch(w):
            shown = w if len(w) <= 20 and w.isprintable() else w[:20].encode("unicode_escape").decode() + "…"
            raise UsageError(f"'{shown}' is not a name, prefix or keyword")
    return words


def parse_status(text: str) -> StatusCommand:
    words = _words(text)
    if not words:
        return StatusCommand()
    if len(words) == 1:
        return StatusCommand(help=True) if words[0].lower() == "help" else StatusCommand(target=words[0])
    raise UsageError("/status takes at most one name")


def parse_failover(text: str) -> FailoverCommand:
    words = _words(text)
    if not words:
        return FailoverCommand()
    if words[0].lower() == "help":
        if len(words) > 1:
            raise UsageError("help takes no more words")
        return FailoverCommand(help=True)
    target, rest = words[0], words[1:]
    to_host, dry_run = None, False
    while rest:
        word = rest.pop(0).lower()
        if word in DRY_RUN_WORDS and not dry_run:
            dry_run = True
        elif word == "to" and to_host is None:
            if not rest:
                raise UsageError("'to' needs a host name after it")
            to_host = rest.pop(0)
        else:
            raise UsageError(f"unexpected '{word}'")
    return FailoverCommand(target=target, to_host=to_host, dry_run=dry_run)
