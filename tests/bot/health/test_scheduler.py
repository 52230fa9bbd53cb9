"""The check scheduler's contract (bot/health/scheduler.py) with fake checks: LoopScheduler, whose
fake checks run in its pool since they are not probes; its own probes are tested in
test_loop_scheduler.py. (These tests once ran on APScheduler's CheckScheduler too, now removed.)

No assertion here is about elapsed time: every test waits (bounded) for a count or an
event, so a slow machine makes a test slower, never wrong.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bot.health.loop_scheduler import LoopScheduler
from bot.health.machine import TargetKey
from bot.health.scheduler import DETAIL_MAX, CheckJob

Scheduler = LoopScheduler

WAIT = 5.0  # the bound on every wait; reached only when something is broken


def job(host: str, interval: float = 0.02, fast: float = 0.01, timeout: float = 0.01) -> CheckJob:
    return CheckJob(("www-a", host), interval, fast, timeout)


class Recorder:
    """Collects on_result calls and lets the test wait for a condition on them."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.results: dict[TargetKey, list[tuple[bool, str, float]]] = defaultdict(list)
        self.threads: set[int] = set()
        self.hook: Callable[[CheckJob, int], None] | None = None

    def on_result(self, job: CheckJob, ok: bool, detail: str, lateness: float) -> None:
        with self.cond:
            self.results[job.key].append((ok, detail, lateness))
            self.threads.add(threading.get_ident())
            n = len(self.results[job.key])
            self.cond.notify_all()
        if self.hook is not None:
            self.hook(job, n)

    def count(self, host: str) -> int:
        with self.cond:
            return len(self.results[("www-a", host)])

    def wait(self, predicate: Callable[[], bool], what: str) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, WAIT), f"gave up waiting for {what}"


def counting_run(counts: dict[TargetKey, int]) -> Callable[[CheckJob], tuple[bool, str]]:
    """A check that passes and numbers its results per key."""

    def run(job: CheckJob) -> tuple[bool, str]:
        counts[job.key] = counts.get(job.key, 0) + 1
        return True, str(counts[job.key])

    return run


@pytest.fixture(params=[LoopScheduler])
def kind(request: pytest.FixtureRequest) -> type[Scheduler]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def schedulers() -> Iterator[list[Scheduler]]:
    """Every scheduler a test makes is stopped at its end, even when the test fails."""
    made: list[Scheduler] = []
    yield made
    for s in made:
        s.stop(timeout=1.0)


@pytest.fixture
def make(schedulers: list[Scheduler], kind: type[Scheduler]) -> Callable[..., Scheduler]:
    def factory(run: Callable[[CheckJob], tuple[bool, str]], rec: Recorder, **kw: Any) -> Scheduler:
        s = kind(run, rec.on_result, **kw)
        schedulers.append(s)
        return s

    return factory


def test_results_arrive_in_order_per_key_on_one_thread(make: Callable[..., Scheduler]) -> None:
    rec = Recorder()
    s = make(counting_run({}), rec, max_workers=4)
    hosts = ["web1", "web2", "web3"]
    for h in hosts:
        s.add(job(h))
    s.start()
    rec.wait(lambda: all(len(rec.results[("www-a", h)]) >= 5 for h in hosts), "5 results per key")
    s.stop()
    for h in hosts:
        details = [d for _, d, _ in rec.results[("www-a", h)]]
        assert details == [str(n) for n in range(1, len(details) + 1)]
    assert len(rec.threads) == 1
    assert threading.get_ident() not in rec.threads


def test_a_black_holed_check_does_not_hold_up_the_others(make: Callable[..., Scheduler]) -> None:
    release = threading.Event()
    rec = Recorder()
    counts: dict[TargetKey, int] = {}
    count = counting_run(counts)

    def run(j: CheckJob) -> tuple[bool, str]:
        if j.key[1] == "dead":
            release.wait(WAIT)  # ignores its own timeout: the worst a check can do
            return False, "timed out"
        return count(j)

    s = make(run, rec, max_workers=4)
    others = ["web1", "web2", "web3"]
    for h in ["dead", *others]:
        s.add(job(h))
    s.start()
    try:
        rec.wait(lambda: all(len(rec.results[("www-a", h)]) >= 3 for h in others), "3 rounds of the others")
        assert rec.count("dead") == 0
    finally:
        release.set()
    rec.wait(lambda: len(rec.results[("www-a", "dead")]) >= 1, "the black-holed check to report")
    assert rec.results[("www-a", "dead")][0][:2] == (False, "timed out")


def test_set_next_from_on_result_takes_effect_for_the_next_run(make: Callable[..., Scheduler]) -> None:
    rec = Recorder()
    s = make(counting_run({}), rec)
    slow = job("web1", interval=60.0, fast=0.05, timeout=1.0)

    def in_doubt(j: CheckJob, n: int) -> None:
        s.set_next(j.key, j.fast_interval)

    rec.hook = in_doubt
    s.add(slow)
    s.start()
    # At the 60 s interval only one result could come within the wait; several prove the fast interval.
    rec.wait(lambda: len(rec.results[slow.key]) >= 4, "4 results at the fast interval")


def test_set_next_moves_a_waiting_check(make: Callable[..., Scheduler]) -> None:
    rec = Recorder()
    s = make(counting_run({}), rec)
    waiting = job("web1", interval=60.0, fast=1.0, timeout=1.0)
    s.add(waiting, first_delay=60.0)
    s.start()
    s.set_next(waiting.key, 0.0)
    rec.wait(lambda: len(rec.results[waiting.key]) == 1, "the moved check")


def test_set_next_before_start_sets_the_first_delay(make: Callable[..., Scheduler]) -> None:
    rec = Recorder()
    s = make(counting_run({}), rec)
    waiting = job("web1", interval=60.0, fast=1.0, timeout=1.0)
    s.add(waiting, first_delay=60.0)
    s.set_next(waiting.key, 0.0)
    s.start()
    rec.wait(lambda: len(rec.results[waiting.key]) == 1, "the first check")


def test_set_next_ignores_an_unknown_key_and_rejects_a_negative_delay(make: Callable[..., Scheduler]) -> None:
    s = make(counting_run({}), Recorder())
    s.set_next(("www-a", "nobody"), 1.0)
    with pytest.raises(ValueError, match="negative"):
        s.set_next(("www-a", "nobody"), -1.0)


def test_remove_from_on_result_stops_the_key_at_once(make: Callable[..., Scheduler]) -> None:
    rec = Recorder()
    s = make(counting_run({}), rec)

    def remove_at_three(j: CheckJob, n: int) -> None:
        if j.key[1] == "web1" and n == 3:
            s.remove(j.key)

    rec.hook = remove_at_three
    s.add(job("web1"))
    s.add(job("web2"))
    s.start()
    rec.wait(lambda: len(rec.results[("www-a", "web1")]) >= 3, "web1 to reach 3")
    # web2 going on for several more rounds is the proof that time passed for web1 too.
    target = rec.count("web2") + 5
    rec.wait(lambda: len(rec.results[("www-a", "web2")]) >= target, "web2 to go on")
    assert rec.count("web1") == 3


def test_remove_from_another_thread(make: Callable[..., Scheduler]) -> None:
    rec = Recorder()
    s = make(counting_run({}), rec)
    s.add(job("web1"))
    s.add(job("web2"))
    s.start()
    rec.wait(lambda: len(rec.results[("www-a", "web1")]) >= 2, "web1 to run")
    s.remove(("www-a", "web1"))
    at_remove = rec.count("web1")
    target = rec.count("web2") + 5
    rec.wait(lambda: len(rec.results[("www-a", "web2")]) >= target, "web2 to go on")
    # At most the one result that was already being handed over when remove() was called.
    assert rec.count("web1") <= at_remove + 1
    s.remove(("www-a", "web1"))  # removing twice is harmless


def test_a_removed_key_can_be_added_again(make: Callable[..., Scheduler]) -> None:
    rec = Recorder()
    s = make(counting_run({}), rec)
    s.add(job("web1"))
    s.start()
    rec.wait(lambda: len(rec.results[("www-a", "web1")]) >= 1, "web1 to run")
    s.remove(("www-a", "web1"))
    n = rec.count("web1")
    s.add(job("web1"))
    rec.wait(lambda: len(rec.results[("www-a", "web1")]) >= n + 2, "web1 to run again")


def test_stop_returns_and_nothing_arrives_after_it(make: Callable[..., Scheduler]) -> None:
    rec = Recorder()
    calls: dict[TargetKey, int] = {}
    s = make(counting_run(calls), rec)
    for h in ["web1", "web2"]:
        s.add(job(h))
    s.start()
    rec.wait(lambda: all(len(rec.results[("www-a", h)]) >= 3 for h in ["web1", "web2"]), "3 rounds")
    s.stop()
    delivered = {k: len(v) for k, v in rec.results.items()}
    ran = dict(calls)
    # Long enough for several more rounds at the 20 ms interval, had stop() not stopped them.
    threading.Event().wait(0.3)
    assert {k: len(v) for k, v in rec.results.items()} == delivered
    assert calls == ran
    s.stop()  # a second stop is harmless


def test_stop_waits_for_a_running_check_and_delivers_its_result(make: Callable[..., Scheduler]) -> None:
    started, release = threading.Event(), threading.Event()
    rec = Recorder()

    def run(j: CheckJob) -> tuple[bool, str]:
        started.set()
        release.wait(WAIT)
        return True, "finished"

    s = make(run, rec)
    s.add(job("web1", interval=60.0, timeout=1.0))
    s.start()
    assert started.wait(WAIT)
    stopper = threading.Thread(target=s.stop, kwargs={"timeout": WAIT})
    stopper.start()
    try:
        assert stopper.is_alive()  # stop() cannot return while the check runs (it would need WAIT seconds)
    finally:
        release.set()
    stopper.join(WAIT)
    assert not stopper.is_alive()
    assert rec.results[("www-a", "web1")] and rec.results[("www-a", "web1")][0][:2] == (True, "finished")


def test_stop_gives_up_on_a_stuck_check_and_drops_its_late_result(make: Callable[..., Scheduler]) -> None:
    started, release, returned = threading.Event(), threading.Event(), threading.Event()
    rec = Recorder()

    def run(j: CheckJob) -> tuple[bool, str]:
        started.set()
        release.wait(WAIT)
        returned.set()
        return True, "too late"

    s = make(run, rec)
    s.add(job("web1", interval=60.0, timeout=1.0))
    s.start()
    assert started.wait(WAIT)
    s.stop(timeout=0.1)
    release.set()
    assert returned.wait(WAIT)
    threading.Event().wait(0.2)  # room for a wrongly delivered result to show up
    assert rec.count("web1") == 0


def test_an_exception_in_a_check_is_a_failed_result_and_the_key_goes_on(
    make: Callable[..., Scheduler],
) -> None:
    rec = Recorder()
    calls: list[int] = []

    def run(j: CheckJob) -> tuple[bool, str]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom\nwith a second line " + "x" * 500)
        return True, "fine"

    s = make(run, rec)
    s.add(job("web1"))
    s.start()
    rec.wait(lambda: len(rec.results[("www-a", "web1")]) >= 2, "a result after the crash")
    (ok1, detail1, _), (ok2, detail2, _) = rec.results[("www-a", "web1")][:2]
    assert not ok1
    assert detail1.startswith("check error: RuntimeError: boom with a second line")
    assert "\n" not in detail1 and len(detail1) <= DETAIL_MAX
    assert (ok2, detail2) == (True, "fine")


def test_an_exception_in_on_result_does_not_stop_checking(make: Callable[..., Scheduler]) -> None:
    rec = Recorder()

    def explode(j: CheckJob, n: int) -> None:
        raise ValueError("consumer bug")

    rec.hook = explode
    s = make(counting_run({}), rec)
    s.add(job("web1"))
    s.start()
    rec.wait(lambda: len(rec.results[("www-a", "web1")]) >= 3, "results despite the failing consumer")


def test_lateness_is_measured_and_reported(make: Callable[..., Scheduler]) -> None:
    rec = Recorder()
    seen: list[tuple[float, int]] = []
    s = make(counting_run({}), rec, on_lateness=lambda v: seen.append((v, threading.get_ident())))
    assert s.lateness_stats() == {"count": 0.0, "max": 0.0, "last": 0.0, "p50": 0.0}
    s.add(job("web1"))
    s.add(job("web2"))
    s.start()
    rec.wait(lambda: all(len(rec.results[("www-a", h)]) >= 3 for h in ["web1", "web2"]), "3 rounds")
    s.stop()
    stats = s.lateness_stats()
    delivered = sum(len(v) for v in rec.results.values())
    assert stats["count"] >= delivered >= 6
    assert 0.0 <= stats["p50"] <= stats["max"]
    assert 0.0 <= stats["last"] <= stats["max"]
    assert len(seen) == delivered
    assert all(v >= 0.0 for v, _ in seen)
    assert {t for _, t in seen} == rec.threads  # the metrics callback runs on the writer thread too
    assert all(late >= 0.0 for v in rec.results.values() for _, _, late in v)


def test_lateness_callback_can_be_set_after_construction(make: Callable[..., Scheduler]) -> None:
    rec = Recorder()
    seen: list[float] = []
    s = make(counting_run({}), rec)
    s.on_lateness = seen.append
    s.add(job("web1"))
    s.start()
    rec.wait(lambda: len(rec.results[("www-a", "web1")]) >= 2, "2 results")
    s.stop()
    assert len(seen) == rec.count("web1")


def test_lateness_uses_the_given_clock(make: Callable[..., Scheduler]) -> None:
    """Lateness is read from the injected clock, not the wall clock APScheduler uses."""
    rec = Recorder()
    now = [0.0]
    lock = threading.Lock()

    def clock() -> float:
        with lock:
            now[0] += 5.0
            return now[0]

    s = make(counting_run({}), rec, clock=clock)
    s.add(job("web1"))
    s.start()
    rec.wait(lambda: len(rec.results[("www-a", "web1")]) >= 2, "2 results")
    s.stop()
    # One reading when armed (due = 5 + first_delay 0) and one when run (10): 5 s late.
    first = rec.results[("www-a", "web1")][0][2]
    assert first == 5.0


def test_call_soon_runs_on_the_writer_thread(make: Callable[..., Scheduler]) -> None:
    rec = Recorder()
    s = make(counting_run({}), rec)
    ran: list[int] = []
    done = threading.Event()

    def fail() -> None:
        raise RuntimeError("bug in handed-over work")

    def note() -> None:
        ran.append(threading.get_ident())
        done.set()

    s.call_soon(fail)  # before start: queued; its exception must not end the writer
    s.call_soon(note)
    s.add(job("web1"))
    s.start()
    assert done.wait(WAIT)
    rec.wait(lambda: len(rec.results[("www-a", "web1")]) >= 2, "results after the handed-over work")
    assert set(ran) == rec.threads
    s.stop()
    s.call_soon(note)  # after stop: dropped
    threading.Event().wait(0.1)
    assert len(ran) == 1


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (job("web1", interval=1.0, timeout=1.0), "timeout 1s must be shorter than its interval 1s"),
        (job("web1", interval=1.0, timeout=2.0), "must be shorter"),
        (job("web1", interval=0.0, timeout=0.0), "must be positive"),
        (job("web1", fast=0.0), "must be positive"),
    ],
)
def test_add_rejects_bad_timing(make: Callable[..., Scheduler], bad: CheckJob, message: str) -> None:
    s = make(counting_run({}), Recorder())
    with pytest.raises(ValueError, match=message):
        s.add(bad)


def test_add_rejects_a_key_twice_and_a_negative_first_delay(make: Callable[..., Scheduler]) -> None:
    s = make(counting_run({}), Recorder())
    s.add(job("web1"))
    with pytest.raises(ValueError, match="already scheduled"):
        s.add(job("web1"))
    with pytest.raises(ValueError, match="negative"):
        s.add(job("web2"), first_delay=-1.0)


def test_lifecycle_errors(make: Callable[..., Scheduler]) -> None:
    s = make(counting_run({}), Recorder())
    s.start()
    with pytest.raises(RuntimeError, match="starts once"):
        s.start()
    s.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        s.add(job("web1"))
    s.stop()


def test_stop_without_start(kind: type[Scheduler]) -> None:
    s = kind(counting_run({}), Recorder().on_result)
    s.add(job("web1"))
    s.stop()
