"""Leader election on a real PostgreSQL: one leader at a time, a lost session demotes, and a leader
cut off from the database stands down before another can take over.

Short timings (heartbeat 0.2 s, lease 0.8 s, poll 0.1 s) keep the tests quick; the lease stays
below the seat's idle_session_timeout (3 s), as the election requires. Waits are bounded with
generous deadlines; what is asserted is an order of events, never how long something took.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from support.labtools import wait_for
from support.tcp_proxy import TcpProxy

from bot.leader import Election, NotLeader
from bot.state import LeaderRecord, StateError, StateStore
from bot.state.errors import Fenced
from bot.state.leadership import IDLE_SESSION_TIMEOUT_MS, PgSeat, PoolerSuspected, SeatTaken

pytestmark = pytest.mark.timeout(120)

HEARTBEAT, LEASE, POLL = 0.2, 0.8, 0.1
assert LEASE < IDLE_SESSION_TIMEOUT_MS / 1000
WAIT = 20.0  # deadline for anything the election should do within a few seconds


@dataclass
class Events:
    """What an Election told us, with monotonic times."""

    promoted: list[tuple[int, float]] = field(default_factory=list)
    demoted: list[tuple[str, float]] = field(default_factory=list)

    def promote(self, term: int) -> None:
        self.promoted.append((term, time.monotonic()))

    def demote(self, reason: str) -> None:
        self.demoted.append((reason, time.monotonic()))


@pytest.fixture
def admin(pg_url: str) -> Iterator[Engine]:
    engine = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


Elect = Callable[..., tuple[Election, Events]]


@pytest.fixture
def elect(pg_url: str) -> Iterator[Elect]:
    """elect(name, url=pg_url, start=True): an Election on its own store, stopped and closed at the end."""
    made: list[tuple[Election, StateStore]] = []

    def _elect(name: str, url: str | None = None, *, start: bool = True) -> tuple[Election, Events]:
        store = StateStore(url or pg_url)
        events = Events()
        election = Election(store, name, on_promote=events.promote, on_demote=events.demote,
                            heartbeat=HEARTBEAT, lease=LEASE, poll=POLL)
        made.append((election, store))
        if start:
            election.start()
        return election, events

    yield _elect
    for election, store in reversed(made):
        election.stop(timeout=10)
        store.close()


def proxied(pg_url: str) -> tuple[TcpProxy, str]:
    """A started TCP proxy in front of the test's PostgreSQL, and the store URL that goes through it."""
    direct = make_url(pg_url)
    proxy = TcpProxy((direct.host or "127.0.0.1", direct.port or 5432)).start()
    return proxy, direct.set(host="127.0.0.1", port=proxy.address[1]).render_as_string(hide_password=False)


def seat_pid(election: Election) -> int:
    seat = election._seat
    assert isinstance(seat, PgSeat) and seat.backend_pid is not None
    return seat.backend_pid


def watch_both(a: Election, b: Election) -> tuple[threading.Event, list[str]]:
    """Samples both elections until the event is set; records any moment both said they lead."""
    stop = threading.Event()
    both: list[str] = []

    def run() -> None:
        while not stop.is_set():
            if a.leading() and b.leading():
                both.append(f"both lead at {time.monotonic():.3f}")
            time.sleep(0.01)

    threading.Thread(target=run, daemon=True).start()
    return stop, both


def test_exactly_one_leads(elect: Elect) -> None:
    a, ea = elect("a", start=False)
    b, eb = elect("b", start=False)
    barrier = threading.Barrier(2)

    def start(election: Election) -> None:
        barrier.wait()  # both try for the seat at the same moment
        election.start()

    starters = [threading.Thread(target=start, args=(e,)) for e in (a, b)]
    for t in starters:
        t.start()
    for t in starters:
        t.join(WAIT)
    stop, both = watch_both(a, b)
    winner, events = wait_for(lambda: (a, ea) if a.leading() else (b, eb) if b.leading() else None, WAIT,
                              "a leader")
    loser = b if winner is a else a
    time.sleep(2 * LEASE)  # several heartbeats and polls: the roles hold
    stop.set()
    assert both == []
    assert winner.leading() and not loser.leading()
    wait_for(lambda: events.promoted, WAIT, "on_promote")
    record = winner.store.leader()
    assert record is not None and record.alive and record.instance == winner.instance
    assert [t for t, _ in events.promoted] == [record.term]
    assert winner.term() == record.term and winner.fence() == record.term
    role = winner.role()
    assert role.leading and role.term == record.term and role.since == record.since
    assert loser.term() is None and not loser.role().leading
    with pytest.raises(NotLeader):
        loser.fence()
    assert (ea.promoted if loser is a else eb.promoted) == []


def test_a_killed_session_demotes_and_the_other_takes_over(elect: Elect, admin: Engine) -> None:
    a, ea = elect("a")
    wait_for(a.leading, WAIT, "a to lead")
    b, eb = elect("b")
    first = a.term()
    assert first is not None
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": seat_pid(a)})
    wait_for(lambda: ea.demoted, WAIT, "a's on_demote")
    assert ea.demoted[0][0]  # a reason is given
    wait_for(lambda: eb.promoted, WAIT, "b to be promoted")
    assert eb.promoted[0][0] > first
    assert b.leading() and b.term() == eb.promoted[0][0]
    with pytest.raises(Fenced):
        a.fence()
    with pytest.raises(Fenced):
        a.store.fence(first)  # the store refuses the old term too, whatever the old leader thinks
    record = b.store.leader()
    assert record is not None and record.instance == "b" and record.alive


def test_stop_stands_down_and_the_other_takes_over(elect: Elect) -> None:
    a, ea = elect("a")
    wait_for(a.leading, WAIT, "a to lead")
    b, eb = elect("b")
    term = a.term()
    assert term is not None
    a.stop(timeout=10)
    assert not a.leading()
    assert [r for r, _ in ea.demoted] == ["this instance is stopping"]
    assert a.last_error == ""
    wait_for(lambda: eb.promoted, WAIT, "b to be promoted")
    assert eb.promoted[0][0] == term + 1
    # The stood-down record is replaced by b's; look at the history through b's term.
    record = b.store.leader()
    assert record is not None and (record.instance, record.term, record.until) == ("b", term + 1, None)


def test_stop_lets_go_of_the_seat_before_it_returns(elect: Elect, admin: Engine) -> None:
    """Even with the beat pool busy (a heartbeat stuck on a dead socket, say): stop() must not leave
    the lock to the server's idle timeout, or the next leader waits seconds for nothing."""
    a, _ = elect("a")
    wait_for(a.leading, WAIT, "a to lead")
    pid = seat_pid(a)
    busy = threading.Event()
    for _ in range(2):  # both workers of the pool
        a._beats.submit(busy.wait, 10)
    try:
        a.stop(timeout=10)
        with admin.connect() as conn:
            held = conn.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = :pid"),
                                {"pid": pid}).scalar()
        assert held == 0
    finally:
        busy.set()


def test_stop_records_until_when_nobody_takes_over(elect: Elect) -> None:
    a, _ = elect("a")
    wait_for(a.leading, WAIT, "a to lead")
    term = a.term()
    a.stop(timeout=10)
    record = a.store.leader()
    assert record is not None and record.term == term
    assert record.until is not None and record.reason == "this instance is stopping" and not record.alive


def test_a_leader_cut_off_stands_down_before_another_leads(elect: Elect, pg_url: str) -> None:
    """The DB cut: a's packets stop both ways, no socket closes. a's heartbeat hangs; its lease ends
    and it demotes; only when the server ends a's idle session (later) can b win."""
    proxy, via = proxied(pg_url)
    try:
        a, ea = elect("a", via)
        wait_for(a.leading, WAIT, "a to lead")
        b, eb = elect("b")
        stop, both = watch_both(a, b)
        time.sleep(LEASE)
        assert not b.leading()
        proxy.blackhole()
        wait_for(lambda: eb.promoted, WAIT, "b to be promoted")
        wait_for(lambda: ea.demoted, WAIT, "a's on_demote")
        stop.set()
        assert both == []
        (demoted_reason, demoted_at), (promoted_term, promoted_at) = ea.demoted[0], eb.promoted[0]
        assert "lease" in demoted_reason
        assert demoted_at < promoted_at
        assert not a.leading()
        with pytest.raises(NotLeader):
            a.fence()

        # With the link back, a is a follower that sees b lead (its stuck calls get their answers now).
        proxy.resume()
        record = wait_for(lambda: readable_leader(a.store), WAIT, "a to read the store again")
        assert (record.instance, record.term, record.alive) == ("b", promoted_term, True)
        time.sleep(2 * LEASE)  # a polls the seat a few times, and loses each time
        assert not a.leading() and b.leading() and b.term() == promoted_term
        assert [t for t, _ in ea.promoted] == [1] and len(ea.demoted) == 1
    finally:
        proxy.stop()


def readable_leader(store: StateStore) -> LeaderRecord | None:
    try:
        return store.leader()
    except StateError:
        return None


def test_on_sqlite_one_election_leads_and_a_second_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/lasthop.db"
    with StateStore(url) as one, StateStore(url) as two:
        events = Events()
        first = Election(one, "a", on_promote=events.promote, on_demote=events.demote,
                         heartbeat=HEARTBEAT, lease=LEASE, poll=POLL)
        first.start()
        try:
            assert first.leading()
            wait_for(lambda: events.promoted, WAIT, "on_promote")
            assert [t for t, _ in events.promoted] == [first.term()] and first.fence() == first.term()
            time.sleep(2 * LEASE)  # heartbeats keep the lease
            assert first.leading()
            second = Election(two, "b", on_promote=events.promote, on_demote=events.demote,
                              heartbeat=HEARTBEAT, lease=LEASE, poll=POLL)
            with pytest.raises(SeatTaken, match="PostgreSQL"):
                second.start()
        finally:
            first.stop(timeout=10)
        assert [r for r, _ in events.demoted] == ["this instance is stopping"]
        record = two.leader()
        assert record is not None and record.until is not None and not record.alive


def test_stop_returns_when_cut_off_from_the_database(elect: Elect, pg_url: str) -> None:
    """A leader told to stop while its link is silent still stops (its record waits for the link)."""
    proxy, via = proxied(pg_url)
    try:
        a, ea = elect("a", via)
        wait_for(a.leading, WAIT, "a to lead")
        proxy.blackhole()
        stopper = threading.Thread(target=a.stop, kwargs={"timeout": 10}, daemon=True)
        stopper.start()
        stopper.join(60)
        assert not stopper.is_alive(), "stop() hung on the silent link"
        assert not a.leading() and len(ea.demoted) == 1
    finally:
        proxy.stop()


def test_a_lease_as_long_as_the_idle_timeout_is_refused(pg_url: str, tmp_path: Path) -> None:
    idle = IDLE_SESSION_TIMEOUT_MS / 1000
    with StateStore(pg_url) as store:
        with pytest.raises(ValueError, match="idle timeout"):
            Election(store, "a", on_promote=print, on_demote=print, heartbeat=0.5, lease=idle)
        Election(store, "a", on_promote=print, on_demote=print, heartbeat=0.5, lease=idle - 0.5)
    with pytest.raises(ValueError, match="shorter than the lease"):
        Election(store, "a", on_promote=print, on_demote=print, heartbeat=1.0, lease=1.0)
    with StateStore(f"sqlite:///{tmp_path}/lasthop.db") as solo:  # no server to end the session: any lease
        Election(solo, "a", on_promote=print, on_demote=print, heartbeat=0.5, lease=2 * idle)


def test_behind_a_transaction_pooler_nobody_leads_and_the_error_says_why(
        elect: Elect, monkeypatch: pytest.MonkeyPatch) -> None:
    def moved(_seat: object, _conn: object) -> int:
        raise PoolerSuspected("one connection's statements ran in 2 server processes")

    monkeypatch.setattr(PgSeat, "_not_pooled", moved)
    a, ea = elect("a", start=False)
    with pytest.raises(PoolerSuspected, match="pool_mode=transaction"):
        a.start()  # what no retry mends stops serve at once, with this one line
    assert not a.leading() and ea.promoted == []
    assert a.store.leader() is None


def test_on_sqlite_a_late_heartbeat_never_ends_the_term(tmp_path: Path) -> None:
    """SQLite's seat is this process's file lock: only its exit lets another lead, so no lease runs out."""
    clock = [0.0]
    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    events = Events()
    election = Election(store, "solo", on_promote=events.promote, on_demote=events.demote,
                        heartbeat=HEARTBEAT, lease=LEASE, poll=POLL, clock=lambda: clock[0])
    try:
        election.start()
        wait_for(lambda: events.promoted, 10, "the only instance leading")
        clock[0] += 3600.0  # an hour without a heartbeat: a machine too busy to run this thread
        assert election.leading() and election.term() == events.promoted[0][0]
        assert events.demoted == []
    finally:
        election.stop(timeout=10)
        store.close()
