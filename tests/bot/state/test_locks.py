"""Router locks: one change per router at a time, across threads and processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from bot.state import LockHeld, LockInfo, LockLost, StateStore

REPO = Path(__file__).resolve().parents[3]
INFO = "change by alice (slack)"
ME = f"{socket.gethostname()}:{os.getpid()}"  # the process a lock taken in this test names


def holder_of(store: StateStore, router: str) -> str | None:
    info = store.lock_info(router)
    return info.holder if info is not None else None


def test_a_second_holder_is_told_who_has_the_router_and_since_when(store: StateStore, clock: Any) -> None:
    store.acquire_lock("r1", holder="change-1", info=INFO, ttl=timedelta(minutes=5))
    clock.advance(seconds=30)
    with pytest.raises(LockHeld) as caught:
        store.acquire_lock("r1", holder="change-2", info="change by bob (cli)")
    assert str(caught.value) == "r1 is busy: change by alice (slack) since 12:03:04Z"
    assert caught.value.info == LockInfo(
        router="r1",
        holder="change-1",
        info=INFO,
        acquired_at=clock.now - timedelta(seconds=30),
        expires_at=clock.now + timedelta(minutes=4, seconds=30),
        process=ME,
    )
    assert store.lock_info("r1") == caught.value.info
    # Not re-entrant: the holder asking again is refused too, so a bug cannot stack two changes.
    with pytest.raises(LockHeld):
        store.acquire_lock("r1", holder="change-1", info=INFO)
    # Another router is independent.
    store.acquire_lock("r2", holder="change-2", info="change by bob (cli)")
    assert holder_of(store, "r2") == "change-2"


def test_an_expired_lock_is_taken_over(store: StateStore, clock: Any) -> None:
    store.acquire_lock("r1", holder="crashed", info=INFO, ttl=timedelta(minutes=5))
    clock.advance(minutes=5)
    assert store.lock_info("r1") is None
    store.acquire_lock("r1", holder="change-2", info="change by bob (cli)", ttl=timedelta(minutes=5))
    assert store.lock_info("r1") == LockInfo(
        "r1", "change-2", "change by bob (cli)", clock.now, clock.now + timedelta(minutes=5), ME
    )

    # The old holder wakes up: it has lost the lock and cannot remove the new one.
    with pytest.raises(LockLost, match="lost the lock on r1") as caught:
        store.refresh_lock("r1", holder="crashed")
    assert caught.value.current is not None and caught.value.current.holder == "change-2"
    store.release_lock("r1", holder="crashed")
    assert holder_of(store, "r1") == "change-2"


def test_release_removes_only_our_own_lock(store: StateStore) -> None:
    store.acquire_lock("r1", holder="change-1", info=INFO)
    store.release_lock("r1", holder="change-2")
    assert holder_of(store, "r1") == "change-1"
    store.release_lock("r1", holder="change-1")
    assert store.lock_info("r1") is None
    store.release_lock("r1", holder="change-1")  # releasing twice is harmless
    store.acquire_lock("r1", holder="change-2", info=INFO)
    assert holder_of(store, "r1") == "change-2"


def test_refresh_keeps_a_long_change_locked(store: StateStore, clock: Any) -> None:
    store.acquire_lock("r1", holder="change-1", info=INFO, ttl=timedelta(minutes=1))
    for _ in range(3):
        clock.advance(seconds=50)
        store.refresh_lock("r1", holder="change-1", ttl=timedelta(minutes=1))
    clock.advance(seconds=50)
    with pytest.raises(LockHeld):
        store.acquire_lock("r1", holder="change-2", info=INFO)
    with pytest.raises(LockLost):
        store.refresh_lock("r1", holder="change-2")
    with pytest.raises(LockLost):
        store.refresh_lock("r9", holder="change-1")


def test_router_lock_releases_when_the_block_fails(store: StateStore) -> None:
    with pytest.raises(RuntimeError), store.router_lock("r1", holder="change-1", info=INFO):
        assert holder_of(store, "r1") == "change-1"
        raise RuntimeError("ssh died")
    assert store.lock_info("r1") is None
    with store.router_lock("r1", holder="change-2", info=INFO), pytest.raises(LockHeld):
        store.acquire_lock("r1", holder="change-3", info=INFO)
    assert store.lock_info("r1") is None


def test_threads_racing_for_an_expired_lock_one_wins(
    store: StateStore, clock: Any, race: Callable[[int, Callable[[int], Any]], list[Any]]
) -> None:
    store.acquire_lock("r1", holder="crashed", info=INFO, ttl=timedelta(minutes=1))
    clock.advance(minutes=2)
    results = race(8, lambda i: store.acquire_lock("r1", holder=f"thread-{i}", info=f"change {i}"))
    winners = [i for i, r in enumerate(results) if r is None]
    assert len(winners) == 1, results
    assert all(isinstance(r, LockHeld) and r.info.holder == f"thread-{winners[0]}" for r in results if r is not None)
    assert holder_of(store, "r1") == f"thread-{winners[0]}"


def test_ttl_must_be_positive(store: StateStore) -> None:
    with pytest.raises(ValueError, match="ttl must be positive"):
        store.acquire_lock("r1", holder="h", info=INFO, ttl=timedelta(seconds=-1))
    with pytest.raises(ValueError, match="ttl must be positive"):
        store.refresh_lock("r1", holder="h", ttl=timedelta(0))


# Each process opens the store and connects, says "ready", then waits for "go" on stdin so
# that all four call acquire_lock at the same moment. It then stays (a lock dies with its
# holder) until the next line, so a late contender cannot find the winner already gone.
CONTENDER = """
import sys
from bot.state import LockHeld, StateStore

url, holder = sys.argv[1], sys.argv[2]
store = StateStore(url)
store.lock_info("r-race")
print("ready", flush=True)
sys.stdin.readline()
try:
    store.acquire_lock("r-race", holder=holder, info="change by " + holder)
except LockHeld as exc:
    print("held", exc.info.holder, flush=True)
else:
    print("won", flush=True)
sys.stdin.readline()
store.close()
"""


def test_four_processes_racing_for_one_router_one_wins(db_url: str, raw: Engine) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONTENDER, db_url, f"proc-{n}"],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line == "ready\n", (line, proc.stderr.read() if proc.stderr else "")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outcomes = []
        for proc in procs:
            assert proc.stdout is not None
            outcomes.append(proc.stdout.readline().split())
        for proc in procs:
            _, err = proc.communicate("end\n", timeout=120)
            assert proc.returncode == 0, err
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    winners = [f"proc-{n}" for n, outcome in enumerate(outcomes) if outcome == ["won"]]
    assert len(winners) == 1, outcomes
    assert sorted(map(tuple, outcomes)) == [("held", winners[0])] * 3 + [("won",)], outcomes
    with raw.connect() as conn:
        assert conn.execute(text("SELECT holder FROM router_locks WHERE router = 'r-race'")).scalar() == winners[0]


def test_router_activity_changes_with_every_lock_and_change_and_only_then(store: StateStore, clock: Any) -> None:
    quiet = store.router_activity("r1")
    assert quiet.lock is None and quiet.last_change is None and not quiet.busy
    assert store.router_activity("r1") == quiet  # reading changes nothing

    store.acquire_lock("r1", holder="change-1", info=INFO)
    locked = store.router_activity("r1")
    assert locked.busy and locked.lock is not None and locked.lock.holder == "change-1"
    change = store.create_change(router="r1", moves=[], requested_by="alice", source="cli")
    created = store.router_activity("r1")
    assert created.last_change is not None and created.last_change[1] == "planned"
    clock.advance(seconds=1)
    store.set_change_status(change.id, "applying")
    store.set_change_status(change.id, "done")
    store.release_lock("r1", holder="change-1")
    after = store.router_activity("r1")
    assert not after.busy and after.last_change is not None and after.last_change[1] == "done"
    assert after != quiet and after != created  # a whole change between two readings shows

    store.create_change(router="r2", moves=[], requested_by="alice", source="cli")
    assert store.router_activity("r1") == after  # another router's change is not this router's


def test_an_expired_lock_is_not_activity(store: StateStore, clock: Any) -> None:
    store.acquire_lock("r1", holder="dead-process", info=INFO, ttl=timedelta(seconds=10))
    clock.advance(seconds=11)
    assert not store.router_activity("r1").busy


HOLDER = """
import sys, time
from bot.state import StateStore
store = StateStore(sys.argv[1])
store.acquire_lock("edge1", holder="root@dead/1", info="change by root (cli)")
print("held", flush=True)
time.sleep(120)
"""


def _holding(db_url: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, db_url], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"  # bounded by pytest-timeout
    return proc


def test_a_lock_dies_with_its_holder(db_url: str) -> None:
    proc = _holding(db_url)
    store = StateStore(db_url)
    try:
        with pytest.raises(LockHeld):  # alive: its lock stands
            store.acquire_lock("edge1", holder="mine", info=INFO)
        proc.kill()
        proc.wait(timeout=30)
        replaced = None
        for _ in range(200):  # PostgreSQL ends the dead session just after the process, not at once
            try:
                replaced = store.acquire_lock("edge1", holder="mine", info=INFO)
                break
            except LockHeld:
                time.sleep(0.05)
        assert replaced is not None and replaced.holder == "root@dead/1"
        assert holder_of(store, "edge1") == "mine"
        store.release_lock("edge1", holder="root@dead/1")  # the dead holder's release changes nothing
        assert holder_of(store, "edge1") == "mine"
        with pytest.raises(LockLost):
            store.refresh_lock("edge1", holder="root@dead/1")
    finally:
        proc.kill()
        store.close()
