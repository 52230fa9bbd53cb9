"""Where lasthop says things: one small interface, a log/console notifier here, Slack later.

Notifiers get short, finished sentences; they decide only how to deliver them.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Protocol, TextIO

log = logging.getLogger("lasthop.notify")


class Notifier(Protocol):
    def alert(self, key: str, text: str) -> None:
        """Something is wrong (an incident opened, a move failed): must reach a human."""

    def update(self, key: str, text: str) -> None:
        """More about the same thing (same incident key): belongs in the same thread."""

    def info(self, text: str) -> None:
        """Worth knowing, not worth waking anyone (a move done, maintenance over)."""


class LogNotifier:
    """Writes one line per notice to a stream (stdout by default) and to the log."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()
        self.sent: list[tuple[str, str, str]] = []  # (level, key, text), for status and tests

    def _emit(self, level: str, key: str, text: str) -> None:
        with self._lock:
            self.sent.append((level, key, text))
            tag = f" [{key}]" if key else ""
            print(f"{level.upper():5}{tag} {text}", file=self.stream, flush=True)
        # DEBUG: the line above already reached the terminal; the log keeps it for a file handler.
        log.debug("%s%s %s", level, f" [{key}]" if key else "", text)

    def alert(self, key: str, text: str) -> None:
        self._emit("alert", key, text)

    def update(self, key: str, text: str) -> None:
        self._emit("update", key, text)

    def info(self, text: str) -> None:
        self._emit("info", "", text)
