"""Incidents told in chat: one parent message kept current, and everything else in its thread.

The parent is posted when an incident opens and re-rendered in place after every event
(Slack's poster coalesces the updates), so its first lines are right at a glance: open,
acknowledged, mitigated, resolved. Where the parent is lives in the store, so a restart, or
another lasthop process, continues the same thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime

from bot import incident_view as iv
from bot.chat import ChatOut, Message, MessageRef
from bot.incidents import IncidentUpdate
from bot.inventory import Inventory
from bot.situation import Situation
from bot.state import StateStore, utcnow
from bot.views import Phrasing, incident_message, thread_line

log = logging.getLogger("lasthop.announce")

THREAD_WAIT_S = 10.0  # how long a follower waits for the leader's parent message to reach the store


class Announcer:
    def __init__(
        self,
        inv: Inventory,
        store: StateStore,
        out: ChatOut,
        channel: str,
        *,
        situation: Callable[[], Situation] = Situation,
        phrasing: Phrasing | None = None,
        now: Callable[[], datetime] = utcnow,
        opens_threads: Callable[[], bool] = lambda: True,
    ) -> None:
        """`opens_threads`: whether this process posts an incident's parent when it has none yet (the
        leader does); otherwise it waits for the leader's parent to reach the store."""
        self.inv = inv
        self.store = store
        self.out = out
        self.channel = channel
        self.situation = situation
        self.phrasing = phrasing or Phrasing(inv.slack.commands)
        self.now = now
        self.opens_threads = opens_threads
        self._parents: dict[int, Future[MessageRef]] = {}
        self._alarms: dict[str, Future[MessageRef]] = {}
        self._lock = threading.Lock()

    def load(self) -> None:
        """The parents of incidents still open, as the store has them (after a restart)."""
        for record in self.store.open_incidents():
            if record.channel and record.thread_ts:
                with self._lock:
                    self._parents[record.id] = _done(MessageRef(record.channel, record.thread_ts))

    # ---------------------------------------------------------------- incidents

    def incident(self, update: IncidentUpdate) -> None:
        parent = self._parent(update.incident_id)
        self.out.post(self.channel, thread_line(update.event.at, update.event.text), thread=parent)
        if update.kind != "opened":
            self.refresh(update.incident_id)

    def refresh(self, incident_id: int) -> None:
        """Render the parent again from the store and the situation now."""
        with self._lock:
            parent = self._parents.get(incident_id)
        if parent is None:
            record = self.store.get_incident(incident_id)
            if record is None or not record.thread_ts:
                return
            parent = _done(MessageRef(record.channel, record.thread_ts))
            with self._lock:
                self._parents[incident_id] = parent
        parent.add_done_callback(lambda f: self._update(incident_id, f))

    def refresh_open(self) -> None:
        """After the routes changed: every open incident's "where is it routed now"."""
        with self._lock:
            ids = list(self._parents)
        open_ids = {r.id for r in self.store.open_incidents()}
        for incident_id in ids:
            if incident_id in open_ids:
                self.refresh(incident_id)

    def parent_of(self, incident_id: int) -> Future[MessageRef] | None:
        with self._lock:
            return self._parents.get(incident_id)

    def message(self, incident_id: int) -> Message | None:
        record = self.store.get_incident(incident_id)
        if record is None:
            return None
        return incident_message(self.inv, iv.view_of(record), self.situation(), self.phrasing, self.now())

    def _parent(self, incident_id: int) -> Future[MessageRef]:
        with self._lock:
            parent = self._parents.get(incident_id)
        if parent is not None:
            return parent
        record = self.store.get_incident(incident_id)
        if record is not None and record.thread_ts:
            parent = _done(MessageRef(record.channel, record.thread_ts))
        elif record is not None and not self.opens_threads():
            # A follower's line (a click it answered) while the leader's parent is still on its way:
            # a second parent would page people twice and take over the thread. Wait for the leader's.
            return self._leaders_parent(incident_id)
        elif record is not None:
            message = self.message(incident_id) or Message.of(record.title)
            parent = self.out.post(self.channel, message)
            parent.add_done_callback(lambda f: self._remember(incident_id, f))
        else:
            parent = _failed(f"incident {incident_id} is unknown")
        with self._lock:
            self._parents.setdefault(incident_id, parent)
            return self._parents[incident_id]

    def _leaders_parent(self, incident_id: int) -> Future[MessageRef]:
        """The parent the leader posts, once the store has it (polled, at most THREAD_WAIT_S); after
        that the line goes to the channel, never into a parent of this process's own."""
        found: Future[MessageRef] = Future()

        def wait() -> None:
            deadline = time.monotonic() + THREAD_WAIT_S
            while True:
                try:
                    record = self.store.get_incident(incident_id)
                except Exception as e:  # the database is away: the line goes to the channel
                    found.set_exception(LookupError(f"incident {incident_id}: {type(e).__name__}"))
                    return
                if record is not None and record.thread_ts:
                    found.set_result(MessageRef(record.channel, record.thread_ts))
                    return
                if time.monotonic() >= deadline:
                    found.set_exception(LookupError(f"incident {incident_id} has no thread yet"))
                    return
                time.sleep(0.2)

        threading.Thread(target=wait, name=f"lasthop-thread-{incident_id}", daemon=True).start()
        return found

    def _remember(self, incident_id: int, posted: Future[MessageRef]) -> None:
        try:
            ref = posted.result()
            self.store.set_incident_thread(incident_id, channel=ref.channel, ts=ref.ts)
        except Exception as e:  # the poster logged why; the thread then goes to the channel
            log.warning("incident %s: no parent message (%s)", incident_id, type(e).__name__)

    def _update(self, incident_id: int, parent: Future[MessageRef]) -> None:
        try:
            ref = parent.result()
            message = self.message(incident_id)
        except Exception as e:
            log.warning("incident %s: cannot update its parent (%s)", incident_id, type(e).__name__)
            return
        if message is not None:
            self.out.update(ref, message)

    # ---------------------------------------------------------------- other news

    def alarm(self, key: str, text: str) -> None:
        """A condition that is not an outage (drift, a missing VIP): one top-level post when it starts."""
        posted = self.out.post(self.channel, Message.of(f":warning: {text}"))
        with self._lock:
            self._alarms[key] = posted

    def alarm_over(self, key: str, text: str) -> None:
        with self._lock:
            parent = self._alarms.pop(key, None)
        self.out.post(self.channel, Message.of(f":white_check_mark: {text}"), thread=parent)

    def info(self, text: str, incident_id: int | None = None) -> None:
        """Worth knowing, not worth waking anyone; in an incident's thread when it belongs to one."""
        parent = self._parent(incident_id) if incident_id is not None else None
        self.out.post(self.channel, Message.of(text), thread=parent)


def _done(ref: MessageRef) -> Future[MessageRef]:
    f: Future[MessageRef] = Future()
    f.set_result(ref)
    return f


def _failed(reason: str) -> Future[MessageRef]:
    f: Future[MessageRef] = Future()
    f.set_exception(LookupError(reason))
    return f
