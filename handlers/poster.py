"""Posting to Slack within its rate limits, in order, without ever dropping an alert.

chat.postMessage allows about one message per second per channel, so each channel has
its own queue and worker: one post per `interval`. An HTTP 429 is waited out for exactly
its Retry-After, here and nowhere else (the poster's client has no retry handlers of its
own), then the same message is sent again. Network trouble is retried with a growing
back-off; only an answer that can never succeed (no such channel) fails a message.

Two kinds of work are merged while they wait for their turn: updates of the same message
(only the newest content is sent) and plain lines for the same thread (sent as one
message, in order), which is how one outage becomes one parent and a few thread lines.
A thread reply may name its parent as a Future: the worker waits for the parent's post,
which the same queue sent first, so replies never overtake it.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.chat import Buttons, Message, MessageRef, Part
from handlers.blocks import fallback, render

log = logging.getLogger("lasthop.slack")
PER_CHANNEL_INTERVAL = 1.0
MAX_BACKOFF = 60.0
PARENT_WAIT = 120.0
MERGE_MAX_PARTS = 20
_PERMANENT = frozenset({"channel_not_found", "not_in_channel", "invalid_auth", "message_not_found",
                        "is_archived", "msg_too_long", "invalid_blocks", "cant_update_message"})


@dataclass
class _Job:
    method: str  # chat_postMessage | chat_update
    channel: str
    message: Message
    ts: str = ""  # chat_update: the message to change
    thread: MessageRef | Future[MessageRef] | None = None
    future: Future[MessageRef] = field(default_factory=Future)
    merged: list[Future[MessageRef]] = field(default_factory=list)

    @property
    def mergeable(self) -> bool:
        return (self.method == "chat_postMessage" and self.thread is not None
                and not any(isinstance(p, Buttons) for p in self.message.parts))


class Poster:
    """lasthop's ChatOut for Slack."""

    def __init__(self, client: WebClient, *, interval: float = PER_CHANNEL_INTERVAL,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.interval = interval
        self._sleep = sleep
        self._queues: dict[str, collections.deque[_Job]] = {}
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stopping = False

    # -- ChatOut ----------------------------------------------------------------------------
    def post(self, channel: str, message: Message, *,
             thread: MessageRef | Future[MessageRef] | None = None) -> Future[MessageRef]:
        return self._enqueue(_Job("chat_postMessage", channel, message, thread=thread))

    def update(self, ref: MessageRef, message: Message) -> Future[MessageRef]:
        with self._cond:
            for job in self._queues.get(ref.channel, ()):
                if job.method == "chat_update" and job.ts == ref.ts:
                    job.message = message  # coalesce: the queued update will send the newest content
                    return job.future
        return self._enqueue(_Job("chat_update", ref.channel, message, ts=ref.ts))

    # -- the queues -------------------------------------------------------------------------
    def _enqueue(self, job: _Job) -> Future[MessageRef]:
        with self._cond:
            if self._stopping:
                job.future.set_exception(RuntimeError("the poster is stopping"))
                return job.future
            q = self._queues.get(job.channel)
            if q is None:
                q = self._queues[job.channel] = collections.deque()
                t = threading.Thread(target=self._worker, args=(job.channel, q), name=f"slack-post-{job.channel}",
                                     daemon=True)
                t.start()
                self._threads.append(t)
            q.append(job)
            self._cond.notify_all()
        return job.future

    def _next(self, q: collections.deque[_Job]) -> _Job | None:
        with self._cond:
            while not q:
                if self._stopping:
                    return None
                self._cond.wait()
            job = q.popleft()
            if job.mergeable:
                # Later lines for the same thread join this one; their order is kept, and nothing
                # else in the channel is overtaken in a way a reader could see (other threads).
                for other in [j for j in q if j.mergeable and _same_thread(j.thread, job.thread)]:
                    if len(job.message.parts) + len(other.message.parts) > MERGE_MAX_PARTS:
                        break
                    q.remove(other)
                    job.message = _joined(job.message, other.message)
                    job.merged.append(other.future)
            return job

    def _worker(self, channel: str, q: collections.deque[_Job]) -> None:
        while True:
            job = self._next(q)
            if job is None:
                return
            self._send(job)
            self._sleep(self.interval)

    def _kwargs(self, job: _Job) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"channel": job.channel, "text": fallback(job.message), "blocks": render(job.message)}
        if job.method == "chat_update":
            kwargs["ts"] = job.ts
        elif job.thread is not None:
            parent: MessageRef | None
            if isinstance(job.thread, Future):
                try:
                    parent = job.thread.result(timeout=PARENT_WAIT)
                except Exception:  # the parent never got posted: the reply goes to the channel itself
                    parent = None
            else:
                parent = job.thread
            if parent is not None:
                kwargs["thread_ts"] = parent.ts
        return kwargs

    def _send(self, job: _Job) -> None:
        backoff = 1.0
        kwargs = self._kwargs(job)
        while True:
            try:
                resp = getattr(self.client, job.method)(**kwargs)
                data = resp.data if isinstance(resp.data, dict) else {}
                ref = MessageRef(str(data.get("channel") or job.channel), str(data.get("ts") or job.ts))
                for f in (job.future, *job.merged):
                    if not f.done():
                        f.set_result(ref)
                return
            except SlackApiError as e:
                if e.response.status_code == 429:
                    headers = e.response.headers or {}
                    wait = float(headers.get("Retry-After", headers.get("retry-after", 1)))
                    log.info("Slack rate limit on %s: waiting %.0f s", job.method, wait)
                    self._sleep(wait)
                    continue
                error = e.response.get("error") if hasattr(e.response, "get") else str(e)
                if error in _PERMANENT:
                    log.error("Slack refused %s to %s: %s", job.method, job.channel, error)
                    for f in (job.future, *job.merged):
                        if not f.done():
                            f.set_exception(e)
                    return
                log.warning("Slack %s failed (%s): retrying in %.0f s", job.method, error, backoff)
            except Exception as e:  # network trouble: an alert is retried, never dropped
                log.warning("Slack %s failed (%s): retrying in %.0f s", job.method, type(e).__name__, backoff)
            with self._cond:
                stopping = self._stopping
            if stopping:
                for f in (job.future, *job.merged):
                    if not f.done():
                        f.set_exception(RuntimeError("stopping"))
                return
            self._sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to `timeout`), then stop the workers."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while any(self._queues.values()) and time.monotonic() < deadline:
                self._cond.wait(0.1)
            self._stopping = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()) + 1.0)


def _joined(first: Message, second: Message) -> Message:
    parts: tuple[Part, ...] = (*first.parts, *second.parts)
    return Message(f"{first.fallback}\n{second.fallback}", parts)


def _same_thread(a: MessageRef | Future[MessageRef] | None, b: MessageRef | Future[MessageRef] | None) -> bool:
    if isinstance(a, MessageRef) and isinstance(b, MessageRef):
        return a == b
    return a is b
