"""Leader election among `lasthop serve` instances, on the store's seat (bot/state/leadership.py).

One thread per instance runs the election:

- a follower tries the seat every `poll` seconds; when it wins, the store gives it a new term
  (the fencing token) and `on_promote(term)` runs on the role thread;
- a leader sends a heartbeat every `heartbeat` seconds. Its lease runs `lease` seconds from when
  the last good heartbeat was *sent*: the server saw the session active no earlier than that, so
  the session cannot be ended for idleness (IDLE_SESSION_TIMEOUT_MS, longer than the lease) before
  the lease is over. A heartbeat that fails, or has not come back when the lease ends, demotes:
  `leading()` turns false at once (every automatic action checks it) and `on_demote(reason)` runs.

Promotion and demotion run in order on one role thread, so a slow promotion (reconcile talks to
routers) never delays a heartbeat, and a demotion always follows the promotion it undoes.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime

from bot.state import LeaderRecord, StateError
from bot.state.errors import Fenced
from bot.state.leadership import IDLE_SESSION_TIMEOUT_MS, PoolerSuspected, Seat, SeatTaken
from bot.state.store import StateStore

log = logging.getLogger("lasthop.leader")

HEARTBEAT_S = 0.5
LEASE_S = 2.0
POLL_S = 0.5
STOPPING = "this instance is stopping"  # the reason a clean stop stands down with
RESIGN_POLLS = 10  # after resign(), polls to wait before standing again: another instance's turn first
# How long a clean stop waits for its stand-down to be recorded.
STAND_DOWN_WAIT_S = 5.0
assert LEASE_S < IDLE_SESSION_TIMEOUT_MS / 1000, "the lease must end before the server can end the session"


class NotLeader(Fenced):
    """This instance does not lead (now): an automatic action must not run."""

    def __init__(self, term: int | None) -> None:
        super().__init__(term or 0, None)


@dataclass(frozen=True)
class Role:
    leading: bool
    term: int | None
    since: datetime | None  # when this instance became leader (store clock), None as a follower


class Election:
    """Whether this instance leads, kept true by heartbeats. `start()`, then `leading()` at any time."""

    def __init__(
        self,
        store: StateStore,
        instance: str,
        *,
        on_promote: Callable[[int], None],
        on_demote: Callable[[str], None],
        heartbeat: float = HEARTBEAT_S,
        lease: float = LEASE_S,
        poll: float = POLL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < heartbeat < lease:
            raise ValueError(f"the heartbeat ({heartbeat} s) must be shorter than the lease ({lease} s)")
        if store.shared and lease >= IDLE_SESSION_TIMEOUT_MS / 1000:
            # Else the server could end a quiet leader's session, and another could lead, while its lease runs.
            raise ValueError(f"the lease ({lease} s) must be shorter than the leader session's idle timeout "
                             f"({IDLE_SESSION_TIMEOUT_MS / 1000:g} s)")
        self.store = store
        self.instance = instance
        self._on_promote = on_promote
        self._on_demote = on_demote
        self.heartbeat = heartbeat
        self.lease = lease
        self.poll = poll
        self._clock = clock
        self._guard = threading.Lock()
        self._term: int | None = None
        self._since: datetime | None = None
        self._lease_until = 0.0
        self._seat: Seat | None = None
        self._stop = threading.Event()
        self._roles: queue.Queue[Callable[[], None] | None] = queue.Queue()
        # A heartbeat stuck on a dead socket is abandoned with its seat, not waited for: a second
        # worker then serves the next seat's calls.
        self._beats = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lasthop-beat")
        self._threads: list[threading.Thread] = []
        self.last_error = ""  # why the last try or heartbeat failed, for status
        self.previous: LeaderRecord | None = None  # the leader before our latest term
        self._resigning: str | None = None  # resign()'s reason, for the election thread

    # -- what everyone asks ----------------------------------------------------------------
    def leading(self) -> bool:
        return self.term() is not None

    def term(self) -> int | None:
        """Our term while we lead (the fencing token), else None."""
        with self._guard:
            return self._live_term()

    def _live_term(self) -> int | None:
        # Under _guard: the term, unless none or its lease has run out.
        return self._term if self._term is not None and self._clock() < self._lease_until else None

    def fence(self) -> int:
        """Our term, checked locally (lease) and by the store (the term still leads); NotLeader or Fenced."""
        term = self.term()
        if term is None:
            raise NotLeader(None)
        self.store.fence(term)
        if self.term() != term:  # the lease ran out while the store answered
            raise NotLeader(term)
        return term

    def role(self) -> Role:
        with self._guard:
            term = self._live_term()
            return Role(term is not None, term, self._since if term is not None else None)

    def resign(self, reason: str) -> None:
        """Stand down soon (from any thread): at once for leading() and fence(); the election thread
        lets go of the seat on its next round and waits RESIGN_POLLS polls before standing again."""
        with self._guard:
            if self._term is None:
                return
            self._resigning, self._lease_until = reason, 0.0

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Try the seat once now, then run. Raises what no retry mends: SeatTaken (a SQLite store that
        another serve runs on) and PoolerSuspected (a transaction-mode pooler in the way)."""
        self._try_lead(first=True)
        for name, target in (("lasthop-election", self._run), ("lasthop-role", self._role_worker)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 30.0) -> None:
        """Stand down (if leading) and stop; the role thread finishes what it was doing first."""
        self._stop.set()
        for t in self._threads[:1]:
            t.join(timeout)
        if self._term is not None:
            self._demote(STOPPING, clean=True)
        self._roles.put(None)
        for t in self._threads[1:]:
            t.join(timeout)
        self._beats.shutdown(wait=False)  # a release still queued runs: the lock ends with its session

    # -- the election thread ------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            if self._term is None:
                self._try_lead()
                self._stop.wait(self.poll if self._term is None else self.heartbeat)
            elif self._resigning is not None:
                with self._guard:
                    reason, self._resigning = self._resigning, None
                self._demote(reason)
                self._stop.wait(RESIGN_POLLS * self.poll)  # another instance's turn first
            else:
                sent = self._clock()
                self._beat(sent)
                self._stop.wait(max(0.0, sent + self.heartbeat - self._clock()))

    def _try_lead(self, *, first: bool = False) -> None:
        seat = self._seat or self.store.seat()
        self._seat = seat
        # Before the try, not after: the lease must not outrun the server's idle clock, which starts
        # when the server answered the seat's last statement, before its answer reached us.
        sent = self._clock()
        try:
            if not seat.acquire():
                return
            # Who led before, as the store had it: a new leader tells people when that one did not stand down.
            self.previous = self.store.leader()
            term = self.store.take_leadership(self.instance, seat)
        except (SeatTaken, PoolerSuspected) as e:
            self._drop_seat()
            if first:
                raise
            self._error(str(e), level=logging.ERROR)
            return
        except StateError as e:
            self._error(f"cannot stand for leader: {e}")
            self._drop_seat()
            return
        since = self._since_of(term)
        with self._guard:
            self._term, self._since, self._lease_until = term, since, self._until(sent)
        self.last_error = ""
        log.info("%s leads now (term %d)", self.instance, term)
        self._roles.put(lambda: self._on_promote(term))

    def _beat(self, sent: float) -> None:
        seat = self._seat
        assert seat is not None
        future: Future[None] = self._beats.submit(seat.beat)
        try:
            left = self._lease_until - self._clock()
            future.result(timeout=max(0.0, left) if math.isfinite(left) else None)
        except FutureTimeout:
            self._seat = None  # abandoned: its stuck call fails on its own (tcp_user_timeout) and closes it
            self._demote(f"no heartbeat answer from the database within the {self.lease:g} s lease")
            return
        except StateError as e:
            self._demote(str(e))
            return
        except Exception as e:  # anything else a driver raises: the same, we cannot prove we lead
            self._demote(f"heartbeat failed: {type(e).__name__}")
            return
        with self._guard:
            if self._term is not None and self._resigning is None:
                self._lease_until = self._until(sent)

    def _until(self, sent: float) -> float:
        # SQLite's seat is a lock this process holds until it exits: nobody else can lead meanwhile,
        # so a late heartbeat (a busy machine) must not end the term and rebuild everything.
        return sent + self.lease if self.store.shared else math.inf

    def _demote(self, reason: str, *, clean: bool = False) -> None:
        with self._guard:
            term, self._term, self._since, self._lease_until = self._term, None, None, 0.0
        if term is None:
            return
        log.log(logging.INFO if clean else logging.WARNING, "%s stands down as leader (term %d): %s",
                self.instance, term, reason)
        self.last_error = "" if clean else reason
        self._drop_seat(now=clean)
        # on_demote first, and the record off this thread: cut off from the database, stand_down()
        # can hang (until the store connections' TCP timeouts give up), and neither the role
        # change nor the next election round may wait for it. A clean stop waits a little, so the
        # record says it stood down.
        self._roles.put(lambda: self._on_demote(reason))
        recorder = threading.Thread(target=self._record_stand_down, args=(term, reason),
                                    name="lasthop-stand-down", daemon=True)
        recorder.start()
        if clean:
            recorder.join(STAND_DOWN_WAIT_S)

    def _record_stand_down(self, term: int, reason: str) -> None:
        try:
            self.store.stand_down(term, reason)
        except StateError as e:  # cut off from the database: the next leader's term says it anyway
            log.info("could not record standing down: %s", e)

    def _drop_seat(self, *, now: bool = False) -> None:
        seat, self._seat = self._seat, None
        if seat is None:
            return
        if now:
            # stop(): the election thread has ended, so no heartbeat uses the seat; let go here, not
            # in the pool that stop() shuts down next.
            seat.release()
        else:
            # In the beat pool: a seat whose connection is stuck must not stick this thread too.
            self._beats.submit(seat.release)

    def _since_of(self, term: int) -> datetime | None:
        try:
            record = self.store.leader()
        except StateError:
            return None
        return record.since if record is not None and record.term == term else None

    def _error(self, text: str, *, level: int = logging.WARNING) -> None:
        if text != self.last_error:
            log.log(level, "%s", text)
        self.last_error = text

    # -- the role thread -----------------------------------------------------------------------
    def _role_worker(self) -> None:
        while True:
            job = self._roles.get()
            if job is None:
                return
            try:
                job()
            except Exception:
                log.exception("changing role failed")
