"""bot.periodic: the daemon's slow timed jobs on APScheduler, each never overlapping itself."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from bot.periodic import Periodic

WAIT = 10.0


@pytest.fixture
def periodic() -> Iterator[Periodic]:
    p = Periodic()
    yield p
    p.stop(WAIT)


def test_a_job_runs_again_and_again(periodic: Periodic) -> None:
    runs = threading.Semaphore(0)
    periodic.every("tick", 0.02, runs.release, first_delay=0.0)
    periodic.start()
    assert all(runs.acquire(timeout=WAIT) for _ in range(3))
    assert periodic.names() == ["tick"]


def test_a_job_longer_than_its_interval_never_runs_twice_at_once(periodic: Periodic) -> None:
    lock = threading.Lock()
    active, most, done = [0], [0], threading.Semaphore(0)

    def slow() -> None:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        threading.Event().wait(0.1)  # five intervals long
        with lock:
            active[0] -= 1
        done.release()

    periodic.every("slow", 0.02, slow, first_delay=0.0)
    periodic.start()
    assert all(done.acquire(timeout=WAIT) for _ in range(3))
    assert most[0] == 1


def test_a_failing_pass_is_logged_and_the_job_goes_on(periodic: Periodic, caplog: pytest.LogCaptureFixture) -> None:
    calls = threading.Semaphore(0)

    def broken() -> None:
        calls.release()
        raise RuntimeError("database away")

    with caplog.at_level(logging.ERROR, logger="lasthop.periodic"):
        periodic.every("broken", 0.02, broken, first_delay=0.0)
        periodic.start()
        assert calls.acquire(timeout=WAIT) and calls.acquire(timeout=WAIT)  # it ran again after failing
    assert "periodic job broken failed" in caplog.text


def test_stop_waits_for_a_running_pass_and_then_nothing_runs(periodic: Periodic) -> None:
    started, release, ended = threading.Event(), threading.Event(), threading.Event()
    runs = [0]

    def pass_() -> None:
        runs[0] += 1
        started.set()
        release.wait(WAIT)
        ended.set()

    periodic.every("reconcile", 0.02, pass_, first_delay=0.0)
    periodic.start()
    assert started.wait(WAIT)
    assert periodic.stop(0.05) is False  # still running: the wait ends at its bound
    release.set()
    assert periodic.stop(WAIT) is True and ended.is_set()
    count = runs[0]
    threading.Event().wait(0.1)
    assert runs[0] == count  # no pass after stop


def test_an_interval_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ValueError, match="reconcile: the interval must be positive"):
        Periodic().every("reconcile", 0, lambda: None)
