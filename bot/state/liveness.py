"""Whether a router lock's holder is still alive, so a lock dies with its holder instead of its TTL.

The lock row records who holds it (`ProcessIdentity`, on both backends, for messages and the
SQLite check). How death is proved depends on the backend:

- SQLite (one machine): the holder's process. A row written on this node names a pid, its start
  time and the boot it ran in; if no process with that pid and start time runs in this boot, the
  holder is dead. A recycled pid has another start time, a reboot another boot id.
- PostgreSQL (several machines): the holder's database session. Each holder keeps a session-level
  advisory lock on a dedicated connection for as long as it holds the router; its key is in the row.
  When the holder's process dies the kernel closes its socket and the server ends the session, which
  drops the advisory lock, whatever machine the holder ran on.

Anything we cannot tell (another node, another pid namespace, a row from an older lasthop without
an identity, a /proc we cannot read) counts as alive: the TTL lease decides then, as before.

Advisory lock key space (two-int form, which never overlaps the one-bigint form used for schema
creation): classid LOCK_NAMESPACE for router locks, LEADER_NAMESPACE for the leadership lock
(bot/state/leadership.py), EVENT_NAMESPACE (transaction-level, keyed by incident id) for incident
events written once. The objid of a router lock is random per acquisition, not derived from the router:
after a TTL takeover the old holder's session may still hold its key, and a per-router key would
then make the new, live holder look dead the moment the old session ended.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import socket
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, RowMapping, func, select

LOCK_NAMESPACE = 0x4C48_4C4B  # "LHLK": router-lock holder sessions
LEADER_NAMESPACE = 0x4C48_4C44  # "LHLD": the leadership lock
EVENT_NAMESPACE = 0x4C48_4556  # "LHEV": an incident event written once (an acknowledgement)
_KEY_TRIES = 3

_BOOT_ID = "/proc/sys/kernel/random/boot_id"


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """A process, named so that neither a recycled pid nor a reboot can pass for it."""

    node: str  # hostname
    pid: int
    started: int  # start time in clock ticks since boot: field 22 of /proc/PID/stat
    boot_id: str
    pid_ns: str  # "pid:[inode]": pids are only comparable inside one pid namespace

    def columns(self) -> dict[str, Any]:
        return {"node": self.node, "pid": self.pid, "started": self.started,
                "boot_id": self.boot_id, "pid_ns": self.pid_ns}

    @classmethod
    def of_row(cls, row: RowMapping) -> ProcessIdentity:
        return cls(str(row["node"]), int(row["pid"]), int(row["started"]), str(row["boot_id"]), str(row["pid_ns"]))

    def __str__(self) -> str:
        return f"{self.node}:{self.pid}" if self.node else ""


def current_process() -> ProcessIdentity:
    """This process. Read each time: a forked child is another process."""
    pid = os.getpid()
    stat = _stat(pid)
    return ProcessIdentity(socket.gethostname(), pid, stat[1] if stat else 0, _read(_BOOT_ID), _pid_ns())


def is_gone(holder: ProcessIdentity, me: ProcessIdentity | None = None) -> bool:
    """True only when `holder` is certainly not running; False when alive or when we cannot tell."""
    me = me or current_process()
    if not holder.node or holder.node != me.node or not holder.boot_id or not me.boot_id:
        return False
    if holder.boot_id != me.boot_id:
        return True  # this machine rebooted since: every process of that boot is gone
    if not holder.pid_ns or holder.pid_ns != me.pid_ns or holder.pid <= 0:
        return False
    stat = _stat(holder.pid)
    if stat is None or holder.started <= 0:
        # Unreadable (hidepid) but signalable: another user's, alive. With no start time recorded
        # a live pid may or may not be the holder's: only its absence is certain.
        return not _exists(holder.pid)
    state, started = stat
    return started != holder.started or state in ("Z", "X")  # a zombie holds nothing


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time) of `pid`, or None if /proc does not show it."""
    try:
        return parse_stat(_read(f"/proc/{pid}/stat", strict=True))
    except OSError:
        return None


def parse_stat(text: str) -> tuple[str, int] | None:
    """(state, start time) from the text of /proc/PID/stat (proc(5)), or None if it is not one."""
    close = text.rfind(")")
    if close < 0:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    fields = text[close + 1:].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno != errno.ESRCH
    return True


def _read(path: str, *, strict: bool = False) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        if strict:
            raise
        return ""


def _pid_ns() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


class Claim:
    """What a would-be holder brings to the lock row; `close()` gives up whatever keeps it alive."""

    def __init__(self, columns: dict[str, Any], session: Connection | None = None) -> None:
        self.columns = columns
        self.session = session

    def close(self) -> None:
        if self.session is not None:
            session, self.session = self.session, None
            # Closing the connection ends the session, which drops the advisory lock even if
            # an explicit unlock would fail.
            with contextlib.suppress(Exception):  # a broken session has already dropped its lock
                session.close()


class Liveness(Protocol):
    """The store's seam: how a lock's holder proves it is alive, and how others see that it is not."""

    def claim(self) -> Claim:
        """Our identity for a new lock row (taking whatever proves we are alive)."""
        ...

    def keep(self, router: str, holder: str, claim: Claim) -> None:
        """We won the router: keep the claim alive until `release`."""
        ...

    def release(self, router: str, holder: str) -> None:
        """We have let go of the router (or lost it): drop what kept the claim alive."""
        ...

    def gone(self, conn: Connection, row: RowMapping) -> bool:
        """Whether the row's holder is certainly dead; run inside the caller's transaction."""
        ...

    def close(self) -> None:
        ...


class ProcessLiveness:
    """SQLite: the holder is its process on this machine."""

    def claim(self) -> Claim:
        return Claim({**current_process().columns(), "session_key": None})

    def keep(self, router: str, holder: str, claim: Claim) -> None:
        pass

    def release(self, router: str, holder: str) -> None:
        pass

    def gone(self, conn: Connection, row: RowMapping) -> bool:
        return is_gone(ProcessIdentity.of_row(row))

    def close(self) -> None:
        pass


class SessionLiveness:
    """PostgreSQL: the holder is its database session, marked by an advisory lock it holds."""

    def __init__(self, sessions: Engine) -> None:
        # An engine whose connections are never pooled: each is one session, ended on close.
        self._sessions = sessions
        self._held: dict[tuple[str, str], Claim] = {}
        self._guard = threading.Lock()

    def claim(self) -> Claim:
        conn = self._sessions.connect()
        try:
            for _ in range(_KEY_TRIES):
                key = secrets.randbelow(2**31 - 1) + 1  # positive: pg_locks shows objid unsigned
                if conn.execute(select(func.pg_try_advisory_lock(LOCK_NAMESPACE, key))).scalar():
                    return Claim({**current_process().columns(), "session_key": key}, conn)
        except BaseException:
            conn.close()
            raise
        conn.close()
        raise RuntimeError("no free advisory lock key for the router lock")  # 2**31 keys: not in practice

    def keep(self, router: str, holder: str, claim: Claim) -> None:
        with self._guard:
            old = self._held.pop((router, holder), None)
            self._held[(router, holder)] = claim
        if old is not None:
            old.close()  # our own expired lock, taken over again by ourselves

    def release(self, router: str, holder: str) -> None:
        with self._guard:
            claim = self._held.pop((router, holder), None)
        if claim is not None:
            claim.close()

    def gone(self, conn: Connection, row: RowMapping) -> bool:
        key = row["session_key"]
        if key is None:
            return False  # written by a lasthop that held no session lock: the TTL decides
        # Shared: racers probing the same dead holder do not block each other (the row UPDATE picks
        # the winner), yet a live holder's exclusive session lock still makes the probe fail.
        return bool(conn.execute(select(func.pg_try_advisory_xact_lock_shared(LOCK_NAMESPACE, int(key)))).scalar())

    def close(self) -> None:
        with self._guard:
            claims, self._held = list(self._held.values()), {}
        for claim in claims:
            claim.close()
