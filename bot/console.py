"""`lasthop console`: the chat workflow in a terminal, with no Slack.

It runs what `lasthop serve` runs (checks, incidents, automatic moves) and takes what a
chat user would type: `/lasthop status`, `/failover www-a to web3`, `/vip-status web1`.
Alerts appear as they happen, in the same words as in Slack; buttons get numbers and are
pressed by number (`3`, or `approve 3`). `as bob approve 3` acts as another person, so the
two-person rule can be shown on one keyboard.

A script (`--script FILE`, or lines on stdin) drives it end to end; `wait "TEXT" 30s`
waits until that text has been shown, and `sleep 2s` pauses, so a test can follow a story.
"""

from __future__ import annotations

import re
import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Protocol, TextIO

from bot import plain
from bot.chat import Actor, Answer, Button, Message, MessageRef
from bot.commands import (
    CommandNames,
    FailoverCommand,
    HelpCommand,
    MaintenanceCommand,
    StatusCommand,
    UsageError,
    help_text,
    parse,
)
from bot.durations import parse_duration
from bot.echo import terminal
from bot.workflow import Workflow

CHANNEL = "alerts"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,31}")
HELP = """console commands:
  /lasthop status|failover|maintenance|help …, /failover …, /vip-status …   as in chat
  N, press N, or WORD N (approve 3)   press button N
  press LABEL                         press the newest button whose label starts with LABEL
  as USER COMMAND                     act as USER once (as bob approve 3)
  user USER                           act as USER from now on
  /lasthop lab break|heal HOST [--link], /lasthop lab client SERVICE
                                      (with a lab) break or heal a web host; what the lab's client gets
  auto, auto on|off [SERVICE]         automatic failover now; switch it for every service or one
                                      (also /lasthop auto …; console only, audited)
  wait "TEXT" [TIMEOUT]               (scripts) until TEXT has been shown, 30s by default
  wait button "LABEL" [TIMEOUT]       (scripts) until a button so labelled can be pressed
  sleep DURATION                      (scripts) pause, e.g. sleep 2s
  help, quit"""


class LabHooks(Protocol):
    """The lab the console's inventory belongs to, when it has one (`lasthop lab up`)."""

    def break_host(self, name: str, link: bool = False) -> list[str]: ...

    def heal(self, name: str) -> list[str]: ...

    def client_get(self, vip: IPv4Address | str, timeout: float = 2.0) -> str: ...


class AutoSwitch(Protocol):
    """The running daemon's automatic failover, switched at run time (`bot.serve.Daemon`)."""

    def auto_on(self) -> list[str]: ...

    def set_auto(self, on: bool, service: str | None, *, by: str, source: str) -> list[str]: ...


def auto_text(on: list[str]) -> str:
    """The switch's state in one line, with what to type to flip it."""
    if not on:
        return "automatic failover: off (buttons only; `auto on`: lasthop moves services off a failed host itself)"
    return f"automatic failover: on for {', '.join(on)} (`auto off` and every move waits for a button)"


class ConsoleError(Exception):
    """A script step that failed (a wait that timed out): the console stops with this line."""


@dataclass(frozen=True)
class _Pressable:
    button: Button
    ref: MessageRef


class ConsoleOut:
    """The console's ChatOut: every message printed as it is sent, its buttons numbered."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.RLock()
        self._shown = threading.Condition(self._lock)
        self._n = 0
        self._buttons: dict[int, _Pressable] = {}
        self._numbers: dict[tuple[str, str, str, str], int] = {}  # (ts, action, value, label) -> number
        self._next_button = 1
        self._last: dict[MessageRef, str] = {}  # what each posted message shows now
        self.lines: list[str] = []  # everything shown, for `wait`

    # -- ChatOut
    def post(self, channel: str, message: Message, *,
             thread: MessageRef | Future[MessageRef] | None = None) -> Future[MessageRef]:
        parent = thread.result(timeout=30) if isinstance(thread, Future) and not thread.exception(30) else thread
        parent = parent if isinstance(parent, MessageRef) else None
        with self._lock:
            self._n += 1
            ref = MessageRef(channel, str(self._n))
            head = f"#{channel} [{parent.ts}] ↳" if parent is not None else f"#{channel} [{ref.ts}]"
            text = self._render(message, ref)
            self._last[ref] = text
            self._show(head, text)
        done: Future[MessageRef] = Future()
        done.set_result(ref)
        return done

    def update(self, ref: MessageRef, message: Message) -> Future[MessageRef]:
        with self._lock:
            for n in [n for n, p in self._buttons.items() if p.ref == ref]:
                del self._buttons[n]  # an updated message shows only its new buttons, as in Slack
            text = self._render(message, ref)
            before = self._last.get(ref, "")
            self._last[ref] = text
            if text != before:
                # A terminal scrolls: only what changed, under the first line, which says the state.
                old = set(before.splitlines())
                lines = text.splitlines()
                changed = [line for line in lines[1:] if line not in old]
                self._show(f"#{ref.channel} [{ref.ts}] now:", "\n".join(lines[:1] + changed))
        done: Future[MessageRef] = Future()
        done.set_result(ref)
        return done

    # -- what the console user sees
    def answer(self, user: str, message: Message, ref: MessageRef | None = None) -> None:
        """A private answer (Slack's ephemeral message); its buttons are pressable too."""
        with self._lock:
            self._n += 1
            self._show(f"(to {user})", self._render(message, ref or MessageRef("@" + user, str(self._n))))

    def say(self, text: str) -> None:
        with self._lock:
            self._show("", text)

    def pressable(self, n: int) -> _Pressable | None:
        with self._lock:
            return self._buttons.get(n)

    def by_label(self, label: str) -> int | None:
        with self._lock:
            matches = [n for n, p in self._buttons.items() if p.button.label.lower().startswith(label.lower())]
            return max(matches) if matches else None

    def wait_for(self, pattern: str, timeout: float, start: int) -> int:
        """The index after the first shown line from `start` on that contains `pattern`."""
        deadline = time.monotonic() + timeout
        with self._shown:
            while True:
                for i in range(start, len(self.lines)):
                    if pattern in self.lines[i]:
                        return i + 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ConsoleError(f"waited {timeout:g}s and did not see {terminal(pattern, 80)}")
                self._shown.wait(min(left, 0.5))

    def wait_button(self, label: str, timeout: float) -> None:
        """Until a button whose label starts with `label` can be pressed."""
        deadline = time.monotonic() + timeout
        while self.by_label(label) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConsoleError(f"waited {timeout:g}s and saw no button {terminal(label, 80)}")
            with self._shown:
                self._shown.wait(min(left, 0.1))

    def _render(self, message: Message, ref: MessageRef) -> str:
        def number(b: Button) -> int:
            key = (ref.ts, b.action, b.value, b.label)
            if key not in self._numbers:
                self._numbers[key] = self._next_button
                self._next_button += 1
            n = self._numbers[key]
            self._buttons[n] = _Pressable(b, ref)
            return n
        return plain.render(message, number)

    def _show(self, head: str, text: str) -> None:
        lines = text.splitlines() or [""]
        out = [f"{head} {lines[0]}".strip(), *(f"    {line}" for line in lines[1:])]
        for line in out:
            print(line, file=self.stream, flush=True)
        self.lines.extend(out)
        self._shown.notify_all()


class Console:
    def __init__(self, workflow: Workflow, out: ConsoleOut, *, user: str = "operator",
                 sleep: Callable[[float], None] = time.sleep, lab: LabHooks | None = None,
                 auto: AutoSwitch | None = None) -> None:
        self.workflow = workflow
        self.lab = lab
        self.auto = auto
        self.out = out
        self.user = user
        self.sleep = sleep
        self._cursor = 0  # where the next `wait` starts looking

    @property
    def names(self) -> CommandNames:
        return self.workflow.inv.slack.commands

    def run(self, lines: Iterable[str]) -> int:
        for raw in lines:
            try:
                if not self.line(raw):
                    break
            except ConsoleError as e:
                self.out.say(f"console: {e}")
                return 1
        return 0

    def line(self, raw: str) -> bool:
        """Do one line; False to stop."""
        text = raw.strip()
        if not text or text.startswith("#"):
            return True
        user = self.user
        words = text.split(maxsplit=2)
        if words[0] == "as":
            if len(words) < 3 or not _NAME.fullmatch(words[1]):
                self.out.say("console: as USER COMMAND, e.g. as bob approve 3")
                return True
            user, text = words[1], words[2]
        head, _, rest = text.partition(" ")
        if head in ("quit", "exit"):
            return False
        if head == "help":
            self.out.say(HELP)
        elif head == "user":
            if _NAME.fullmatch(rest.strip()):
                self.user = rest.strip()
                self.out.say(f"console: you are {self.user}")
            else:
                self.out.say("console: user NAME (letters, digits, . _ -)")
        elif head == "wait":
            self._wait(rest)
        elif head == "sleep":
            self.sleep(self._duration(rest, "sleep 2s"))
        elif (head == self.names.umbrella and rest.split()[:1] == ["lab"]) or head == "lab":
            self._lab(rest.split()[1:] if head != "lab" else rest.split())
        elif (head == self.names.umbrella and rest.split()[:1] == ["auto"]) or head == "auto":
            self._auto(user, rest.split()[1:] if head != "auto" else rest.split())
        elif head.startswith("/"):
            self._command(user, head, rest)
        else:
            self._press(user, text)
        return True

    def _lab(self, words: list[str]) -> None:
        usage = "console: /lasthop lab break HOST [--link] | heal HOST | client SERVICE"
        if self.lab is None:
            self.out.say("console: this inventory is not a lab's (lasthop lab up writes one)")
            return
        inv = self.workflow.inv
        if len(words) >= 2 and words[0] in ("break", "heal") and words[1] in inv.hosts and (
                words[2:] in ([], ["--link"]) and (words[0] == "break" or not words[2:])):
            done = (self.lab.break_host(words[1], link=words[2:] == ["--link"]) if words[0] == "break"
                    else self.lab.heal(words[1]))
            self.out.say("lab: " + ("; ".join(done) or f"{words[1]}: nothing to do"))
        elif len(words) == 2 and words[0] == "client" and words[1] in inv.services:
            vip = inv.services[words[1]].vips[0]
            try:
                got = self.lab.client_get(vip)
                self.out.say(f"lab: the client asked {vip} ({words[1]}) and got {got}")
            except Exception as e:  # the lab's own error: say it, keep the console
                self.out.say(f"lab: the client asked {vip} ({words[1]}) and got no answer: {e}")
        else:
            self.out.say(usage)

    def _auto(self, user: str, words: list[str]) -> None:
        if self.auto is None:
            self.out.say("console: automatic failover cannot be switched here")
            return
        services = self.workflow.inv.services
        if not words:
            self.out.say(auto_text(self.auto.auto_on()))
            return
        if words[0] not in ("on", "off") or len(words) > 2:
            self.out.say(f"console: auto on|off [SERVICE], e.g. auto on; {terminal(' '.join(words))} is not that. "
                         "Nothing changed.")
            return
        if len(words) == 2 and words[1] not in services:
            self.out.say(f"console: unknown service {terminal(words[1])} (known: {', '.join(services)}). "
                         "Nothing changed.")
            return
        on = self.auto.set_auto(words[0] == "on", words[1] if len(words) == 2 else None,
                                by=self._actor(user).ref, source="console")
        self.out.say(f"{user} switched automatic failover {words[0]}"
                     f"{' for ' + words[1] if len(words) == 2 else ''}. {auto_text(on)}")

    def _actor(self, user: str) -> Actor:
        return Actor(user, "console", CHANNEL)

    def _command(self, user: str, command: str, rest: str) -> None:
        try:
            cmd = parse(self.names, command, rest)
        except UsageError as e:
            self.out.say(f"{e}\n{plain.text(help_text(self.names, e.topic))}")
            return
        actor = self._actor(user)
        progress = self._progress(user)
        answer: Answer
        if isinstance(cmd, HelpCommand):
            self.out.say(plain.text(help_text(self.names, cmd.topic)))
            return
        if isinstance(cmd, StatusCommand):
            answer = self.workflow.status(actor, cmd.target)
        elif isinstance(cmd, FailoverCommand):
            if cmd.target is None:
                self.out.say(plain.text(help_text(self.names, "failover")))
                return
            answer = self.workflow.request(actor, cmd, progress=progress)
        elif isinstance(cmd, MaintenanceCommand):
            answer = self.workflow.maintenance(actor, cmd, progress=progress)
        else:  # pragma: no cover - parse() returns only these
            return
        self.out.answer(user, answer.message)

    def _press(self, user: str, text: str) -> None:
        words = text.split()
        if len(words) == 1 and words[0].isdigit():
            verb, number = "", int(words[0])
        elif len(words) == 2 and words[1].isdigit():
            verb, number = words[0].lower(), int(words[1])
        elif len(words) > 1 and words[0] == "press":
            # By label, for scripts that cannot know the numbers: the newest button that starts so.
            label = text.split(maxsplit=1)[1].strip().strip('"')
            found_n = self.out.by_label(label)
            if found_n is None:
                self.out.say(f"console: no button labelled {terminal(label)} now")
                return
            verb, number = "", found_n
        else:
            self.out.say("console: type a chat command (/lasthop help), a button's number, or help")
            return
        found = self.out.pressable(number)
        if found is None:
            self.out.say(f"console: there is no button {number} now")
            return
        label = found.button.label.lower()
        if verb not in ("", "press") and not label.startswith(verb):
            self.out.say(f"console: button {number} is {found.button.label!r}, not {terminal(verb)}")
            return
        self.out.say(f"{user} pressed [{number}] {found.button.label}")
        answer = self.workflow.press(self._actor(user), found.button.action, found.button.value, clicked=found.ref,
                                     progress=self._progress(user))
        if answer is not None:
            self.out.answer(user, answer.message)

    def _progress(self, user: str) -> Callable[[Message], None]:
        return lambda message: self.out.answer(user, message)

    def _wait(self, rest: str) -> None:
        try:
            words = shlex.split(rest)
        except ValueError:
            words = []
        if words and words[0] == "button" and len(words) in (2, 3):
            # A button is the parent message's, updated in place: it may come before or after any
            # thread line, so it is waited for by itself, not after the cursor.
            timeout = self._duration(words[2], 'wait button "LABEL" 30s') if len(words) == 3 else 30.0
            self.out.wait_button(words[1], timeout)
            return
        if not words or len(words) > 2:
            raise ConsoleError('wait "TEXT" [TIMEOUT], e.g. wait "is down" 30s')
        timeout = self._duration(words[1], "wait \"TEXT\" 30s") if len(words) == 2 else 30.0
        self._cursor = self.out.wait_for(words[0], timeout, self._cursor)

    @staticmethod
    def _duration(text: str, example: str) -> float:
        try:
            seconds = parse_duration(text.strip())
        except ValueError as e:
            raise ConsoleError(f"{e} (e.g. {example})") from None
        if not 0 <= seconds <= 3600:
            raise ConsoleError("at most an hour")
        return seconds
