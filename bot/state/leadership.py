"""The leader's seat: what proves that one `lasthop serve` instance, and only one, leads.

Built on the database's own guarantees, never on clocks compared across machines:

- PostgreSQL (`PgSeat`): a session-level advisory lock, key (LEADER_NAMESPACE, 1), held on a
  connection of its own. The server drops it when the session ends: at once when the leader's
  process dies (the kernel closes its socket), and within `idle_session_timeout` when the leader
  is cut off, because a cut-off leader sends no heartbeat and its session goes idle. The leader
  stops acting sooner than that (bot/leader.py: a lease shorter than the idle timeout, counted
  from when its last good heartbeat was sent), so it has stood down before another can lead.
- SQLite (`FileSeat`): an exclusive flock on a file beside the database. SQLite is for one
  instance; a second `serve` on the same file is refused, not queued.
- In-memory SQLite (`SoloSeat`): one process by construction.

A transaction-mode pooler (PgBouncer with pool_mode=transaction) breaks session-level locks: the
lock is taken on one server session and the next statement may run on another. The seat notices
(the backend pid moves, or the lock is not on our backend) and says so (`PoolerSuspected`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, Engine, text

from bot.state.errors import StateError
from bot.state.liveness import LEADER_NAMESPACE
from bot.state.redact import redact

log = logging.getLogger("lasthop.leadership")

LEADER_KEY = 1
# Server side: a leader that sent nothing for this long is cut off; its session, and the lock, end.
IDLE_SESSION_TIMEOUT_MS = 3000
# Client side: unacknowledged bytes for this long mean the server is gone (no waiting for TCP's minutes).
TCP_USER_TIMEOUT_MS = 2000
SEAT_STATEMENT_TIMEOUT_MS = 2000
SEAT_KEEPALIVE = {"keepalives": 1, "keepalives_idle": 1, "keepalives_interval": 1, "keepalives_count": 2,
                  "tcp_user_timeout": TCP_USER_TIMEOUT_MS}
# Backend pids read in separate transactions: a transaction-mode pooler hands out others.
_POOLER_PROBES = 4

POOLER_ADVICE = ("session-level advisory locks do not survive a transaction-mode pooler (PgBouncer's "
                 "pool_mode=transaction): point state_url at PostgreSQL itself or at a session-mode pool")


class LeadershipLost(StateError):
    """The seat no longer holds leadership (the session ended, or the lock is not ours)."""


class PoolerSuspected(StateError):
    """Statements of one connection run on different server sessions: a transaction-mode pooler."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"{detail}; {POOLER_ADVICE}")


class SeatTaken(StateError):
    """SQLite: another `lasthop serve` already runs on this database."""


class Seat(Protocol):
    """One instance's hold on leadership. Not thread-safe: one thread (the election loop) uses it."""

    backend_pid: int | None

    def acquire(self) -> bool:
        """Try once, without waiting: whether we hold leadership now."""
        ...

    def beat(self) -> None:
        """A round trip proving we still hold it: LeadershipLost, PoolerSuspected or StateError if not."""
        ...

    def release(self) -> None:
        """Let go (closing the session ends the lock even if the unlock fails)."""
        ...


class SoloSeat:
    """In-memory SQLite: nobody else can share the database, so we always lead."""

    backend_pid: int | None = None

    def acquire(self) -> bool:
        return True

    def beat(self) -> None:
        pass

    def release(self) -> None:
        pass


class FileSeat:
    """SQLite on disk: an exclusive lock on `DB.serve.lock`, dropped by the kernel when we die."""

    backend_pid: int | None = None

    def __init__(self, database: str) -> None:
        self.database = database
        self.path = Path(f"{database}.serve.lock")
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            raise SeatTaken(
                f"another lasthop serve{who} already uses the SQLite state database {self.database}; "
                "SQLite is for one instance: stop it, or put every instance on PostgreSQL "
                "(state_url: postgresql://USER@HOST/DB)") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def beat(self) -> None:
        if self._fd is None:
            raise LeadershipLost("the SQLite serve lock is not held")

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing drops the flock


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).split()[0])
    except (OSError, ValueError, IndexError):
        return None


class PgSeat:
    """PostgreSQL: the advisory lock (LEADER_NAMESPACE, 1) on a session of its own."""

    def __init__(self, sessions: Engine) -> None:
        self._sessions = sessions  # NullPool, autocommit: each connection is one session
        self._conn: Connection | None = None
        self.backend_pid: int | None = None

    def acquire(self) -> bool:
        if self._conn is not None:
            return True
        conn = self._connect()
        try:
            pid = self._single_backend(conn)
            won = bool(conn.execute(text("SELECT pg_try_advisory_lock(:ns, :key)"),
                                    {"ns": LEADER_NAMESPACE, "key": LEADER_KEY}).scalar())
        except BaseException:
            _close(conn)
            raise
        if not won:
            _close(conn)  # a follower keeps no session open between tries: one connection each try
            return False
        self._conn, self.backend_pid = conn, pid
        try:
            self.beat()  # the lock is on the backend we will keep talking to
        except BaseException:
            self.release()
            raise
        return True

    def beat(self) -> None:
        conn = self._conn
        if conn is None:
            raise LeadershipLost("no leadership session")
        try:
            row = conn.execute(text(
                "SELECT pg_backend_pid(), EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                "AND classid = :ns AND objid = :key AND objsubid = 2 AND granted AND pid = pg_backend_pid())"),
                {"ns": LEADER_NAMESPACE, "key": LEADER_KEY}).one()
        except Exception as e:
            self.release()
            raise LeadershipLost(f"the leadership session failed: {_first_line(e)}") from e
        pid, held = int(row[0]), bool(row[1])
        if pid != self.backend_pid:
            self.release()
            raise PoolerSuspected(f"the leadership session moved from server process {self.backend_pid} to {pid}")
        if not held:
            self.release()
            raise LeadershipLost("the leadership lock is no longer held by this session")

    def release(self) -> None:
        conn, self._conn, self.backend_pid = self._conn, None, None
        if conn is not None:
            _close(conn)

    def _connect(self) -> Connection:
        try:
            return self._sessions.connect()
        except Exception as e:
            raise StateError(f"state database error: {_first_line(e)}") from e

    @staticmethod
    def _single_backend(conn: Connection) -> int:
        """Our server process, checked to stay the same across transactions (else: a pooler)."""
        pids = {int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one()) for _ in range(_POOLER_PROBES)}
        if len(pids) > 1:
            raise PoolerSuspected(f"one connection's statements ran in {len(pids)} server processes")
        return pids.pop()


def _close(conn: Connection) -> None:
    with contextlib.suppress(Exception):  # a broken session has already dropped its lock
        conn.close()


def _first_line(e: BaseException) -> str:
    orig = getattr(e, "orig", None) or e
    lines = str(orig).strip().splitlines()
    return redact(lines[0]) if lines else type(orig).__name__
