"""Router locks: one change per router at a time, across threads and processes."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text, update

from bot.state import LockHeld, LockInfo, LockLost, StateStore
from bot.state.liveness import ProcessIdentity, current_process, parse_stat
from bot.state.schema import router_locks

REPO = Path(__file__).resolve().parents[3]
INFO = "change by alice (slack)"
ME = f"{socket.gethostname()}:{os.getpid()}"  # the process a lock taken in this test names


def holder_of(store: StateStore, router: str) -> str | None:
    info = store.lock_info(router)
    return info.holder if info is not None else None


def start_together(procs: list[subprocess.Popen[str]]) -> None:
    """Wait until every process says it is ready, then let them all go at once."""
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line == "ready\n", (line, proc.stderr.read() if proc.stderr else "")
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()


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
import threading
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
        start_together(procs)
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
        # What the engine tells people of the dead holder (bot/engine/transaction.py took_over), on both backends.
        assert (replaced.info, replaced.process) == ("change by root (cli)", f"{socket.gethostname()}:{proc.pid}")
        assert holder_of(store, "edge1") == "mine"
        store.release_lock("edge1", holder="root@dead/1")  # the dead holder's release changes nothing
        assert holder_of(store, "edge1") == "mine"
        with pytest.raises(LockLost):
            store.refresh_lock("edge1", holder="root@dead/1")
    finally:
        proc.kill()
        store.close()


# -- racers -------------------------------------------------------------------------------------------

RACERS = 8


def test_racers_each_round_exactly_one_wins_and_no_two_ever_hold_the_router(
    open_store: Callable[..., StateStore],
) -> None:
    """Eight threads, each with a store of its own (as eight processes would have), race for one
    router round after round; the winner keeps it until every racer has tried, then lets go."""
    stores = [open_store() for _ in range(RACERS)]
    rounds = 5
    start, tried, done = (threading.Barrier(RACERS) for _ in range(3))
    guard = threading.Lock()
    inside = 0
    most_inside = 0
    results: list[list[object]] = [[None] * RACERS for _ in range(rounds)]

    def racer(i: int) -> None:
        nonlocal inside, most_inside
        me = f"racer-{i}"
        for n in range(rounds):
            start.wait()
            try:
                stores[i].acquire_lock("r1", holder=me, info=f"change by {me}")
                won = True
            except Exception as exc:  # LockHeld is expected; anything else is reported below
                results[n][i] = exc
                won = False
            if won:
                with guard:
                    inside += 1
                    most_inside = max(most_inside, inside)
                results[n][i] = holder_of(stores[i], "r1")  # the store agrees it is ours
            tried.wait()  # every racer has tried while the winner held it
            if won:
                with guard:
                    inside -= 1
                stores[i].release_lock("r1", holder=me)
            done.wait()

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert most_inside == 1
    for n, outcome in enumerate(results):
        winners = [i for i, r in enumerate(outcome) if isinstance(r, str)]
        assert len(winners) == 1, (n, outcome)
        (w,) = winners
        assert outcome[w] == f"racer-{w}"
        assert all(isinstance(r, LockHeld) and r.info.holder == f"racer-{w}" for r in outcome if r is not outcome[w])
    assert stores[0].lock_info("r1") is None


# Each process takes and gives back one router as often as it can for a fixed number of tries.
# Inside, it makes a marker file that must not exist yet: two holders at once would find it there.
CHURNER = """
import os, sys
from bot.state import LockHeld, StateError, StateStore

url, holder, marker, tries = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
store = StateStore(url)
store.lock_info("r-churn")
print("ready", flush=True)
sys.stdin.readline()
wins = overlaps = strangers = busy = 0
for _ in range(tries):
    try:
        store.acquire_lock("r-churn", holder=holder, info="change by " + holder)
    except LockHeld:
        continue
    except StateError:  # "kept changing hands": allowed under churn, never two holders
        busy += 1
        continue
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        overlaps += 1
    else:
        os.close(fd)
        wins += 1
        info = store.lock_info("r-churn")
        if info is None or info.holder != holder:
            strangers += 1
        os.unlink(marker)
    store.release_lock("r-churn", holder=holder)
print(wins, overlaps, strangers, busy, flush=True)
store.close()
"""


def test_processes_churning_one_router_never_hold_it_together(db_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    marker = tmp_path / "inside"
    tries = 25
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHURNER, db_url, f"proc-{n}", str(marker), str(tries)],
            cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for n in range(RACERS)
    ]
    try:
        start_together(procs)
        counts = []
        for proc in procs:
            out, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err
            counts.append(tuple(int(n) for n in out.split()))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert all(overlaps == 0 and strangers == 0 for _, overlaps, strangers, _ in counts), counts
    assert sum(wins for wins, *_ in counts) >= 1, counts
    assert not marker.exists()


# -- who is alive: crafted rows on SQLite -------------------------------------------------------------


@pytest.fixture
def sqlite_store(tmp_path: Path, clock: Any) -> Iterator[tuple[StateStore, Engine]]:
    """A SQLite store (the backend that judges holders by their process) and a raw engine on its file."""
    url = f"sqlite:///{tmp_path}/state.db"
    store = StateStore(url, clock=clock)
    engine = create_engine(url)
    yield store, engine
    engine.dispose()
    store.close()


@pytest.fixture
def other_process() -> Iterator[ProcessIdentity]:
    """Another live process on this machine, as a lock row would name it."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        with open(f"/proc/{child.pid}/stat") as f:
            stat = parse_stat(f.read())
        assert stat is not None
        yield dataclasses.replace(current_process(), pid=child.pid, started=stat[1])
    finally:
        child.kill()
        child.wait()


def held_by(store: StateStore, raw: Engine, holder: ProcessIdentity, router: str = "r1") -> None:
    """`router` locked by bob's change, the row naming `holder` as bob's process."""
    store.acquire_lock(router, holder="bob@elsewhere/1", info="change by bob (slack)")
    with raw.begin() as conn:
        conn.execute(update(router_locks).where(router_locks.c.router == router).values(holder.columns()))


# Above the kernel's ceiling for pid_max (2**22): certainly no process has it.
NO_SUCH_PID = 2**22 + 1


@pytest.mark.parametrize(("why", "recycled"), [
    ("its pid now runs another process, started later", lambda p: dataclasses.replace(p, started=p.started - 1)),
    ("its pid now runs another process, started earlier", lambda p: dataclasses.replace(p, started=p.started + 1)),
    ("the machine has rebooted since", lambda p: dataclasses.replace(p, boot_id="0" * 36)),
])
def test_a_row_naming_a_live_pid_of_another_process_or_boot_is_taken_over(
    sqlite_store: tuple[StateStore, Engine], other_process: ProcessIdentity, why: str,
    recycled: Callable[[ProcessIdentity], ProcessIdentity],
) -> None:
    store, raw = sqlite_store
    dead = recycled(other_process)
    held_by(store, raw, dead)
    assert store.lock_info("r1") is None and not store.router_activity("r1").busy, why
    replaced = store.acquire_lock("r1", holder="alice@here/2", info=INFO)
    assert replaced is not None and replaced.holder == "bob@elsewhere/1", why
    assert replaced.process == f"{dead.node}:{dead.pid}"
    assert holder_of(store, "r1") == "alice@here/2"


@pytest.mark.parametrize(("why", "change"), [
    ("its process runs, started when the row says", {}),
    ("another node: its pids mean nothing here", {"node": "edge9", "pid": NO_SUCH_PID}),
    ("another node, even one whose boot is not ours", {"node": "edge9", "boot_id": "0" * 36}),
    ("another pid namespace", {"pid_ns": "pid:[1]", "pid": NO_SUCH_PID}),
    ("written by a lasthop before schema 3", {"node": "", "pid": 0, "started": 0, "boot_id": "", "pid_ns": ""}),
])
def test_a_row_whose_holder_may_be_alive_is_refused(
    sqlite_store: tuple[StateStore, Engine], other_process: ProcessIdentity, clock: Any, why: str,
    change: dict[str, Any],
) -> None:
    store, raw = sqlite_store
    held_by(store, raw, dataclasses.replace(other_process, **change), router="r1")
    with pytest.raises(LockHeld, match="r1 is busy: change by bob") as caught:
        store.acquire_lock("r1", holder="alice@here/2", info=INFO)
    assert caught.value.info.holder == "bob@elsewhere/1", why
    assert store.router_activity("r1").busy
    clock.advance(minutes=5)  # the lease runs out: then it is taken as any expired lock is
    assert store.acquire_lock("r1", holder="alice@here/2", info=INFO) is None
    assert holder_of(store, "r1") == "alice@here/2"
