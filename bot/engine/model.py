"""The values that flow through the engine. Plain data: built, compared, stored, rendered."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any, Literal

from bot.drivers.base import RouteMove

TargetKind = Literal["service", "host"]


class Refusal(Exception):
    """The engine will not do this; `str()` is the short reason shown to the person asking."""


@dataclass(frozen=True)
class MoveRequest:
    """What someone asked for, already resolved to inventory names (never raw chat text)."""

    kind: TargetKind
    target: str
    actor: str
    source: str  # cli | slack | auto
    to_host: str | None = None
    dry_run: bool = False
    reason: str = ""
    # Risk rules consented to in advance, and by what: a plan whose every risk is one of them
    # runs without an approver and is audited as risk accepted by `accepted_by`.
    accepts: frozenset[str] = frozenset()
    accepted_by: str = ""


def move_kind(req: MoveRequest, approved_by: str | None) -> str:
    """How a move came about, as the change record, the metrics and the thread say it: one rule."""
    if req.source == "auto":
        return "automatic"
    return "approved" if approved_by else "manual"


@dataclass(frozen=True)
class PlannedMove:
    service: str
    router: str
    prefix: IPv4Network
    from_host: str | None  # None: the route points at no known host (or nowhere)
    from_hop: IPv4Address | None
    to_host: str
    to_hop: IPv4Address
    vips: tuple[IPv4Address, ...]

    @property
    def route(self) -> RouteMove:
        """What the router is told: the one typed shape drivers and change records take."""
        return RouteMove(self.prefix, self.from_hop, self.to_hop)

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "router": self.router,
            "prefix": str(self.prefix),
            "from_host": self.from_host,
            "from_hop": str(self.from_hop) if self.from_hop else None,
            "to_host": self.to_host,
            "to_hop": str(self.to_hop),
            "vips": [str(v) for v in self.vips],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlannedMove:
        return cls(
            service=d["service"],
            router=d["router"],
            prefix=IPv4Network(d["prefix"]),
            from_host=d["from_host"],
            from_hop=IPv4Address(d["from_hop"]) if d["from_hop"] else None,
            to_host=d["to_host"],
            to_hop=IPv4Address(d["to_hop"]),
            vips=tuple(IPv4Address(v) for v in d["vips"]),
        )


@dataclass(frozen=True)
class RiskReason:
    rule: str
    text: str


@dataclass(frozen=True)
class Plan:
    request: MoveRequest
    moves: tuple[PlannedMove, ...]
    summary: tuple[str, ...]
    commands: dict[str, list[str]] = field(default_factory=dict)
    risks: tuple[RiskReason, ...] = ()
    noop: str = ""  # why nothing needs to move, when nothing does
    notes: tuple[str, ...] = ()  # told, not asked: why a rule did not apply (a rescue that concentrates)

    @property
    def risky(self) -> bool:
        return bool(self.risks)

    @property
    def routers(self) -> list[str]:
        return sorted({m.router for m in self.moves})

    @property
    def key(self) -> str:
        """Same moves from the same starting point: same key, so a repeat is recognised."""
        body = json.dumps([m.to_dict() for m in self.moves], sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        r = self.request
        return {
            "target": r.target,
            "kind": r.kind,
            "to_host": r.to_host,
            "actor": r.actor,
            "source": r.source,
            "reason": r.reason,
            "moves": [m.to_dict() for m in self.moves],
            "summary": list(self.summary),
            "commands": self.commands,
            "risks": [{"rule": x.rule, "text": x.text} for x in self.risks],
            "noop": self.noop,
            "notes": list(self.notes),
            "key": self.key,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        req = MoveRequest(
            kind=d["kind"], target=d["target"], actor=d["actor"], source=d["source"],
            to_host=d["to_host"], reason=d.get("reason", ""),
        )
        return cls(
            request=req,
            moves=tuple(PlannedMove.from_dict(m) for m in d["moves"]),
            summary=tuple(d["summary"]),
            commands={k: list(v) for k, v in d["commands"].items()},
            risks=tuple(RiskReason(x["rule"], x["text"]) for x in d["risks"]),
            noop=d.get("noop", ""),
            notes=tuple(d.get("notes", ())),  # plans stored before notes existed have none
        )


Status = Literal["done", "dry-run", "noop", "refused", "rolled_back", "failed", "needs_human"]


@dataclass
class Outcome:
    """What happened, for every front end to render the same way."""

    status: Status
    plan: Plan | None
    lines: list[str] = field(default_factory=list)
    change_id: str | None = None
    timings_ms: dict[str, int] = field(default_factory=dict)
    transcript: str = ""
    approved_by: str | None = None  # the second person, when one approved it

    @property
    def ok(self) -> bool:
        return self.status in ("done", "dry-run", "noop")
