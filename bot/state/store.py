"""The durable state of lasthop: audit trail, changes, idempotency keys, approvals,
router locks and incidents, in SQLite (processes on one machine) or PostgreSQL (several machines).

Everything that must hold across threads and processes is decided by the database
in one statement: a primary-key conflict (an upsert whose RETURNING row says
whether we won; drivers do not report INSERT rowcounts reliably), or a
conditional UPDATE whose rowcount says who won. Nothing here reads a row,
decides in Python, and writes it back.

The clock is injectable, and all expiry comparisons use it rather than the
database's clock, so tests can move time and every backend agrees on "now".
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from ipaddress import ip_network
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    RowMapping,
    Table,
    Text,
    create_engine,
    event,
    func,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy import delete as sa_delete
from sqlalchemy import update as sa_update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError
from sqlalchemy.pool import NullPool, StaticPool

from bot.state import schema as t
from bot.state.errors import (
    ApprovalClosed,
    BadTransition,
    DuplicateRequest,
    Fenced,
    LockHeld,
    LockLost,
    NotFound,
    StateError,
)
from bot.state.leadership import (
    LEADER_KEY,
    SEAT_KEEPALIVE,
    SEAT_STATEMENT_TIMEOUT_MS,
    FileSeat,
    PgSeat,
    Seat,
    SoloSeat,
)
from bot.state.liveness import (
    EVENT_NAMESPACE,
    LEADER_NAMESPACE,
    Liveness,
    ProcessIdentity,
    ProcessLiveness,
    SessionLiveness,
    current_process,
    is_gone,
)
from bot.state.records import (
    ApprovalRecord,
    AuditRecord,
    ChangeRecord,
    IncidentEvent,
    IncidentRecord,
    LeaderRecord,
    LockInfo,
    MaintenanceRecord,
    RouterActivity,
)
from bot.state.redact import redact
from bot.state.transitions import CHANGE_STATUSES, allowed_from

# A change in one of these when its process died left a router in an unknown state.
IN_FLIGHT = ("applying", "verifying")
# Not ended: what reconcile looks at (planned by a process that died, in flight, or waiting for a person).
UNSETTLED = ("planned", *IN_FLIGHT, "needs_human")
APPROVAL_DECISIONS = frozenset({"approved", "denied"})

CONNECT_TIMEOUT_S = 5
# A router lock's own session (bot/state/liveness.py) idles for a whole change: probe the peer so a
# vanished one is noticed (about 60 s here) rather than kept for the OS default of two hours.
SESSION_KEEPALIVE = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
STATEMENT_TIMEOUT = "10s"
POOL_KEEPALIVE = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3,
                  "tcp_user_timeout": 10_000}
BUSY_TIMEOUT_MS = 5000
# Any fixed number: the key of the advisory lock that serialises schema creation on PostgreSQL.
_PG_SCHEMA_LOCK = 0x1A57_4009
# Execution option telling the SQLite BEGIN hook whether the transaction will write.
_WRITE = "lasthop_write"
# Bound on retries when a row changes hands between two statements of ours (PostgreSQL only).
_RACE_RETRIES = 3


def utcnow() -> datetime:
    return datetime.now(UTC)


class StateStore:
    """lasthop's durable state. Thread-safe; share one per process."""

    def __init__(self, url: str, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._clock = clock
        self._url = _engine_url(url)
        self._engine, memory = _build_engine(self._url)
        self._sqlite = self._engine.dialect.name == "sqlite"
        self._liveness: Liveness = (
            ProcessLiveness() if self._sqlite else SessionLiveness(_build_session_engine(self._url))
        )
        # In-memory SQLite is one connection shared by all threads: serialise whole
        # transactions on it, or two threads' statements would interleave in one transaction.
        self._serial: threading.RLock | None = threading.RLock() if memory else None
        try:
            self._create_schema()
        except BaseException:
            self.close()
            raise

    @classmethod
    def open(cls, url: str) -> StateStore:
        return cls(url)

    def close(self) -> None:
        """Close the database; router locks still held end with their sessions (the rows stay to their TTL)."""
        self._liveness.close()
        self._engine.dispose()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"StateStore({self._url.render_as_string(hide_password=True)!r})"

    # ---------------------------------------------------------------- audit

    def audit(
        self,
        *,
        actor: str,
        source: str,
        action: str,
        target: str,
        result: str,
        detail: str = "",
        plan: dict[str, Any] | None = None,
        transcript: str = "",
        duration_ms: int | None = None,
        change_id: str | None = None,
    ) -> int:
        """Append one audit record and return its id. There is no way to change or remove one."""
        values = {
            "at": self._now(),
            "actor": actor,
            "source": source,
            "action": action,
            "target": target,
            "result": result,
            "detail": redact(detail),
            "plan": _redact_json(plan) if plan is not None else None,
            "transcript": redact(transcript),
            "duration_ms": duration_ms,
            "change_id": change_id,
        }
        with self._tx() as conn:
            audit_id = conn.execute(t.audit.insert().values(values).returning(t.audit.c.id)).scalar_one()
        return int(audit_id)

    def history(self, limit: int = 20, *, target: str | None = None) -> list[AuditRecord]:
        """The latest audit records, newest first."""
        query = select(t.audit).order_by(t.audit.c.id.desc()).limit(max(limit, 0))
        if target is not None:
            query = query.where(t.audit.c.target == target)
        with self._tx(write=False) as conn:
            rows = conn.execute(query).mappings().all()
        return [_audit_record(row) for row in rows]

    # -------------------------------------------------------------- changes

    def create_change(
        self,
        *,
        router: str,
        moves: list[dict[str, str]],
        requested_by: str,
        source: str,
        idempotency_key: str | None = None,
        kind: str = "manual",
    ) -> ChangeRecord:
        """Record a planned change. A repeated idempotency key raises DuplicateRequest(first id)."""
        now = self._now()
        values: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "router": router,
            "moves": [dict(move) for move in moves],
            "prefixes": _prefix_index(moves),
            "status": "planned",
            "kind": kind,
            "requested_by": requested_by,
            "source": source,
            "created_at": now,
            "updated_at": now,
            "error": "",
            "result": None,
            "idempotency_key": idempotency_key,
        }
        stmt = (
            self._insert(t.changes)
            .values(values)
            .on_conflict_do_nothing(index_elements=[t.changes.c.idempotency_key])
            .returning(t.changes.c.id)
        )
        with self._tx() as conn:
            if conn.execute(stmt).first() is None:
                existing = conn.execute(
                    select(t.changes.c.id).where(t.changes.c.idempotency_key == idempotency_key)
                ).scalar_one()
                raise DuplicateRequest(str(existing))
            row = self._change_row(conn, values["id"])
        return _change_record(row)

    def set_change_status(
        self, change_id: str, status: str, *, error: str = "", result: dict[str, Any] | None = None,
        term: int | None = None,
    ) -> ChangeRecord:
        """Move a change to `status`, if its current one leads there (bot/state/transitions.py), else
        BadTransition. `error` and `result` replace the stored ones only when given, so a later
        status keeps the error that explains it.

        `term` fences a leader's change: the status is taken only while that term still leads (and,
        on PostgreSQL, while its session still holds the leadership lock), else Fenced and nothing
        is written."""
        if status not in CHANGE_STATUSES:
            raise ValueError(f"unknown change status {status!r}; expected one of {sorted(CHANGE_STATUSES)}")
        values: dict[str, Any] = {"status": status, "updated_at": self._now()}
        if error:
            values["error"] = redact(error)
        if result is not None:
            values["result"] = _redact_json(result)
        c = t.changes.c
        with self._tx() as conn:
            if term is not None:
                self._fence(conn, term)
            # One conditional UPDATE: of two processes settling the same change, exactly one moves it.
            updated = conn.execute(sa_update(t.changes).where(c.id == change_id, c.status.in_(allowed_from(status)))
                                   .values(values))
            if updated.rowcount != 1:
                now = conn.execute(select(c.status).where(c.id == change_id)).scalar()
                if now is None:
                    raise NotFound("change", change_id)
                raise BadTransition(change_id, str(now), status)
            row = self._change_row(conn, change_id)
        return _change_record(row)

    def get_change(self, change_id: str) -> ChangeRecord | None:
        with self._tx(write=False) as conn:
            row = conn.execute(select(t.changes).where(t.changes.c.id == change_id)).mappings().first()
        return _change_record(row) if row is not None else None

    def changes_in_flight(self, *, unsettled: bool = False) -> list[ChangeRecord]:
        """Changes that were applying or verifying: after a restart, routers in an unknown state.
        `unsettled`: also those only planned and those waiting for a person, oldest first."""
        statuses = UNSETTLED if unsettled else IN_FLIGHT
        query = (
            select(t.changes).where(t.changes.c.status.in_(statuses)).order_by(t.changes.c.created_at, t.changes.c.seq)
        )
        with self._tx(write=False) as conn:
            rows = conn.execute(query).mappings().all()
        return [_change_record(row) for row in rows]

    def recent_changes(
        self, limit: int = 10, *, router: str | None = None, prefix: str | None = None
    ) -> list[ChangeRecord]:
        """Newest first; `prefix` keeps changes with a move whose "prefix" is that network."""
        query = select(t.changes).order_by(t.changes.c.created_at.desc(), t.changes.c.seq.desc()).limit(max(limit, 0))
        if router is not None:
            query = query.where(t.changes.c.router == router)
        if prefix is not None:
            pattern = f"% {_escape_like(_normal_prefix(prefix))} %"
            query = query.where(t.changes.c.prefixes.like(pattern, escape="\\"))
        with self._tx(write=False) as conn:
            rows = conn.execute(query).mappings().all()
        return [_change_record(row) for row in rows]

    def changes_for_request(self, key: str) -> list[ChangeRecord]:
        """The changes one request made (one per router), by the request's idempotency key."""
        query = (
            select(t.changes)
            .where(or_(t.changes.c.idempotency_key == key,
                       t.changes.c.idempotency_key.like(f"{_escape_like(key)}:%", escape="\\")))
            .order_by(t.changes.c.seq)
        )
        with self._tx(write=False) as conn:
            rows = conn.execute(query).mappings().all()
        return [_change_record(row) for row in rows]

    # ----------------------------------------------------- idempotency keys

    def claim_key(self, key: str, *, owner: str, ttl: timedelta = timedelta(hours=24)) -> bool:
        """True for the first claim of `key` (or the first after it expired), False otherwise."""
        _require_positive(ttl, "ttl")
        now = self._now()
        ins = self._insert(t.idempotency_keys).values(key=key, owner=owner, claimed_at=now, expires_at=now + ttl)
        stmt = ins.on_conflict_do_update(
            index_elements=[t.idempotency_keys.c.key],
            set_={
                "owner": ins.excluded.owner,
                "claimed_at": ins.excluded.claimed_at,
                "expires_at": ins.excluded.expires_at,
            },
            where=t.idempotency_keys.c.expires_at <= now,
        ).returning(t.idempotency_keys.c.key)
        with self._tx() as conn:
            return conn.execute(stmt).first() is not None

    def release_key(self, key: str, *, owner: str) -> bool:
        """Give a claimed key back (its request changed nothing), so a later retry may run. Only its owner can."""
        k = t.idempotency_keys.c
        with self._tx() as conn:
            return bool(conn.execute(sa_delete(t.idempotency_keys).where(k.key == key, k.owner == owner)).rowcount)

    # ------------------------------------------------------------ approvals

    def create_approval(
        self,
        *,
        plan: dict[str, Any],
        requester: str,
        reasons: list[str],
        expires_in: timedelta,
        channel: str = "",
        message_ts: str = "",
    ) -> ApprovalRecord:
        _require_positive(expires_in, "expires_in")
        now = self._now()
        approval_id = uuid.uuid4().hex
        values = {
            "id": approval_id,
            "plan": plan,
            "target": str(plan.get("target", "")),
            "requester": requester,
            "reasons": list(reasons),
            "status": "pending",
            "created_at": now,
            "expires_at": now + expires_in,
            "decided_by": "",
            "decided_at": None,
            "channel": channel,
            "message_ts": message_ts,
        }
        with self._tx() as conn:
            conn.execute(t.approvals.insert().values(values))
            row = conn.execute(select(t.approvals).where(t.approvals.c.id == approval_id)).mappings().one()
        return _approval_record(row)

    def get_approval(self, approval_id: str) -> ApprovalRecord | None:
        """The approval as it is now; a pending one past its deadline is stored and returned as expired."""
        now = self._now()
        with self._tx(write=False) as conn:
            row = self._approval_row(conn, approval_id)
        if row is None:
            return None
        if row["status"] == "pending" and row["expires_at"] <= now:
            with self._tx() as conn:
                self._expire_approval(conn, approval_id, now)
                row = conn.execute(select(t.approvals).where(t.approvals.c.id == approval_id)).mappings().one()
        return _approval_record(row)

    def decide_approval(self, approval_id: str, *, decision: str, by: str) -> ApprovalRecord:
        """Approve or deny once. Of concurrent deciders exactly one wins; the rest get ApprovalClosed."""
        if decision not in APPROVAL_DECISIONS:
            raise ValueError(f"decision must be 'approved' or 'denied', not {decision!r}")
        now = self._now()
        a = t.approvals.c
        with self._tx() as conn:
            decided = conn.execute(
                sa_update(t.approvals)
                .where(a.id == approval_id, a.status == "pending", a.expires_at > now)
                .values(status=decision, decided_by=by, decided_at=now)
            )
            won = decided.rowcount == 1
            if not won:
                self._expire_approval(conn, approval_id, now)
            row = self._approval_row(conn, approval_id)
        if row is None:
            raise NotFound("approval", approval_id)
        record = _approval_record(row)
        if not won:
            raise ApprovalClosed(record)
        return record

    def set_approval_message(self, approval_id: str, *, channel: str, ts: str) -> None:
        """Where the approval request was posted, so its outcome can replace it there."""
        a = t.approvals.c
        with self._tx() as conn:
            if not conn.execute(sa_update(t.approvals).where(a.id == approval_id).values(channel=channel,
                                                                                        message_ts=ts)).rowcount:
                raise NotFound("approval", approval_id)

    def supersede_approvals(self, *, target: str, except_id: str | None = None) -> int:
        """Close the live pending approvals for `target` (a newer request replaces them); returns how many."""
        now = self._now()
        a = t.approvals.c
        stmt = (
            sa_update(t.approvals)
            .where(a.target == target, a.status == "pending", a.expires_at > now)
            .values(status="superseded", decided_at=now)
        )
        if except_id is not None:
            stmt = stmt.where(a.id != except_id)
        with self._tx() as conn:
            return int(conn.execute(stmt).rowcount)

    # --------------------------------------------------------- router locks

    def acquire_lock(
        self, router: str, *, holder: str, info: str, ttl: timedelta = timedelta(minutes=5)
    ) -> LockInfo | None:
        """Take `router` for `holder`, or raise LockHeld naming whoever has it.

        Returns None, or the lock of a dead holder we took over (its process or session is gone:
        bot/state/liveness.py) so the caller can say so. Not re-entrant: a holder asking again
        while it holds the lock gets LockHeld too. An expired lock is taken over by one conditional
        upsert, a dead holder's by one UPDATE naming that holder, so of several processes racing
        for it exactly one wins.
        """
        _require_positive(ttl, "ttl")
        claim = self._liveness.claim()
        try:
            replaced = self._take_router(router, holder, info, ttl, claim.columns)
        except BaseException:
            claim.close()
            raise
        self._liveness.keep(router, holder, claim)
        return replaced

    def _take_router(
        self, router: str, holder: str, info: str, ttl: timedelta, identity: Mapping[str, Any]
    ) -> LockInfo | None:
        lk = t.router_locks.c
        for _ in range(_RACE_RETRIES):
            now = self._now()
            values = {"holder": holder, "info": info, "acquired_at": now, "expires_at": now + ttl, **identity}
            ins = self._insert(t.router_locks).values(router=router, **values)
            stmt = ins.on_conflict_do_update(
                index_elements=[lk.router], set_={k: ins.excluded[k] for k in values}, where=lk.expires_at <= now,
            ).returning(lk.router)
            with self._tx() as conn:
                if conn.execute(stmt).first() is not None:
                    return None
                current = self._lock_row(conn, router)
                if current is None or current["expires_at"] <= now:
                    continue  # released or expired between our two statements: the next round will tell
                if not self._liveness.gone(conn, current):
                    raise LockHeld(_lock_info(current))
                dead = sa_update(t.router_locks).where(
                    lk.router == router,
                    lk.holder == current["holder"],
                    lk.acquired_at == current["acquired_at"],
                    lk.pid == current["pid"],
                    lk.started == current["started"],
                    lk.session_key.is_not_distinct_from(current["session_key"]),
                )
                if conn.execute(dead.values(values)).rowcount == 1:
                    return _lock_info(current)
            # Another racer took the dead holder's place first: the next round names it.
        raise StateError(f"{router}: the lock kept changing hands; try again")

    def refresh_lock(self, router: str, *, holder: str, ttl: timedelta = timedelta(minutes=5)) -> None:
        """Extend our lock. Raises LockLost if someone else has taken it over (or it was never ours).

        A lock of ours that expired but that nobody has taken yet is still ours and is extended:
        a takeover changes the holder in the same row, so the two cannot both succeed.
        """
        _require_positive(ttl, "ttl")
        now = self._now()
        lk = t.router_locks.c
        with self._tx() as conn:
            refreshed = conn.execute(
                sa_update(t.router_locks).where(lk.router == router, lk.holder == holder).values(expires_at=now + ttl)
            )
            if refreshed.rowcount == 1:
                return
            current = self._lock_row(conn, router)
        live = current if current is not None and current["expires_at"] > now else None
        raise LockLost(router, holder, _lock_info(live) if live is not None else None)

    def release_lock(self, router: str, *, holder: str) -> None:
        """Drop our lock; someone else's lock on the router is left alone."""
        lk = t.router_locks.c
        try:
            with self._tx() as conn:
                conn.execute(sa_delete(t.router_locks).where(lk.router == router, lk.holder == holder))
        finally:
            # After the row: a session that ended first would let a racer take a row we still had.
            self._liveness.release(router, holder)

    # ----------------------------------------------------------- maintenance

    def set_maintenance(
        self, host: str, *, by: str, reason: str = "", until: datetime | None = None
    ) -> MaintenanceRecord:
        """Put `host` in maintenance (again: the new window replaces the old one)."""
        now = self._now()
        m = t.maintenance.c
        with self._tx() as conn:
            conn.execute(sa_delete(t.maintenance).where(m.host == host))
            conn.execute(t.maintenance.insert().values(host=host, by=by, reason=redact(reason), since=now, until=until))
        return MaintenanceRecord(host, by, redact(reason), now, until)

    def clear_maintenance(self, host: str) -> bool:
        """True if the host was in maintenance."""
        m = t.maintenance.c
        with self._tx() as conn:
            return bool(conn.execute(sa_delete(t.maintenance).where(m.host == host)).rowcount)

    def maintenance(self) -> dict[str, MaintenanceRecord]:
        """Hosts in maintenance now; a window that has ended no longer counts."""
        now = self._now()
        m = t.maintenance.c
        with self._tx(write=False) as conn:
            rows = conn.execute(select(t.maintenance).where(or_(m.until.is_(None), m.until > now))).mappings().all()
        return {r["host"]: MaintenanceRecord(r["host"], r["by"], r["reason"], r["since"], r["until"]) for r in rows}

    def lock_info(self, router: str) -> LockInfo | None:
        """Who holds `router` now; None if nobody does, the last lock has expired or its holder is dead."""
        now = self._now()
        with self._tx(write=False) as conn:
            return self._live_lock(conn, router, now)

    def router_activity(self, router: str) -> RouterActivity:
        """What lasthop is doing to `router`, read in one transaction: the live lock, and the newest
        change touching it. Two equal readings with no lock between them mean that no change
        started, ran or ended in between, whatever process made it."""
        now = self._now()
        c = t.changes.c
        with self._tx(write=False) as conn:
            lock = self._live_lock(conn, router, now)
            last = conn.execute(
                select(c.seq, c.status, c.updated_at).where(c.router == router).order_by(c.seq.desc()).limit(1)
            ).first()
        return RouterActivity(lock, None if last is None else (int(last[0]), str(last[1]), last[2]))

    @contextmanager
    def router_lock(
        self, router: str, *, holder: str, info: str, ttl: timedelta = timedelta(minutes=5)
    ) -> Iterator[LockInfo | None]:
        """Hold `router` for the block; yields the dead holder's lock if we took one over, else None."""
        replaced = self.acquire_lock(router, holder=holder, info=info, ttl=ttl)
        try:
            yield replaced
        finally:
            self.release_lock(router, holder=holder)

    # ------------------------------------------------------------ incidents

    def open_incident(self, *, key: str, title: str, severity: str = "major") -> IncidentRecord:
        """Open an incident for `key`, or return the one already open for it."""
        i = t.incidents.c
        for _ in range(_RACE_RETRIES):
            stmt = (
                self._insert(t.incidents)
                .values(
                    key=key,
                    title=redact(title),
                    severity=severity,
                    status="open",
                    opened_at=self._now(),
                    channel="",
                    thread_ts="",
                )
                .on_conflict_do_nothing(index_elements=[i.key], index_where=i.status == "open")
            )
            with self._tx() as conn:
                conn.execute(stmt)
                row = conn.execute(select(t.incidents).where(i.key == key, i.status == "open")).mappings().first()
                if row is not None:
                    return self._incident_records(conn, [row])[0]
            # Resolved by someone else between our two statements: open a fresh one.
        raise StateError(f"incident {key}: it kept being opened and resolved; try again")

    def add_incident_event(
        self, incident_id: int, text: str, *, kind: str = "note", member: str = "",
        data: Mapping[str, Any] | None = None,
    ) -> IncidentEvent:
        """Append to an incident's timeline: `kind`, `member` and `data` say what happened, `text` says it in words."""
        at = self._now()
        stmt = (
            t.incident_events.insert()
            .from_select(
                ["incident_id", "at", "kind", "member", "data", "text"],
                select(
                    t.incidents.c.id,
                    literal(at, t.UTCDateTime()),
                    literal(kind, Text()),
                    literal(member, Text()),
                    literal(_redact_json(dict(data or {})), t.Json),
                    literal(redact(text), Text()),
                ).where(t.incidents.c.id == incident_id),
            )
            .returning(t.incident_events.c.id)
        )
        with self._tx() as conn:
            if conn.execute(stmt).first() is None:
                raise NotFound("incident", str(incident_id))
        return IncidentEvent(at, kind, member, _redact_json(dict(data or {})), redact(text))

    def add_incident_event_once(
        self, incident_id: int, text: str, *, kind: str, data: Mapping[str, Any] | None = None,
    ) -> tuple[IncidentEvent | None, IncidentEvent | None]:
        """Append an event of `kind` unless the incident has one already (an acknowledgement is made
        once, whichever instance two people tap at once): (the new event, None) or (None, the first).
        One transaction, serialised per incident: an advisory lock on PostgreSQL, the write lock on
        SQLite."""
        e = t.incident_events.c
        first = (select(e.at, e.kind, e.member, e.data, e.text)
                 .where(e.incident_id == incident_id, e.kind == kind).order_by(e.at, e.id).limit(1))
        at = self._now()
        clean = _redact_json(dict(data or {}))
        with self._tx() as conn:
            if not self._sqlite:
                conn.execute(select(func.pg_advisory_xact_lock(EVENT_NAMESPACE, int(incident_id))))
            found = conn.execute(first).first()
            if found is not None:
                return None, IncidentEvent(found[0], str(found[1]), str(found[2]), dict(found[3] or {}), str(found[4]))
            if conn.execute(select(t.incidents.c.id).where(t.incidents.c.id == incident_id)).first() is None:
                raise NotFound("incident", str(incident_id))
            conn.execute(t.incident_events.insert().values(
                incident_id=incident_id, at=at, kind=kind, member="", data=clean, text=redact(text)))
        return IncidentEvent(at, kind, "", clean, redact(text)), None

    def get_incident(self, incident_id: int) -> IncidentRecord | None:
        with self._tx(write=False) as conn:
            row = conn.execute(select(t.incidents).where(t.incidents.c.id == incident_id)).mappings().first()
            return self._incident_records(conn, [row])[0] if row is not None else None

    def resolve_incident(
        self, key: str, *, text: str = "", data: Mapping[str, Any] | None = None, member: str = ""
    ) -> IncidentRecord | None:
        """Resolve the open incident for `key`; None if none was open (or another process resolved it).

        `text` (with `data`) becomes its last event, of kind "resolved"."""
        now = self._now()
        i = t.incidents.c
        with self._tx() as conn:
            incident_id = conn.execute(select(i.id).where(i.key == key, i.status == "open")).scalar()
            if incident_id is None:
                return None
            resolved = conn.execute(
                sa_update(t.incidents)
                .where(i.id == incident_id, i.status == "open")
                .values(status="resolved", resolved_at=now)
            )
            if resolved.rowcount != 1:
                return None
            if text:
                conn.execute(t.incident_events.insert().values(
                    incident_id=incident_id, at=now, kind="resolved", member=member,
                    data=_redact_json(dict(data or {})), text=redact(text)))
            row = conn.execute(select(t.incidents).where(i.id == incident_id)).mappings().one()
            return self._incident_records(conn, [row])[0]

    def open_incidents(self) -> list[IncidentRecord]:
        i = t.incidents.c
        with self._tx(write=False) as conn:
            rows = (
                conn.execute(select(t.incidents).where(i.status == "open").order_by(i.opened_at, i.id)).mappings().all()
            )
            return self._incident_records(conn, rows)

    def set_incident_thread(self, incident_id: int, *, channel: str, ts: str) -> None:
        """Remember the chat thread where the incident is being told, so later updates go there."""
        with self._tx() as conn:
            updated = conn.execute(
                sa_update(t.incidents).where(t.incidents.c.id == incident_id).values(channel=channel, thread_ts=ts)
            )
            if updated.rowcount != 1:
                raise NotFound("incident", str(incident_id))

    # ------------------------------------------------------------ internals

    # ----------------------------------------------------------- leadership

    @property
    def shared(self) -> bool:
        """Whether several `serve` instances may share this store (PostgreSQL), so that one leads."""
        return not self._sqlite

    def seat(self) -> Seat:
        """A new hold on leadership for this process (bot/state/leadership.py); the caller owns it."""
        if not self._sqlite:
            return PgSeat(_build_seat_engine(self._url))
        database = self._url.database or ""
        if self._serial is not None or not database:
            return SoloSeat()
        return FileSeat(str(Path(database).resolve()))

    def take_leadership(self, instance: str, seat: Seat) -> int:
        """Record that `instance`, holding `seat`, leads now; its term (the fencing token), one more
        than any before. Called only with the seat held, so two never race for the same term."""
        me = current_process()
        values = {"instance": instance, "node": me.node, "pid": me.pid, "backend_pid": seat.backend_pid,
                  "since": self._now(), "until": None, "reason": ""}
        lead = t.leadership
        with self._tx() as conn:
            insert = self._insert(lead).values(id=LEADER_KEY, term=1, **values)
            term = conn.execute(insert.on_conflict_do_update(
                index_elements=[lead.c.id], set_={"term": lead.c.term + 1, **values},
            ).returning(lead.c.term)).scalar_one()
        return int(term)

    def stand_down(self, term: int, reason: str) -> None:
        """Say that `term` no longer leads (a clean stop, or a lost session); nothing if another leads."""
        lead = t.leadership.c
        with self._tx() as conn:
            conn.execute(sa_update(t.leadership).where(lead.id == LEADER_KEY, lead.term == term, lead.until.is_(None))
                         .values(until=self._now(), reason=redact(reason)[:200]))

    def leader(self) -> LeaderRecord | None:
        """Who leads, as the store records it, and whether that leader is alive now."""
        with self._tx(write=False) as conn:
            row = conn.execute(select(t.leadership).where(t.leadership.c.id == LEADER_KEY)).mappings().first()
            if row is None:
                return None
            alive = row["until"] is None and self._leader_alive(conn, row)
        return LeaderRecord(instance=row["instance"], node=row["node"], pid=int(row["pid"]), term=int(row["term"]),
                            since=row["since"], until=row["until"], reason=row["reason"], alive=alive)

    def _leader_alive(self, conn: Connection, row: RowMapping) -> bool:
        if self._sqlite:
            me = current_process()
            return not is_gone(ProcessIdentity(row["node"], int(row["pid"]), 0, me.boot_id, me.pid_ns), me)
        return self._lock_on_backend(conn, row["backend_pid"])

    @staticmethod
    def _lock_on_backend(conn: Connection, backend_pid: int | None) -> bool:
        if backend_pid is None:
            return False
        held = conn.execute(text(
            "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = :ns AND objid = :key "
            "AND objsubid = 2 AND granted AND pid = :pid"),
            {"ns": LEADER_NAMESPACE, "key": LEADER_KEY, "pid": int(backend_pid)}).first()
        return held is not None

    def _fence(self, conn: Connection, term: int) -> None:
        lead = t.leadership.c
        query = select(lead.term, lead.backend_pid, lead.until).where(lead.id == LEADER_KEY)
        if not self._sqlite:
            # Holds off a new leader's term bump until this transaction ends: the check stays true to commit.
            query = query.with_for_update(read=True)
        row = conn.execute(query).first()
        if row is None or int(row[0]) != term or row[2] is not None:
            raise Fenced(term, int(row[0]) if row is not None else None)
        if not self._sqlite and not self._lock_on_backend(conn, row[1]):
            raise Fenced(term, None)

    def fence(self, term: int) -> None:
        """Fenced unless `term` still leads (the store's own check, as set_change_status(term=) makes)."""
        with self._tx(write=False) as conn:
            self._fence(conn, term)

    def publish_health(self, term: int, states: Mapping[tuple[str, str], str]) -> None:
        """The leader's view of (service, host) health, for the other instances; one transaction."""
        if not states:
            return
        now = self._now()
        rows = [{"service": s, "host": h, "state": st, "term": term, "updated_at": now}
                for (s, h), st in states.items()]
        h = t.health
        with self._tx() as conn:
            insert = self._insert(h)
            # Never over a newer term's row: a stale leader that has not heard it lost would
            # otherwise erase what the new leader published.
            conn.execute(insert.on_conflict_do_update(
                index_elements=[h.c.service, h.c.host],
                set_={"state": insert.excluded.state, "term": insert.excluded.term,
                      "updated_at": insert.excluded.updated_at},
                where=h.c.term <= insert.excluded.term), rows)

    def published_health(self, term: int) -> dict[tuple[str, str], str]:
        """What leader `term` published; other terms' rows are stale and left out."""
        h = t.health.c
        with self._tx(write=False) as conn:
            rows = conn.execute(select(h.service, h.host, h.state).where(h.term == term)).all()
        return {(str(s), str(host)): str(st) for s, host, st in rows}

    def setting(self, key: str) -> Any:
        """A shared run-time setting's value, or None when never set."""
        with self._tx(write=False) as conn:
            return conn.execute(select(t.settings.c.value).where(t.settings.c.key == key)).scalar()

    def set_setting(self, key: str, value: Any, *, by: str = "") -> None:
        s = t.settings
        with self._tx() as conn:
            insert = self._insert(s).values(key=key, value=value, updated_at=self._now(), updated_by=by)
            conn.execute(insert.on_conflict_do_update(
                index_elements=[s.c.key],
                set_={"value": insert.excluded.value, "updated_at": insert.excluded.updated_at,
                      "updated_by": insert.excluded.updated_by}))

    def last_change_at(self) -> datetime | None:
        """When any change last moved: another instance's move shows here."""
        with self._tx(write=False) as conn:
            return conn.execute(select(func.max(t.changes.c.updated_at))).scalar()

    def now(self) -> datetime:
        """The store's clock: what its records are stamped with."""
        return self._now()

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the state store's clock returned a naive datetime; it must return aware UTC")
        return now.astimezone(UTC)

    @contextmanager
    def _tx(self, *, write: bool = True) -> Iterator[Connection]:
        """One transaction. On SQLite a writing one starts with BEGIN IMMEDIATE, so it
        waits (busy_timeout) for the write lock up front instead of failing mid-way."""
        guard: AbstractContextManager[Any] = self._serial if self._serial is not None else nullcontext()
        try:
            with guard, self._engine.connect() as conn:
                if self._sqlite:
                    conn.execution_options(**{_WRITE: write})
                with conn.begin():
                    yield conn
        except (OperationalError, InterfaceError) as exc:
            # Unreachable server, timeout, locked file: one short line for the chat reply.
            reason = str(exc.orig or exc).strip().splitlines()
            raise StateError(f"state database error: {redact(reason[0] if reason else type(exc).__name__)}") from exc

    def _create_schema(self) -> None:
        with self._tx() as conn:
            if not self._sqlite:
                # Processes starting together would race on CREATE TABLE; PostgreSQL DDL is
                # transactional, so holding this lock to commit makes the others see the tables.
                conn.execute(select(func.pg_advisory_xact_lock(_PG_SCHEMA_LOCK)))
            t.metadata.create_all(conn)
            conn.execute(self._insert(t.schema_version).values(id=1, version=t.SCHEMA_VERSION).on_conflict_do_nothing())
            found = conn.execute(select(t.schema_version.c.version).where(t.schema_version.c.id == 1)).scalar_one()
            while int(found) < t.SCHEMA_VERSION and int(found) in t.MIGRATIONS:
                for statement in t.MIGRATIONS[int(found)]:
                    conn.exec_driver_sql(statement)
                found = int(found) + 1
                conn.execute(sa_update(t.schema_version).where(t.schema_version.c.id == 1).values(version=found))
            if int(found) < t.SCHEMA_VERSION:
                # Raised inside the transaction: the steps already run are rolled back with it, and
                # the store never runs on tables older than its code.
                raise StateError(f"the state database has schema version {found}, which this lasthop "
                                 f"({t.SCHEMA_VERSION}) has no migration from")
        if int(found) > t.SCHEMA_VERSION:
            raise StateError(
                f"the state database has schema version {found}, newer than this lasthop ({t.SCHEMA_VERSION})"
            )

    def _insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        return sqlite.insert(table) if self._sqlite else postgresql.insert(table)

    @staticmethod
    def _change_row(conn: Connection, change_id: str) -> RowMapping:
        return conn.execute(select(t.changes).where(t.changes.c.id == change_id)).mappings().one()

    @staticmethod
    def _approval_row(conn: Connection, approval_id: str) -> RowMapping | None:
        return conn.execute(select(t.approvals).where(t.approvals.c.id == approval_id)).mappings().first()

    @staticmethod
    def _expire_approval(conn: Connection, approval_id: str, now: datetime) -> None:
        a = t.approvals.c
        conn.execute(
            sa_update(t.approvals)
            .where(a.id == approval_id, a.status == "pending", a.expires_at <= now)
            .values(status="expired")
        )

    @staticmethod
    def _lock_row(conn: Connection, router: str) -> RowMapping | None:
        return conn.execute(select(t.router_locks).where(t.router_locks.c.router == router)).mappings().first()

    def _live_lock(self, conn: Connection, router: str, now: datetime) -> LockInfo | None:
        row = self._lock_row(conn, router)
        if row is None or row["expires_at"] <= now or self._liveness.gone(conn, row):
            return None
        return _lock_info(row)

    @staticmethod
    def _incident_records(conn: Connection, rows: Sequence[RowMapping]) -> list[IncidentRecord]:
        ids = [row["id"] for row in rows]
        events: dict[int, list[IncidentEvent]] = {int(i): [] for i in ids}
        if ids:
            e = t.incident_events.c
            query = (select(e.incident_id, e.at, e.kind, e.member, e.data, e.text)
                     .where(e.incident_id.in_(ids)).order_by(e.at, e.id))
            for incident_id, at, kind, member, data, text in conn.execute(query):
                events[int(incident_id)].append(IncidentEvent(at, str(kind), str(member), dict(data or {}), str(text)))
        return [_incident_record(row, events[int(row["id"])]) for row in rows]


# ------------------------------------------------------------------ helpers


def _engine_url(url: str) -> URL:
    if "://" not in url:
        # A bare path is the one-box setup: a SQLite file.
        return URL.create("sqlite", database=str(Path(url).expanduser()))
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StateError("the state database URL cannot be parsed") from None
    if parsed.drivername in ("postgresql", "postgres"):
        # SQLAlchemy's default PostgreSQL driver is psycopg2; lasthop ships psycopg 3.
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() in ("postgresql", "sqlite"):
        return parsed
    raise StateError(
        f"unsupported state database {parsed.render_as_string(hide_password=True)}: "
        "use sqlite:///PATH or postgresql://USER@HOST/DB"
    )


def _build_engine(url: URL) -> tuple[Engine, bool]:
    """The engine, and whether it is an in-memory SQLite database."""
    if url.get_backend_name() == "postgresql":
        engine = create_engine(
            url,
            pool_pre_ping=True,
            connect_args={
                "connect_timeout": CONNECT_TIMEOUT_S,
                "options": f"-c statement_timeout={STATEMENT_TIMEOUT}",
                # statement_timeout is the server's: a server cut off mid-statement never sends its
                # error, so the client bounds unacknowledged bytes and silent peers itself.
                **POOL_KEEPALIVE,
            },
        )
        return engine, False
    database = url.database or ""
    memory = database in ("", ":memory:") or url.query.get("mode") == "memory"
    if memory:
        engine = create_engine(
            url,
            poolclass=StaticPool,
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
        )
    else:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine, memory


def _build_session_engine(url: URL, *, statement_timeout: str = STATEMENT_TIMEOUT,
                          application_name: str = "lasthop router lock",
                          keepalive: Mapping[str, int] = SESSION_KEEPALIVE) -> Engine:
    """PostgreSQL connections that each stay one session: never pooled, so closing one ends it
    (and its advisory locks); autocommit, so an idle one holds no transaction open."""
    return create_engine(
        url,
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args={
            "connect_timeout": CONNECT_TIMEOUT_S,
            "options": f"-c statement_timeout={statement_timeout}",
            "application_name": application_name,
            **keepalive,
        },
    )


def _build_seat_engine(url: URL) -> Engine:
    """The leadership session's connections: sessions as above, quick to notice a lost server (TCP);
    PgSeat SETs idle_session_timeout on each, so the server ends one that goes quiet."""
    return _build_session_engine(url, statement_timeout=f"{SEAT_STATEMENT_TIMEOUT_MS}ms",
                                 application_name="lasthop leader", keepalive=SEAT_KEEPALIVE)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # The sqlite3 module's own implicit BEGIN is deferred and skips SELECTs; _sqlite_on_begin
    # issues BEGIN itself instead (the recipe in SQLAlchemy's SQLite documentation).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        # WAL: readers never block the writer, so /status keeps answering during a change.
        cursor.execute("PRAGMA journal_mode = WAL")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # A deferred transaction that reads and then writes can fail at once with SQLITE_BUSY
    # (busy_timeout does not apply to lock upgrades); IMMEDIATE takes the write lock first.
    write = conn.get_execution_options().get(_WRITE, True)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _require_positive(value: timedelta, name: str) -> None:
    if value <= timedelta(0):
        raise ValueError(f"{name} must be positive, not {value}")


def _normal_prefix(prefix: str) -> str:
    try:
        return str(ip_network(prefix.strip(), strict=False))
    except ValueError:
        return prefix.strip()


def _prefix_index(moves: Sequence[Mapping[str, str]]) -> str:
    prefixes = sorted({_normal_prefix(str(move["prefix"])) for move in moves if move.get("prefix")})
    return f" {' '.join(prefixes)} " if prefixes else ""


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _redact_json(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redact_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_json(item) for item in value]
    return value


def _audit_record(row: RowMapping) -> AuditRecord:
    return AuditRecord(
        id=int(row["id"]),
        at=row["at"],
        actor=row["actor"],
        source=row["source"],
        action=row["action"],
        target=row["target"],
        result=row["result"],
        detail=row["detail"],
        plan=row["plan"],
        transcript=row["transcript"],
        duration_ms=row["duration_ms"],
        change_id=row["change_id"],
    )


def _change_record(row: RowMapping) -> ChangeRecord:
    return ChangeRecord(
        id=row["id"],
        router=row["router"],
        moves=list(row["moves"]),
        status=row["status"],
        kind=row["kind"],
        requested_by=row["requested_by"],
        source=row["source"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        error=row["error"],
        result=row["result"],
        idempotency_key=row["idempotency_key"],
    )


def _approval_record(row: RowMapping) -> ApprovalRecord:
    return ApprovalRecord(
        id=row["id"],
        plan=row["plan"],
        requester=row["requester"],
        reasons=list(row["reasons"]),
        status=row["status"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
        channel=row["channel"],
        message_ts=row["message_ts"],
    )


def _lock_info(row: RowMapping) -> LockInfo:
    return LockInfo(
        router=row["router"],
        holder=row["holder"],
        info=row["info"],
        acquired_at=row["acquired_at"],
        expires_at=row["expires_at"],
        process=str(ProcessIdentity.of_row(row)),
    )


def _incident_record(row: RowMapping, events: list[IncidentEvent]) -> IncidentRecord:
    return IncidentRecord(
        id=int(row["id"]),
        key=row["key"],
        title=row["title"],
        severity=row["severity"],
        status=row["status"],
        opened_at=row["opened_at"],
        resolved_at=row["resolved_at"],
        events=events,
        channel=row["channel"],
        thread_ts=row["thread_ts"],
    )
