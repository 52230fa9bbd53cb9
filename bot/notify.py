"""lasthop's messages without a chat: each one as plain text on a stream (stdout) and in the log.

The same ChatOut the Slack poster and the console are, so `lasthop serve` without Slack
settings tells exactly what it would post: the incident's parent, then its thread.
"""

from __future__ import annotations

import logging
import sys
import threading
from concurrent.futures import Future
from typing import TextIO

from bot import plain
from bot.chat import Message, MessageRef

log = logging.getLogger("lasthop.notify")


class LogOut:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()
        self._n = 0
        # (kind, ref, plain text, thread parent): what was said, in order, for status and tests.
        self.sent: list[tuple[str, MessageRef, str, MessageRef | None]] = []

    def post(self, channel: str, message: Message, *,
             thread: MessageRef | Future[MessageRef] | None = None) -> Future[MessageRef]:
        parent = _settled(thread)
        with self._lock:
            self._n += 1
            ref = MessageRef(channel, str(self._n))
            text = plain.render(message)
            self.sent.append(("post", ref, text, parent))
            tag = f"[#{parent.ts}]" if parent is not None else f"#{ref.ts}"
            self._print(tag, text)
        return _done(ref)

    def update(self, ref: MessageRef, message: Message) -> Future[MessageRef]:
        with self._lock:
            text = plain.render(message)
            self.sent.append(("update", ref, text, None))
            # A parent is updated after every event; its first line (the state) is what changed.
            self._print(f"#{ref.ts} now", text.splitlines()[0] if text else "")
        return _done(ref)

    def _print(self, tag: str, text: str) -> None:
        lines = text.splitlines() or [""]
        print(f"{tag} {lines[0]}", file=self.stream, flush=True)
        for line in lines[1:]:
            print(f"{' ' * len(tag)} {line}", file=self.stream, flush=True)
        # DEBUG: the line above already reached the terminal; the log keeps it for a file handler.
        log.debug("%s %s", tag, text)

    def texts(self, kind: str = "post") -> list[str]:
        with self._lock:
            return [text for k, _, text, _ in self.sent if k == kind]


def _settled(thread: MessageRef | Future[MessageRef] | None) -> MessageRef | None:
    if isinstance(thread, Future):
        try:
            return thread.result(timeout=10)
        except Exception:
            return None
    return thread


def _done(ref: MessageRef) -> Future[MessageRef]:
    f: Future[MessageRef] = Future()
    f.set_result(ref)
    return f
