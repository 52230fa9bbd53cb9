"""The chat commands' grammar: one table parses the text, writes the help and lists the Slack app's commands.

Slack keeps the names of its own commands (/status among them) and refuses a whole app manifest that
lists one, so lasthop answers to one umbrella command (`/lasthop status`, `/lasthop failover ...`) and
to short commands for the two things done most from a phone (`/failover`, `/vip-status`). The names
come from the inventory (slack.commands), checked by `check_command_name`.

Parsing only splits and checks words. Names become inventory values in Inventory.resolve, so no text
typed here ever reaches a device. A maintenance reason is the one piece of free text: it is stored and
shown, never sent to a device, and whoever shows it escapes it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from bot.durations import NEEDS_UNIT, parse_typed_duration
from bot.echo import quoted

# Slack answers these itself and never sends them to an app; a manifest listing one is refused with
# "the slash command has an invalid name". The list Slack's help article "Use built-in slash commands"
# gives, as collected by an app that met the refusal (NousResearch/hermes-agent#18456), and /help.
RESERVED_COMMANDS: frozenset[str] = frozenset({
    "/away", "/collapse", "/dnd", "/expand", "/feed", "/help", "/join", "/leave", "/me", "/msg", "/mute",
    "/open", "/pro", "/remind", "/search", "/shortcuts", "/shrug", "/status", "/topic", "/who",
})

HelpTopic = Literal["status", "failover", "maintenance"]

_COMMAND_NAME = re.compile(r"/[a-z0-9_-]+")
_COMMAND_NAME_LIMIT = 32
_WORD = re.compile(r"(?:--)?[A-Za-z0-9][A-Za-z0-9._/:-]{0,63}")
_BARE_NUMBER = re.compile(r"\d+(?:\.\d+)?")
DRY_RUN_WORDS = ("dry-run", "dryrun", "--dry-run")
# Phones turn " into “ and ”; any of them may open or close the reason.
_QUOTES = frozenset('"“”')
# Direction overrides make text display as something other than what it holds ("Trojan Source").
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
REASON_LIMIT = 200
MAINTENANCE_MIN = 60.0
MAINTENANCE_MAX = 7 * 24 * 3600.0


class UsageError(ValueError):
    """Bad syntax. `str()` is a short sentence; `topic` is the help to show after it (None: the overview)."""

    def __init__(self, message: str, topic: HelpTopic | None = None) -> None:
        super().__init__(message)
        self.topic = topic


@dataclass(frozen=True)
class CommandNames:
    """The slash commands lasthop answers to, as the Slack app installs them (inventory: slack.commands)."""

    umbrella: str = "/lasthop"
    failover: str = "/failover"
    status: str = "/vip-status"

    def all(self) -> tuple[str, ...]:
        return (self.umbrella, self.failover, self.status)

    def short(self, topic: str) -> str | None:
        """The short command that does `topic` on its own, if there is one."""
        return {"failover": self.failover, "status": self.status}.get(topic)


@dataclass(frozen=True)
class Topic:
    """One thing lasthop does from chat: a word after the umbrella command (and maybe a short command)."""

    word: HelpTopic
    forms: tuple[str, ...]  # what may follow the word; one usage line each
    description: str  # one sentence, in the help and as the short command's manifest description
    examples: tuple[str, ...]  # what follows the command; every one must parse
    note: str = ""  # help only


TOPICS: tuple[Topic, ...] = (
    Topic(
        "status", ("[SERVICE|HOST]",),
        "Who serves what, read live from the routers; with a name, its checks and last changes.",
        ("", "www-a", "web1"),
    ),
    Topic(
        "failover", ("SERVICE|PREFIX|HOST [to HOST] [dry-run]",),
        "Move a service, or everything a host serves, to another host; risky moves need an approver.",
        ("www-a to web2", "www-a", "198.51.100.32/27 dry-run", "web1"),
        note="The plan is shown before anything moves. With no words: a form with pickers.",
    ),
    Topic(
        "maintenance", ('HOST on [DURATION] ["REASON"]', "HOST off"),
        "Drain a host and silence its alerts, for a while or until it is turned off.",
        ('web3 on 2h "kernel update"', "web3 on 1h30m", "web3 on", "web3 off"),
        note="DURATION carries its unit (30m, 2h, 1h30m), at most 7 days; the reason goes in double quotes.",
    ),
)
_TOPICS: dict[str, Topic] = {t.word: t for t in TOPICS}
UMBRELLA_DESCRIPTION = "Status, failover and maintenance of the web VIPs on the last-hop router."
UMBRELLA_USAGE = "|".join((*_TOPICS, "help")) + " …"


@dataclass(frozen=True)
class SlashCommand:
    """One of the Slack app's slash commands, as the manifest lists it."""

    command: str
    description: str
    usage_hint: str


def slash_commands(names: CommandNames) -> tuple[SlashCommand, ...]:
    """The umbrella command, then each short command: what the Slack app must install."""
    found = [SlashCommand(names.umbrella, UMBRELLA_DESCRIPTION, UMBRELLA_USAGE)]
    for t in TOPICS:
        short = names.short(t.word)
        if short is not None:
            found.append(SlashCommand(short, t.description, " | ".join(t.forms)))
    return tuple(found)


def check_command_name(name: str) -> str | None:
    """None if Slack will install `name` as a slash command, else the reason it will not."""
    if not name.startswith("/"):
        return "a command name starts with '/'"
    if len(name) > _COMMAND_NAME_LIMIT:
        return f"a command name is at most {_COMMAND_NAME_LIMIT} characters, the '/' included"
    if not _COMMAND_NAME.fullmatch(name):
        return "use lowercase letters, digits, '-' or '_' after the '/'"
    if name in RESERVED_COMMANDS:
        return f"{name} is one of Slack's own commands, and Slack refuses an app that lists it"
    return None


# -- parsed commands -------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusCommand:
    target: str | None = None


@dataclass(frozen=True)
class FailoverCommand:
    target: str | None = None  # None: open the form
    to_host: str | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class MaintenanceCommand:
    host: str
    on: bool
    duration: float | None = None  # seconds; None: until turned off
    reason: str = ""  # free text: escape it where it is shown


@dataclass(frozen=True)
class HelpCommand:
    topic: HelpTopic | None = None


Command = StatusCommand | FailoverCommand | MaintenanceCommand | HelpCommand


def parse(names: CommandNames, command: str, text: str) -> Command:
    """What `command` (the slash command as Slack sends it) with `text` asks for; UsageError if unclear."""
    topic: HelpTopic
    if command == names.umbrella:
        head, rest = _first_word(text)
        if head is None:
            return HelpCommand()
        word = head.lower()
        if word == "help":
            return _parse_help(rest)
        if word not in _TOPICS:
            choices = _one_of([*_TOPICS, "help"])
            raise UsageError(f"{quoted(head, 'that word')} is not a lasthop command: try {choices}")
        topic = _TOPICS[word].word
    elif command == names.failover:
        topic, rest = "failover", text
    elif command == names.status:
        topic, rest = "status", text
    else:
        raise UsageError(f"{quoted(command, 'that')} is not a lasthop command")
    first, after = _first_word(rest)
    if first is not None and first.lower() == "help":
        if after.strip():
            raise UsageError("help takes no more words", topic)
        return HelpCommand(topic)
    try:
        return _PARSERS[topic](rest)
    except UsageError as e:
        e.topic = topic
        raise


def _parse_help(text: str) -> HelpCommand:
    words = _words(text)
    if not words:
        return HelpCommand()
    if len(words) > 1:
        raise UsageError("help takes one topic at most")
    if words[0].lower() == "help":
        return HelpCommand()
    found = _TOPICS.get(words[0].lower())
    if found is None:
        raise UsageError(f"there is no help on {quoted(words[0], 'that')}: try {_one_of(list(_TOPICS))}")
    return HelpCommand(found.word)


def _parse_status(text: str) -> StatusCommand:
    words = _words(text)
    if len(words) > 1:
        raise UsageError("status takes at most one name")
    return StatusCommand(words[0] if words else None)


def _parse_failover(text: str) -> FailoverCommand:
    words = _words(text)
    if not words:
        return FailoverCommand()
    target, rest = words[0], words[1:]
    if target.lower() == "to" or target.lower() in DRY_RUN_WORDS:
        raise UsageError("failover needs a service, prefix or host first")
    to_host, dry_run = None, False
    while rest:
        word = rest.pop(0)
        keyword = word.lower()
        if keyword in DRY_RUN_WORDS and not dry_run:
            dry_run = True
        elif keyword == "to" and to_host is None:
            if not rest:
                raise UsageError("'to' needs a host name after it")
            to_host = rest.pop(0)
        else:
            raise UsageError(f"unexpected {quoted(word, 'word')}")
    return FailoverCommand(target, to_host, dry_run)


def _parse_maintenance(text: str) -> MaintenanceCommand:
    # The reason must be quoted: unquoted, "web3 on 2h off" or a reason holding a name could not be told
    # apart from the keywords, and its words would have to pass as names.
    before, reason = _split_reason(text)
    words = _words(before)
    if len(words) < 2 or words[1].lower() not in ("on", "off") or words[0].lower() in ("on", "off"):
        raise UsageError("maintenance needs a host, then on or off")
    host, on, rest = words[0], words[1].lower() == "on", words[2:]
    if not on:
        if rest or reason is not None:
            raise UsageError("off takes no duration or reason")
        return MaintenanceCommand(host, on=False)
    duration: float | None = None
    for word in rest:
        if not word[0].isdigit():
            raise UsageError('a reason goes in double quotes, e.g. "kernel update"')
        if duration is not None:
            raise UsageError("give one duration")
        duration = maintenance_duration(word)
    return MaintenanceCommand(host, True, duration, reason or "")


_PARSERS: dict[HelpTopic, Callable[[str], Command]] = {
    "status": _parse_status, "failover": _parse_failover, "maintenance": _parse_maintenance,
}


def maintenance_duration(word: str) -> float:
    """A maintenance window as typed (chat or the CLI's --for): its unit is required; 1m to 7 days."""
    if _BARE_NUMBER.fullmatch(word):
        raise UsageError(f"a duration {NEEDS_UNIT}")
    try:
        seconds = parse_typed_duration(word)
    except ValueError:
        raise UsageError(f"{quoted(word, 'that')} is not a duration: write e.g. 30m, 2h or 1h30m") from None
    if not MAINTENANCE_MIN <= seconds <= MAINTENANCE_MAX:
        raise UsageError("a maintenance window lasts from 1m to 7 days (168h)")
    return seconds


def _split_reason(text: str) -> tuple[str, str | None]:
    """(the words before the quoted reason, the reason or None); the reason must come last."""
    start = next((i for i, c in enumerate(text) if c in _QUOTES), None)
    if start is None:
        return text, None
    quoted = text[start + 1 :].rstrip()
    if not quoted or quoted[-1] not in _QUOTES:
        raise UsageError("the reason goes last, between double quotes")
    reason = quoted[:-1].strip()
    if any(c in _QUOTES for c in reason):
        raise UsageError("a reason cannot hold double quotes")
    if not reason:
        raise UsageError("the reason is empty: leave out the quotes")
    if len(reason) > REASON_LIMIT:
        raise UsageError(f"the reason is longer than {REASON_LIMIT} characters")
    if any(c in _BIDI_CONTROLS or unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in reason):
        raise UsageError("the reason must be one line of plain text")
    return text[:start], reason


def _first_word(text: str) -> tuple[str | None, str]:
    parts = text.split(maxsplit=1)
    return (parts[0] if parts else None), (parts[1] if len(parts) > 1 else "")


def _words(text: str) -> list[str]:
    words = text.split()
    for w in words:
        if not _WORD.fullmatch(w):
            raise UsageError(f"{quoted(w, 'a word')} is not a name, prefix or keyword")
    return words


def _one_of(words: Sequence[str]) -> str:
    return ", ".join(words[:-1]) + f" or {words[-1]}"


# -- help --------------------------------------------------------------------------------------


def help_text(names: CommandNames, topic: str | None = None) -> str:
    """Slack mrkdwn help: the overview, or one topic's usage, sentence and examples."""
    if topic is None:
        return _overview(names)
    found = _TOPICS.get(topic)
    if found is None:
        raise ValueError(f"no help topic {topic!r}")
    short = names.short(found.word)
    lines = [f"`{names.umbrella} {found.word} {form}`" for form in found.forms]
    if short is not None:
        lines += [f"or `{short} {form}`" for form in found.forms]
    lines.append(found.description)
    if found.note:
        lines.append(found.note)
    lines.append("Examples:")
    lines += [f"• `{_example(names, found, e)}`" for e in found.examples]
    return "\n".join(lines)


def _overview(names: CommandNames) -> str:
    lines = [f"`{names.umbrella} {UMBRELLA_USAGE}`", UMBRELLA_DESCRIPTION]
    for t in TOPICS:
        usage = " or ".join(f"`{names.umbrella} {t.word} {form}`" for form in t.forms)
        short = names.short(t.word)
        also = f" (or `{short} …`)" if short is not None else ""
        lines.append(f"{usage}{also}: {t.description}")
    lines.append(f"`{names.umbrella} help {'|'.join(_TOPICS)}`: the details and examples of one of them.")
    lines.append("Examples:")
    lines += [f"• `{_example(names, t, t.examples[0])}`" for t in TOPICS]
    return "\n".join(lines)


def _example(names: CommandNames, topic: Topic, words: str) -> str:
    # The short command where there is one: fewer letters to type on a phone.
    command = names.short(topic.word) or f"{names.umbrella} {topic.word}"
    return f"{command} {words}".rstrip()
