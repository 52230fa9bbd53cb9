"""Posting to Slack within its rate limits without ever dropping an alert.

chat.postMessage allows about one message per second per channel: each channel
has its own queue and worker, one post per second, and an HTTP 429 is waited out
for exactly its Retry-After before the same message is sent again. Updates to the
same message are coalesced: only the newest text is sent.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger("lasthop.slack")
PER_CHANNEL_INTERVAL = 1.0
MAX_BACKOFF = 60.0


@dataclass
class _Job:
    method: str  # chat_postMessage | chat_update
    kwargs: dict[str, Any]
    future: Future[dict[str, Any]] = field(default_factory=Future)


class Poster:
    def __init__(self, client: WebClient, *, interval: float = PER_CHANNEL_INTERVAL,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.interval = interval
        self._sleep = sleep
        self._queues: dict[str, queue.Queue[_Job | None]] = {}
        self._pending_updates: dict[tuple[str, str], _Job] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    def post(self, channel: str, text: str, blocks: list[dict[str, Any]] | None = None,
             thread_ts: str | None = None) -> Future[dict[str, Any]]:
        kwargs: dict[str, Any] = {"channel": channel, "text": text}
        if blocks is not None:
            kwargs["blocks"] = blocks
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        return self._enqueue(channel, _Job("chat_postMessage", kwargs))

    def update(self, channel: str, ts: str, text: str,
               blocks: list[dict[str, Any]] | None = None) -> Future[dict[str, Any]]:
        kwargs: dict[str, Any] = {"channel": channel, "ts": ts, "text": text, "blocks": blocks or []}
        with self._lock:
            queued = self._pending_updates.get((channel, ts))
            if queued is not None and not queued.future.done():
                queued.kwargs = kwargs  # coalesce: the queued update will send the newest content
                return queued.future
            job = _Job("chat_update", kwargs)
            self._pending_updates[(channel, ts)] = job
        return self._enqueue(channel, job)

    def _enqueue(self, channel: str, job: _Job) -> Future[dict[str, Any]]:
        with self._lock:
            q = self._queues.get(channel)
            if q is None:
                q = self._queues[channel] = queue.Queue()
                t = threading.Thread(target=self._worker, args=(channel, q), name=f"slack-post-{channel}",
                                     daemon=True)
                t.start()
                self._threads.append(t)
        q.put(job)
        return job.future

    def _worker(self, channel: str, q: queue.Queue[_Job | None]) -> None:
        while True:
            job = q.get()
            if job is None:
                return
            with self._lock:
                kwargs = dict(job.kwargs)
                if job.method == "chat_update":
                    self._pending_updates.pop((kwargs["channel"], kwargs["ts"]), None)
            self._send(job, kwargs)
            self._sleep(self.interval)

    def _send(self, job: _Job, kwargs: dict[str, Any]) -> None:
        backoff = 1.0
        while True:
            try:
                resp = getattr(self.client, job.method)(**kwargs)
                job.future.set_result(dict(resp.data) if isinstance(resp.data, dict) else {})
                return
            except SlackApiError as e:
                if e.response.status_code == 429:
                    wait = float(e.response.headers.get("Retry-After", e.response.headers.get("retry-after", 1)))
                    log.info("Slack rate limit on %s: waiting %.0f s", job.method, wait)
                    self._sleep(wait)
                    continue
                error = e.response.get("error") if hasattr(e.response, "get") else str(e)
                if error in ("channel_not_found", "not_in_channel", "invalid_auth", "message_not_found"):
                    log.error("Slack refused %s: %s", job.method, error)
                    job.future.set_exception(e)
                    return
                log.warning("Slack %s failed (%s): retrying in %.0f s", job.method, error, backoff)
            except Exception as e:  # network trouble: an alert is retried, never dropped
                log.warning("Slack %s failed (%s): retrying in %.0f s", job.method, type(e).__name__, backoff)
            if self._stopping.is_set():
                job.future.set_exception(RuntimeError("stopping"))
                return
            self._sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to `timeout`), then stop the workers."""
        self._stopping.set()
        with self._lock:
            queues = list(self._queues.values())
        for q in queues:
            q.put(None)
        for t in self._threads:
            t.join(timeout)
