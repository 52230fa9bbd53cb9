"""The daemon's slow timed work on APScheduler: maintenance windows, reconcile passes.

Health checks are not here: they run on the check loop (bot/health/loop_scheduler.py), which
schedules thousands a second without a job object per check. What is here runs every few seconds
or minutes, may block on the database or a router, and must never overlap itself: each job is an
interval job with `max_instances=1` and `coalesce`, so a pass that overruns its interval delays the
next one instead of starting a second, and missed runs are one run, not a burst.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]

log = logging.getLogger("lasthop.periodic")


class Periodic:
    def __init__(self) -> None:
        # One worker: the jobs are few and slow, and one at a time keeps their database work apart.
        self._scheduler = BackgroundScheduler(
            timezone=UTC, daemon=True, executors={"default": {"type": "threadpool", "max_workers": 1}},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None})
        self._running = 0
        self._idle = threading.Condition()
        self._stopped = False

    def every(self, name: str, seconds: float, fn: Callable[[], None], *, first_delay: float | None = None) -> None:
        """Run `fn` every `seconds`, the first time after `first_delay` (default: one interval)."""
        if seconds <= 0:
            raise ValueError(f"{name}: the interval must be positive, not {seconds}")
        delay = seconds if first_delay is None else first_delay
        self._scheduler.add_job(self._guarded(name, fn), "interval", seconds=seconds, id=name, name=name,
                                next_run_time=datetime.now(UTC) + timedelta(seconds=delay))

    def _guarded(self, name: str, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            with self._idle:
                if self._stopped:
                    return
                self._running += 1
            try:
                fn()
            except Exception:  # one failed pass must not end the job: the next one tries again
                log.exception("periodic job %s failed", name)
            finally:
                with self._idle:
                    self._running -= 1
                    self._idle.notify_all()
        return run

    def start(self) -> None:
        self._scheduler.start()

    def stop(self, timeout: float) -> bool:
        """No new run starts; wait at most `timeout` for a running one to end. Whether none is left."""
        with self._idle:
            self._stopped = True
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        deadline = time.monotonic() + timeout
        with self._idle:
            return self._idle.wait_for(lambda: self._running == 0, timeout=max(0.0, deadline - time.monotonic()))

    def names(self) -> list[str]:
        return sorted(job.id for job in self._scheduler.get_jobs())
