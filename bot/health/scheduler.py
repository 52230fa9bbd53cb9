"""Runs health checks on time, concurrently, and hands every result to one consumer thread.

Each target is a one-shot APScheduler `date` job that is armed again only after its
result has been handed over. That gives three properties the bot relies on:

* at most one check per target is ever in flight, so results per target arrive in order;
* the consumer decides the next delay from the very result it just saw (`set_next`
  inside `on_result`: fast while in doubt), and that delay is the one used;
* checks run in a thread pool, so one black-holed host delays only its own target.

The delay therefore counts from when the consumer has seen the previous result, not
from when the previous check was due: a slow check or a slow consumer spaces that
target's checks out instead of piling runs up behind it.

Results go through a queue drained by a single writer thread, so `on_result` is never
called concurrently and the consumer (state machines, the store) needs no locks;
`call_soon` lets other threads hand work to that same thread.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum

from apscheduler.executors.pool import ThreadPoolExecutor  # type: ignore[import-untyped]
from apscheduler.jobstores.base import JobLookupError  # type: ignore[import-untyped]
from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.date import DateTrigger  # type: ignore[import-untyped]

from bot.health.machine import TargetKey

log = logging.getLogger(__name__)

# How many recent lateness samples p50 and max are computed over.
LATENESS_SAMPLES = 1024
# A check's exception becomes its failure reason, cut so one odd error cannot flood a Slack thread.
DETAIL_MAX = 200


@dataclass(frozen=True)
class CheckJob:
    key: TargetKey
    interval: float
    fast_interval: float
    timeout: float


RunCheck = Callable[[CheckJob], tuple[bool, str]]
OnResult = Callable[[CheckJob, bool, str, float], None]


class _Phase(Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class _Slot:
    """One scheduled target. Armed when `token` names a waiting APScheduler job; else its check is
    running or its result is on the way to the consumer, and `delay` is what the next arming uses."""

    def __init__(self, job: CheckJob, delay: float) -> None:
        self.job = job
        self.delay: float | None = delay
        self.token: str | None = None
        self.due = 0.0


_Result = tuple[_Slot, bool, str, float]
_Item = _Result | Callable[[], None] | None  # None: the writer's end marker


class CheckScheduler:
    def __init__(
        self,
        run: RunCheck,
        on_result: OnResult,
        *,
        max_workers: int = 32,
        clock: Callable[[], float] = time.monotonic,
        on_lateness: Callable[[float], None] | None = None,
    ) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1 (got {max_workers})")
        self._run = run
        self._on_result = on_result
        # Public so it can be wired after construction (metrics); called on the writer thread too.
        self.on_lateness = on_lateness
        self._clock = clock
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._slots: dict[TargetKey, _Slot] = {}
        self._phase = _Phase.NEW
        self._inflight = 0
        self._tokens = itertools.count(1)
        self._results: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._late: deque[float] = deque(maxlen=LATENESS_SAMPLES)
        self._late_count = 0
        self._late_last = 0.0
        # misfire_grace_time=None: a one-shot job that misses its grace time is dropped by
        # APScheduler, which would silently stop checking that target for good. Under load
        # (a full pool, a stalled process) a check runs late instead, and the lateness says so.
        self._aps = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )

    # -- the consumer's API --------------------------------------------------------
    def add(self, job: CheckJob, *, first_delay: float = 0.0) -> None:
        """Schedule `job`, first run after `first_delay` seconds (counted from start() if not started yet)."""
        name = f"{job.key[0]}/{job.key[1]}"
        if job.interval <= 0 or job.fast_interval <= 0 or job.timeout <= 0:
            raise ValueError(f"{name}: interval, fast_interval and timeout must be positive")
        if job.timeout >= job.interval:
            # Otherwise a target that always times out would be checked back to back, never on time.
            raise ValueError(
                f"{name}: check timeout {job.timeout:g}s must be shorter than its interval {job.interval:g}s"
            )
        if first_delay < 0:
            raise ValueError(f"{name}: first_delay must not be negative (got {first_delay:g})")
        with self._lock:
            if self._phase in (_Phase.STOPPING, _Phase.STOPPED):
                raise RuntimeError("the check scheduler is stopped")
            if job.key in self._slots:
                raise ValueError(f"{name} is already scheduled; remove it first")
            slot = _Slot(job, first_delay)
            self._slots[job.key] = slot
            if self._phase is _Phase.RUNNING:
                self._arm(slot)

    def remove(self, key: TargetKey) -> None:
        """Stop checking `key`. A result already being handed over on the writer thread may still
        arrive (none can when remove is called from on_result itself); later ones never do."""
        with self._lock:
            slot = self._slots.pop(key, None)
            if slot is not None:
                self._disarm(slot)

    def set_next(self, key: TargetKey, delay: float) -> None:
        """Run `key`'s next check `delay` seconds from now (once; later runs go back to the interval).

        From on_result this sets the delay of the check after the one just reported; while the
        next check is already waiting, it is moved. An unknown key is ignored: it may have just
        been removed by another thread.
        """
        if delay < 0:
            raise ValueError(f"delay must not be negative (got {delay:g})")
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                return
            slot.delay = delay
            if slot.token is not None and self._phase is _Phase.RUNNING:
                self._disarm(slot)
                self._arm(slot)

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the writer thread, in turn with the results: how another thread (a timer, a
        command) changes what on_result owns without a lock. Dropped once the scheduler has stopped."""
        with self._lock:
            if self._phase is _Phase.STOPPED:
                return
        self._results.put(fn)

    def start(self) -> None:
        with self._lock:
            if self._phase is not _Phase.NEW:
                raise RuntimeError("a check scheduler starts once")
            self._phase = _Phase.RUNNING
            self._writer = threading.Thread(target=self._write, name="health-results", daemon=True)
            self._writer.start()
            self._aps.start()
            for slot in self._slots.values():
                self._arm(slot)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop scheduling, let running checks finish and their results be delivered, for up to
        `timeout` seconds in all. After stop() returns, on_result is never called again."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._phase in (_Phase.STOPPING, _Phase.STOPPED):
                return
            started = self._phase is _Phase.RUNNING
            self._phase = _Phase.STOPPING
        if started:
            # Empty the job store first: APScheduler 3 marks itself stopped before taking its own
            # lock, and a job it is dispatching at that moment (or finds due on its last wake-up)
            # then crashes its thread in remove_job. Nothing re-arms now that the phase is STOPPING.
            self._aps.remove_all_jobs()
            # wait=False: APScheduler would wait for the pool without a bound; we wait below, bounded.
            self._aps.shutdown(wait=False)
            with self._idle:
                self._idle.wait_for(lambda: self._inflight == 0, max(0.0, deadline - time.monotonic()))
            # After every finished check's result, so those are still delivered.
            self._results.put(None)
            writer = self._writer
            if writer is not None and writer is not threading.current_thread():
                writer.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._phase = _Phase.STOPPED

    def lateness_stats(self) -> dict[str, float]:
        """How late checks started versus their scheduled time, in seconds: `count` of all checks
        ever, `last`, and `max` and `p50` over the last LATENESS_SAMPLES checks."""
        with self._lock:
            samples = list(self._late)
            count, last = self._late_count, self._late_last
        if not samples:
            return {"count": 0.0, "max": 0.0, "last": 0.0, "p50": 0.0}
        return {"count": float(count), "max": max(samples), "last": last, "p50": statistics.median(samples)}

    # -- internals -------------------------------------------------------------------
    def _arm(self, slot: _Slot) -> None:
        # Caller holds self._lock. Each arming is a new APScheduler job id, so a run already
        # handed to the pool can be told apart from the one that replaced it.
        delay = slot.job.interval if slot.delay is None else slot.delay
        slot.delay = None
        slot.token = f"{slot.job.key[0]}/{slot.job.key[1]}#{next(self._tokens)}"
        slot.due = self._clock() + delay
        self._aps.add_job(
            self._execute,
            trigger=DateTrigger(run_date=datetime.now(UTC) + timedelta(seconds=delay), timezone=UTC),
            args=(slot, slot.token),
            id=slot.token,
            name=f"health check {slot.job.key[0]}/{slot.job.key[1]}",
        )

    def _disarm(self, slot: _Slot) -> None:
        # Caller holds self._lock.
        token, slot.token = slot.token, None
        if token is None:
            return
        # JobLookupError: already handed to the pool; _execute sees the token is stale and does nothing.
        with contextlib.suppress(JobLookupError):
            self._aps.remove_job(token)

    def _execute(self, slot: _Slot, token: str) -> None:
        """Runs in the pool: one check, whose result goes to the writer whatever happens."""
        with self._lock:
            if self._phase is not _Phase.RUNNING or slot.token != token or self._slots.get(slot.job.key) is not slot:
                return
            slot.token = None
            lateness = max(0.0, self._clock() - slot.due)
            self._late.append(lateness)
            self._late_count += 1
            self._late_last = lateness
            self._inflight += 1
        ok, detail = False, "check did not run"
        try:
            ok, detail = self._run(slot.job)
            ok, detail = bool(ok), str(detail)
        except Exception as e:
            log.warning("health check %s/%s raised", *slot.job.key, exc_info=True)
            ok, detail = False, _short(f"check error: {type(e).__name__}: {e}")
        finally:
            # Queued before in-flight drops, so stop() puts its end marker after this result.
            self._results.put((slot, ok, detail, lateness))
            with self._idle:
                self._inflight -= 1
                self._idle.notify_all()

    def _write(self) -> None:
        while (item := self._results.get()) is not None:
            if not isinstance(item, tuple):
                self._call(item)
                continue
            slot, ok, detail, lateness = item
            with self._lock:
                deliver = self._phase is not _Phase.STOPPED and self._slots.get(slot.job.key) is slot
            if not deliver:
                continue
            on_lateness = self.on_lateness
            if on_lateness is not None:
                try:
                    on_lateness(lateness)
                except Exception:
                    log.exception("lateness callback failed")
            try:
                self._on_result(slot.job, ok, detail, lateness)
            except Exception:
                # A consumer bug must not end health checking for every target.
                log.exception("health result handler failed for %s/%s", *slot.job.key)
            with self._lock:
                if self._phase is _Phase.RUNNING and self._slots.get(slot.job.key) is slot:
                    self._arm(slot)

    def _call(self, fn: Callable[[], None]) -> None:
        with self._lock:
            if self._phase is _Phase.STOPPED:
                return
        try:
            fn()
        except Exception:
            log.exception("work handed to the health writer thread failed")


def _short(text: str) -> str:
    one = " ".join(text.split())
    return one if len(one) <= DETAIL_MAX else one[: DETAIL_MAX - 1] + "…"
