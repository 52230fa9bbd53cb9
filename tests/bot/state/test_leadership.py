"""Leadership: the seats (advisory lock on PostgreSQL, flock on SQLite) and the store's terms and fences.

PostgreSQL seats are tested against what the server really does: a session ended by
pg_terminate_backend or by idle_session_timeout drops the lock, and a lock taken from
the seat's session behind its back is noticed at the next heartbeat.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from support.labtools import wait_for

from bot.state import StateStore
from bot.state.errors import Fenced
from bot.state.leadership import (
    IDLE_SESSION_TIMEOUT_MS,
    LEADER_KEY,
    FileSeat,
    LeadershipLost,
    PgSeat,
    PoolerSuspected,
    SeatTaken,
    SoloSeat,
)
from bot.state.liveness import LEADER_NAMESPACE

pytestmark = pytest.mark.timeout(120)

PG = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
REPO = Path(__file__).resolve().parents[3]

MOVE = {"prefix": "198.51.100.32/27", "old": "192.0.2.2", "new": "192.0.2.3"}


@pytest.fixture
def admin(db_url: str) -> Iterator[Engine]:
    """An autocommit engine on the test database: what an operator (or the server) does behind our back."""
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture
def seats(store: StateStore) -> Iterator[Callable[[], Any]]:
    """New seats on the store's database; all released at the end."""
    made: list[Any] = []

    def _seat() -> Any:
        seat = store.seat()
        made.append(seat)
        return seat

    yield _seat
    for seat in made:
        seat.release()


def terminate(admin: Engine, backend_pid: int | None) -> None:
    assert backend_pid is not None
    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend_pid}).scalar() is True


def lock_holders(admin: Engine) -> set[int]:
    """Who holds the leader lock in the test database (advisory locks are per database: other test
    runs on the same server hold theirs)."""
    with admin.connect() as conn:
        rows = conn.execute(text(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = :ns AND objid = :key "
            "AND objsubid = 2 AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
            {"ns": LEADER_NAMESPACE, "key": LEADER_KEY}).all()
    return {int(r[0]) for r in rows}


# -------------------------------------------------------------------- PostgreSQL seats


@PG
def test_one_seat_wins_and_the_other_after_it_lets_go(seats: Callable[[], PgSeat], admin: Engine) -> None:
    first, second = seats(), seats()
    assert isinstance(first, PgSeat)
    assert first.acquire() is True
    assert second.acquire() is False
    assert second.backend_pid is None  # a follower keeps no session between tries
    assert lock_holders(admin) == {first.backend_pid}
    first.beat()
    assert first.acquire() is True  # held already: no second session

    first.release()
    assert first.backend_pid is None
    with pytest.raises(LeadershipLost):
        first.beat()
    assert second.acquire() is True
    second.beat()
    assert lock_holders(admin) == {second.backend_pid}


@PG
def test_a_terminated_session_loses_the_seat(seats: Callable[[], PgSeat], admin: Engine) -> None:
    first, second = seats(), seats()
    assert first.acquire()
    terminate(admin, first.backend_pid)
    wait_for(lambda: not lock_holders(admin), 10, "the server to drop the ended session's lock")
    with pytest.raises(LeadershipLost, match="session failed"):
        first.beat()
    assert first.backend_pid is None
    assert second.acquire() is True
    second.beat()


@PG
def test_an_idle_session_is_ended_by_the_server(seats: Callable[[], PgSeat], admin: Engine) -> None:
    """A leader that sends nothing (cut off) loses the lock within idle_session_timeout, server side."""
    first, second = seats(), seats()
    assert first.acquire()
    held_by = first.backend_pid
    assert lock_holders(admin) == {held_by}
    # No heartbeat from here on. Generous deadline: the timeout is 3 s, a busy machine may take longer.
    wait_for(lambda: held_by not in lock_holders(admin), 10 * IDLE_SESSION_TIMEOUT_MS / 1000,
             "idle_session_timeout to end the seat's session")
    with pytest.raises(LeadershipLost):
        first.beat()
    assert second.acquire() is True


@PG
def test_an_unlock_behind_the_seats_back_is_noticed(seats: Callable[[], PgSeat]) -> None:
    """Stands in for a pooler that ran the lock on another server session: ours no longer holds it."""
    first, second = seats(), seats()
    assert first.acquire()
    conn = first._conn
    assert conn is not None
    assert conn.execute(text("SELECT pg_advisory_unlock(:ns, :key)"),
                        {"ns": LEADER_NAMESPACE, "key": LEADER_KEY}).scalar() is True
    with pytest.raises(LeadershipLost, match="no longer held"):
        first.beat()
    assert first._conn is None  # the seat let its session go
    assert second.acquire() is True


@PG
def test_a_moved_backend_is_a_pooler(seats: Callable[[], PgSeat], admin: Engine) -> None:
    first, second = seats(), seats()
    assert first.acquire()
    assert first.backend_pid is not None
    # What a transaction-mode pooler does: the next statement runs in another server process.
    first.backend_pid += 1
    with pytest.raises(PoolerSuspected, match="pool_mode=transaction"):
        first.beat()
    wait_for(lambda: not lock_holders(admin), 10, "the released session's lock to go")
    assert second.acquire() is True


class _Conn:
    """What one client connection sees: the server process of each statement, in turn."""

    def __init__(self, *pids: int) -> None:
        self.pids = iter(pids)
        self.closed = False

    def execute(self, *_: Any) -> Any:
        pid = next(self.pids)
        return type("R", (), {"scalar_one": lambda _self: pid})()

    def close(self) -> None:
        self.closed = True


class _Sessions:
    def __init__(self, other: _Conn) -> None:
        self.other = other

    def connect(self) -> _Conn:
        return self.other


@pytest.mark.parametrize(("mine", "theirs", "says"), [
    ((101, 101, 202, 101), (301, 302, 303, 304), "ran in 2 server processes"),  # one connection moves
    ((101, 101, 101, 101), (301, 101, 303, 304), "two connections were served by one server process"),
])
def test_statements_in_several_backends_are_a_pooler(mine: tuple[int, ...], theirs: tuple[int, ...],
                                                     says: str) -> None:
    other = _Conn(*theirs)
    seat = PgSeat(_Sessions(other))  # type: ignore[arg-type]
    with pytest.raises(PoolerSuspected, match=says):
        seat._not_pooled(_Conn(*mine))  # type: ignore[arg-type]
    assert other.closed  # the probe's second connection is not left open


@PG
def test_the_seat_session_is_configured_for_quick_loss(seats: Callable[[], PgSeat]) -> None:
    seat = seats()
    assert seat.acquire()
    conn = seat._conn
    assert conn is not None
    assert conn.execute(text("SHOW idle_session_timeout")).scalar() == f"{IDLE_SESSION_TIMEOUT_MS // 1000}s"
    assert conn.execute(text("SHOW tcp_user_timeout")).scalar() in ("0", "2s")  # server side; client sets its own
    assert conn.execute(text("SELECT current_setting('application_name')")).scalar() == "lasthop leader"


# -------------------------------------------------------------------- SQLite seats


@SQLITE
def test_a_second_file_seat_is_refused_then_gets_it(db_url: str, store: StateStore) -> None:
    database = db_url.removeprefix("sqlite:///")
    first, second = store.seat(), store.seat()
    assert isinstance(first, FileSeat) and isinstance(second, FileSeat)
    assert first.acquire() is True
    with pytest.raises(SeatTaken) as taken:
        second.acquire()
    message = str(taken.value)
    assert f"pid {os.getpid()}" in message
    assert f"SQLite state database {Path(database).resolve()};" in message
    assert "PostgreSQL" in message
    with pytest.raises(LeadershipLost):
        second.beat()
    first.beat()

    first.release()
    assert second.acquire() is True
    second.beat()
    with pytest.raises(LeadershipLost):
        first.beat()


@SQLITE
def test_a_dead_holder_releases_the_file_seat(db_url: str, store: StateStore) -> None:
    database = str(Path(db_url.removeprefix("sqlite:///")).resolve())
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from bot.state.leadership import FileSeat\n"
         "assert FileSeat(sys.argv[1]).acquire()\n"
         "print('held', flush=True)\n"
         "time.sleep(120)\n", database],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        seat = store.seat()
        with pytest.raises(SeatTaken, match=f"pid {holder.pid}"):
            seat.acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
        assert seat.acquire() is True
        seat.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(30)
        if holder.stdout is not None:
            holder.stdout.close()


def test_in_memory_sqlite_has_a_solo_seat() -> None:
    with StateStore("sqlite:///:memory:") as store:
        seat = store.seat()
        assert isinstance(seat, SoloSeat) and not store.shared
        assert seat.acquire() is True
        seat.beat()
        assert store.take_leadership("solo", seat) == 1
        assert store.leader() is not None


# -------------------------------------------------------------------- the store: terms and fences


def lead(store: StateStore, instance: str) -> tuple[int, Any]:
    seat = store.seat()
    assert seat.acquire()
    return store.take_leadership(instance, seat), seat


def test_terms_strictly_increase_across_instances(open_store: Callable[..., StateStore]) -> None:
    a, b = open_store(), open_store()
    terms = []
    for store, name in ((a, "a"), (b, "b"), (a, "a"), (b, "b")):
        term, seat = lead(store, name)
        terms.append(term)
        assert (leader := store.leader()) is not None and (leader.instance, leader.term) == (name, term)
        seat.release()
    assert terms == [1, 2, 3, 4]


def test_leader_says_who_since_when_and_alive(store: StateStore, clock: Any) -> None:
    assert store.leader() is None
    term, seat = lead(store, "serve-a")
    leader = store.leader()
    assert leader is not None
    assert (leader.instance, leader.term, leader.pid) == ("serve-a", term, os.getpid())
    assert leader.since == clock.now and leader.until is None and leader.reason == ""
    assert leader.alive is True
    seat.release()


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_a_leader_that_ended_is_not_alive(db_url: str, store: StateStore) -> None:
    """Another process leads and exits without standing down: its session (PG) or process (SQLite) is gone."""
    done = subprocess.run(
        [sys.executable, "-c",
         "import sys\n"
         "from bot.state import StateStore\n"
         "s = StateStore(sys.argv[1]); seat = s.seat(); assert seat.acquire()\n"
         "print(s.take_leadership('other', seat))\n", db_url],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert done.returncode == 0, done.stderr
    # PostgreSQL ends the session of an exited client at once, but pg_locks may show it a moment longer.
    leader = wait_for(lambda: (r := store.leader()) is not None and not r.alive and r, 10,
                      "the exited leader to be not alive")
    assert leader.instance == "other" and leader.term == int(done.stdout) and leader.until is None


@PG
def test_leader_is_not_alive_once_its_session_ends(store: StateStore, admin: Engine) -> None:
    term, seat = lead(store, "a")
    assert (r := store.leader()) is not None and r.alive
    terminate(admin, seat.backend_pid)
    wait_for(lambda: (r := store.leader()) is not None and not r.alive, 10, "the leader to be not alive")
    with pytest.raises(Fenced) as fenced:
        store.fence(term)  # no new leader yet, but this term's session ended
    assert fenced.value.term == term and fenced.value.current is None
    seat.release()


def test_stand_down_only_for_its_own_term(open_store: Callable[..., StateStore], clock: Any) -> None:
    a, b = open_store(), open_store()
    old, seat = lead(a, "a")
    seat.release()
    new, seat_b = lead(b, "b")
    a.stand_down(old, "late news from the old leader")
    leader = b.leader()
    assert leader is not None and (leader.term, leader.until, leader.reason) == (new, None, "")

    clock.advance(seconds=5)
    b.stand_down(new, "this instance is stopping")
    leader = a.leader()
    assert leader is not None and leader.term == new
    assert leader.until == clock.now and leader.reason == "this instance is stopping"
    assert leader.alive is False  # stood down: not leading, even with the seat still held
    clock.advance(seconds=5)
    b.stand_down(new, "again")  # the first reason stays
    assert (leader := a.leader()) is not None and leader.reason == "this instance is stopping"
    seat_b.release()


def test_fence_passes_only_for_the_leading_term(open_store: Callable[..., StateStore]) -> None:
    a, b = open_store(), open_store()
    with pytest.raises(Fenced):
        a.fence(1)  # nobody ever led
    old, seat = lead(a, "a")
    a.fence(old)
    seat.release()
    new, seat_b = lead(b, "b")
    b.fence(new)
    a.fence(new)  # any instance may check
    with pytest.raises(Fenced) as fenced:
        a.fence(old)
    assert (fenced.value.term, fenced.value.current) == (old, new)
    assert f"term {new} leads now" in str(fenced.value)
    b.stand_down(new, "stopping")
    with pytest.raises(Fenced):
        b.fence(new)
    seat_b.release()


def test_a_stale_term_changes_nothing(open_store: Callable[..., StateStore]) -> None:
    a, b = open_store(), open_store()
    old, seat = lead(a, "a")
    change = a.create_change(router="r1", moves=[MOVE], requested_by="auto", source="auto")
    seat.release()
    new, seat_b = lead(b, "b")
    with pytest.raises(Fenced):
        a.set_change_status(change.id, "applying", term=old)
    assert (got := a.get_change(change.id)) is not None and got.status == "planned"
    assert got.updated_at == change.updated_at
    moved = b.set_change_status(change.id, "applying", term=new)
    assert moved.status == "applying"
    seat_b.release()


@PG
def test_a_term_whose_session_ended_changes_nothing(store: StateStore, admin: Engine) -> None:
    term, seat = lead(store, "a")
    change = store.create_change(router="r1", moves=[MOVE], requested_by="auto", source="auto")
    terminate(admin, seat.backend_pid)
    wait_for(lambda: not lock_holders(admin), 10, "the ended session's lock to go")
    with pytest.raises(Fenced):
        store.set_change_status(change.id, "applying", term=term)
    assert (got := store.get_change(change.id)) is not None and got.status == "planned"
    seat.release()


def test_published_health_is_the_given_terms_only(open_store: Callable[..., StateStore]) -> None:
    a, b = open_store(), open_store()
    a.publish_health(1, {("web", "h1"): "up", ("web", "h2"): "down", ("dns", "h1"): "up"})
    assert a.published_health(1) == {("web", "h1"): "up", ("web", "h2"): "down", ("dns", "h1"): "up"}
    b.publish_health(2, {("web", "h1"): "down"})
    assert b.published_health(2) == {("web", "h1"): "down"}
    assert a.published_health(1) == {("web", "h2"): "down", ("dns", "h1"): "up"}  # its web/h1 was replaced
    assert a.published_health(3) == {}
    # A stale leader that has not heard yet does not overwrite what the newer term published.
    a.publish_health(1, {("web", "h1"): "up", ("dns", "h1"): "down"})
    assert b.published_health(2) == {("web", "h1"): "down"}
    assert a.published_health(1) == {("web", "h2"): "down", ("dns", "h1"): "down"}
    b.publish_health(2, {})  # nothing to say: nothing changes
    assert b.published_health(2) == {("web", "h1"): "down"}


def test_settings_roundtrip(open_store: Callable[..., StateStore], clock: Any) -> None:
    a, b = open_store(), open_store()
    assert a.setting("auto_failover") is None
    a.set_setting("auto_failover", False, by="alice")
    assert b.setting("auto_failover") is False
    b.set_setting("auto_failover", True, by="bob")
    assert a.setting("auto_failover") is True
    a.set_setting("limits", {"per_hour": 3, "hosts": ["h1", "h2"]})
    assert b.setting("limits") == {"per_hour": 3, "hosts": ["h1", "h2"]}


def test_last_change_at_sees_other_instances(open_store: Callable[..., StateStore], clock: Any) -> None:
    a, b = open_store(), open_store()
    assert a.last_change_at() is None
    change = b.create_change(router="r1", moves=[MOVE], requested_by="alice", source="slack")
    assert a.last_change_at() == change.updated_at
    clock.advance(seconds=3)
    b.set_change_status(change.id, "applying")
    assert a.last_change_at() == clock.now


def test_a_pg_store_is_shared_and_sqlite_is_not(db_url: str, store: StateStore) -> None:
    assert store.shared is db_url.startswith("postgresql")
    seat = store.seat()
    assert isinstance(seat, PgSeat if store.shared else FileSeat)
    seat.release()


