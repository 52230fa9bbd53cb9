"""An incident as people see it, folded from its stored timeline: pure, no clock, no I/O.

Every member event carries the member's whole state (what is failing, flapping, in
maintenance), so the last one per member is the truth, after a restart as before it and in
any process that reads the store. Nothing here parses a sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.state import IncidentEvent, IncidentRecord

# Event kinds. Member events (with a member and its state in data):
DOWN, STILL_DOWN, PARTIAL, UP, FLAPPING, STABLE = "down", "still_down", "partial", "up", "flapping", "stable"
MAINTENANCE_ON, MAINTENANCE_OFF = "maintenance_on", "maintenance_off"
MEMBER_KINDS = frozenset({DOWN, STILL_DOWN, PARTIAL, UP, FLAPPING, STABLE, MAINTENANCE_ON, MAINTENANCE_OFF})
# Incident events:
MOVE, HOLD, ACK, NOTE, RESOLVED, REMINDER = "move", "hold", "ack", "note", "resolved", "reminder"


@dataclass(frozen=True)
class MemberView:
    kind: str  # "host" | "service"
    name: str
    failing: tuple[str, ...]  # host member: its services failing; service member: (service,) while unreachable
    flapping: bool = False
    maintenance: bool = False

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True)
class MoveView:
    at: datetime
    services: tuple[str, ...]
    moves: tuple[tuple[str, str | None, str], ...]  # (service, from host, to host)
    status: str
    by: str
    approved_by: str
    ms: int | None


@dataclass(frozen=True)
class IncidentView:
    id: int
    key: str
    status: str  # "open" | "resolved"
    opened_at: datetime
    resolved_at: datetime | None
    members: tuple[MemberView, ...]
    affected: tuple[str, ...]  # every service that failed during it, in the order they did
    failed_hosts: tuple[str, ...]  # every host that failed during it, in the order they did
    moves: tuple[MoveView, ...]
    acked_by: str = ""
    acked_at: datetime | None = None
    channel: str = ""
    thread_ts: str = ""
    events: tuple[IncidentEvent, ...] = ()

    @property
    def open(self) -> bool:
        return self.status == "open"

    @property
    def title(self) -> str:
        """Named after the hosts that failed, not after the first check that noticed."""
        if self.failed_hosts:
            hosts = list(self.failed_hosts)
            names = hosts[0] if len(hosts) == 1 else ", ".join(hosts[:-1]) + " and " + hosts[-1]
            return f"{names} {'is' if len(hosts) == 1 else 'are'} down"
        if self.affected:
            return f"{', '.join(self.affected)} unreachable"
        return self.key

    @property
    def title_past(self) -> str:
        """The title once it is over: "web1 was down", "web1 and web2 were down"."""
        return self.title.replace(" is down", " was down").replace(" are down", " were down")

    def member(self, ref: str) -> MemberView | None:
        return next((m for m in self.members if m.ref == ref), None)

    def failing_hosts(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.members if m.kind == "host" and m.failing)

    def failing_on(self, host: str) -> tuple[str, ...]:
        m = self.member(f"host:{host}")
        return m.failing if m is not None else ()

    def last_move(self, service: str) -> MoveView | None:
        done = [m for m in self.moves if m.status == "done" and service in m.services]
        return done[-1] if done else None


def member_state(data: dict[str, Any]) -> tuple[tuple[str, ...], bool, bool]:
    failing = data.get("failing", [])
    return (tuple(str(s) for s in failing) if isinstance(failing, list) else (),
            bool(data.get("flapping")), bool(data.get("maintenance")))


def view_of(record: IncidentRecord) -> IncidentView:
    members: dict[str, MemberView] = {}
    affected: list[str] = []
    failed_hosts: list[str] = []
    moves: list[MoveView] = []
    acked_by, acked_at = "", None
    for e in record.events:
        if e.member and e.kind in MEMBER_KINDS | {RESOLVED}:
            kind, _, name = e.member.partition(":")
            failing, flapping, maintenance = member_state(e.data)
            members[e.member] = MemberView(kind, name, failing, flapping, maintenance)
            for s in failing:
                if s not in affected:
                    affected.append(s)
            if kind == "host" and failing and name not in failed_hosts:
                failed_hosts.append(name)
        elif e.kind == MOVE:
            d = e.data
            triples = tuple((str(m.get("service", "")), m.get("from"), str(m.get("to", "")))
                            for m in d.get("moves", []) if isinstance(m, dict))
            moves.append(MoveView(e.at, tuple(t[0] for t in triples), triples, str(d.get("status", "")),
                                  str(d.get("by", "")), str(d.get("approved_by", "") or ""),
                                  d.get("ms") if isinstance(d.get("ms"), int) else None))
        elif e.kind == ACK and not acked_by:
            acked_by, acked_at = str(e.data.get("by", "")), e.at
    return IncidentView(
        id=record.id, key=record.key, status=record.status, opened_at=record.opened_at,
        resolved_at=record.resolved_at, members=tuple(members.values()), affected=tuple(affected),
        failed_hosts=tuple(failed_hosts), moves=tuple(moves), acked_by=acked_by, acked_at=acked_at,
        channel=record.channel, thread_ts=record.thread_ts, events=tuple(record.events),
    )
