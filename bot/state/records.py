"""What the state store hands back: plain frozen values, never live database rows.

Every datetime is timezone-aware UTC, whichever database the store runs on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audited action. `detail` and `transcript` were redacted before they were stored."""

    id: int
    at: datetime
    actor: str
    source: str
    action: str
    target: str
    result: str
    detail: str
    plan: dict[str, Any] | None
    transcript: str
    duration_ms: int | None
    change_id: str | None


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """One route change on one router, from plan to outcome."""

    id: str
    router: str
    moves: list[dict[str, str]]
    status: str
    kind: str
    requested_by: str
    source: str
    created_at: datetime
    updated_at: datetime
    error: str
    result: dict[str, Any] | None
    idempotency_key: str | None


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """A risky plan waiting for (or past) a second person's decision."""

    id: str
    plan: dict[str, Any]
    requester: str
    reasons: list[str]
    status: str
    created_at: datetime
    expires_at: datetime
    decided_by: str
    decided_at: datetime | None
    channel: str
    message_ts: str


@dataclass(frozen=True, slots=True)
class MaintenanceRecord:
    """A host taken out of service by a person: drained, silenced, never an automatic target."""

    host: str
    by: str
    reason: str
    since: datetime
    until: datetime | None


@dataclass(frozen=True, slots=True)
class LockInfo:
    """Who holds a router, what for, and until when the claim stands without a refresh."""

    router: str
    holder: str
    info: str
    acquired_at: datetime
    expires_at: datetime
    process: str = ""  # "node:pid" of the holder's process; "" for a lock from an older lasthop


@dataclass(frozen=True, slots=True)
class LeaderRecord:
    """Which `serve` instance leads (runs checks, incidents, automatic moves) and since when."""

    instance: str
    node: str
    pid: int
    term: int  # the fencing token: one more with each new leader
    since: datetime
    until: datetime | None  # when it stood down; None while it leads
    reason: str  # why it stood down
    alive: bool  # its session (PostgreSQL) or process (SQLite) still holds leadership

    @property
    def leading(self) -> bool:
        return self.until is None and self.alive


@dataclass(frozen=True, slots=True)
class RouterActivity:
    """A reading of what lasthop is doing to a router: compare two to see whether a change ran between."""

    lock: LockInfo | None
    last_change: tuple[int, str, datetime] | None  # (seq, status, updated_at) of its newest change

    @property
    def busy(self) -> bool:
        return self.lock is not None


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    """One entry of an incident's timeline: what happened as data, and the sentence rendered from it.

    `kind` and `data` are what a restart replays; `text` is for people and may be reworded freely.
    """

    at: datetime
    kind: str
    member: str
    data: dict[str, Any]
    text: str


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """An outage being tracked, with its timeline oldest first."""

    id: int
    key: str
    title: str
    severity: str
    status: str
    opened_at: datetime
    resolved_at: datetime | None
    events: list[IncidentEvent]
    channel: str  # where its parent message is, once posted
    thread_ts: str
