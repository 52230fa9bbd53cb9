"""What every chat back end shares: who acts, what a message holds, and how messages go out.

lasthop composes messages once, as data, in a small common markup (Slack's mrkdwn subset:
`*bold*`, `` `code` ``, `<@USER>` mentions, `<!date^EPOCH^{time}|fallback>` times). Each back
end renders that: Slack as Block Kit, the console as plain numbered text. Errbot's backends and
Nautobot's dispatchers are split the same way, so a third back end is one renderer more.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

Style = Literal["primary", "danger"]


@dataclass(frozen=True)
class Actor:
    """A person (or lasthop itself) acting through one back end."""

    id: str  # Slack user ID, console user name, local login
    backend: str  # "slack" | "console" | "cli" | "auto"
    channel: str = ""  # where they typed or clicked

    @property
    def ref(self) -> str:
        """How the audit trail and the change records name them: "slack:U0ALICE"."""
        return f"{self.backend}:{self.id}"

    @classmethod
    def from_ref(cls, ref: str) -> Actor:
        backend, _, ident = ref.partition(":")
        return cls(ident, backend) if ident else cls(ref, "auto")


def who(ref: str) -> str:
    """An actor reference as the common markup shows it: a mention for chat users."""
    backend, _, ident = ref.partition(":")
    if backend in ("slack", "console") and ident:
        return f"<@{ident}>"
    if backend == "cli" and ident:
        return f"{ident} (CLI)"
    if ref in ("lasthop", "auto", "auto:lasthop"):
        return "lasthop (automatic)"
    return ref


def when(at: datetime, fmt: str = "{time}") -> str:
    """A time that each reader sees in their own zone (Slack's date token); the fallback is UTC."""
    fallback = at.astimezone(UTC).strftime("%H:%M:%S UTC" if fmt == "{time_secs}" else "%H:%M UTC")
    return f"<!date^{int(at.timestamp())}^{fmt}|{fallback}>"


def escape(text: str) -> str:
    """Text from a person or a device, made inert in the common markup (no mentions, no links)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True)
class Confirm:
    """A dialog a button asks before it acts."""

    title: str
    text: str
    yes: str
    no: str = "Cancel"


@dataclass(frozen=True)
class Button:
    label: str
    action: str  # the workflow action it triggers
    value: str  # the action's argument, as `encode()` made it; parsed back and checked, never trusted
    style: Style | None = None
    confirm: Confirm | None = None


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Note:
    """Small print under the main text."""

    text: str


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Buttons:
    buttons: tuple[Button, ...]


Part = Text | Note | Code | Buttons


@dataclass(frozen=True)
class Message:
    """One message: `fallback` is the plain text a notification shows; `parts` are what the screen shows."""

    fallback: str
    parts: tuple[Part, ...] = ()

    @classmethod
    def of(cls, text: str) -> Message:
        return cls(text, (Text(text),))

    @property
    def buttons(self) -> tuple[Button, ...]:
        return tuple(b for p in self.parts if isinstance(p, Buttons) for b in p.buttons)


@dataclass(frozen=True)
class MessageRef:
    """Where a posted message is, so it can be updated or replied to in its thread."""

    channel: str
    ts: str


@dataclass(frozen=True)
class Answer:
    """What the workflow tells the person who acted.

    `replace`: it takes the place of the message they clicked (its buttons are then gone).
    `offer`: what the answer asks them next, for front ends that ask in their own way (the CLI).
    """

    message: Message
    ok: bool = True
    replace: bool = False
    offer: Offer | None = None


@dataclass(frozen=True)
class Offer:
    kind: Literal["confirm", "approval"]
    approval_id: str


class ChatOut(Protocol):
    """Messages to channels and threads: Slack's rate-limited poster, the console, the log."""

    def post(self, channel: str, message: Message, *,
             thread: MessageRef | Future[MessageRef] | None = None) -> Future[MessageRef]: ...

    def update(self, ref: MessageRef, message: Message) -> Future[MessageRef]: ...


Progress = Callable[[Message], None]


def encode(**fields: Any) -> str:
    """A button's value: compact JSON, checked again by whoever reads it back."""
    return json.dumps(fields, separators=(",", ":"), sort_keys=True)


def decode(value: str) -> Mapping[str, Any]:
    """A button value back; anything that is not a JSON object is refused by the caller as unknown."""
    try:
        data = json.loads(value)
    except (ValueError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass
class Recorder:
    """A ChatOut that only keeps what was sent, in order: for unit tests of what lasthop says."""

    sent: list[tuple[str, MessageRef, Message]] = field(default_factory=list)  # ("post"|"update", ref, message)
    on_send: Callable[[str, MessageRef, Message, MessageRef | None], None] | None = None
    _n: int = 0

    def post(self, channel: str, message: Message, *,
             thread: MessageRef | Future[MessageRef] | None = None) -> Future[MessageRef]:
        parent = thread.result(timeout=10) if isinstance(thread, Future) else thread
        self._n += 1  # callers post from one thread at a time in the tests that use it
        ref = MessageRef(channel, str(self._n))
        self.sent.append(("post", ref, message))
        if self.on_send is not None:
            self.on_send("post", ref, message, parent)
        done: Future[MessageRef] = Future()
        done.set_result(ref)
        return done

    def update(self, ref: MessageRef, message: Message) -> Future[MessageRef]:
        self.sent.append(("update", ref, message))
        if self.on_send is not None:
            self.on_send("update", ref, message, None)
        done: Future[MessageRef] = Future()
        done.set_result(ref)
        return done
