"""Alerts to the team's channel, with follow-ups in the alert's thread."""

from __future__ import annotations

import logging
import threading

from handlers.poster import Poster

log = logging.getLogger("lasthop.slack")


class SlackNotifier:
    def __init__(self, poster: Poster, channel: str) -> None:
        self.poster = poster
        self.channel = channel
        self._threads: dict[str, str] = {}
        self._lock = threading.Lock()

    def alert(self, key: str, text: str) -> None:
        future = self.poster.post(self.channel, f":rotating_light: {text}")

        def remember(f: object) -> None:
            try:
                ts = str(future.result().get("ts", ""))
            except Exception:  # the poster logged why; follow-ups then go to the channel
                return
            with self._lock:
                self._threads.setdefault(key, ts)

        future.add_done_callback(remember)

    def update(self, key: str, text: str) -> None:
        with self._lock:
            ts = self._threads.get(key)
        self.poster.post(self.channel, text, thread_ts=ts)

    def info(self, text: str) -> None:
        self.poster.post(self.channel, text)
