"""Incidents: health transitions turned into a few clear, threaded announcements.

The seed's sysadmin learned of the outage from a pager at 5 AM. lasthop must notice
first and say so once: every service of a dead host, and every host that fails in the
same burst, is one incident with a timeline, not a storm of alerts.

Members and incidents
    A member is a host (any of its (service, host) targets is DOWN) or a service whose VIP
    check through the router fails (target (service, "@vip")). A member that fails while in
    no open incident joins the open incident opened less than `group_window` ago (for a
    VIP: the incident of the host serving it, whenever that was opened), else opens its
    own, keyed `host:<host>` or `service:<service>`. The incident resolves when every member
    is back and none is flapping. A member in maintenance stays in its incident (it is not
    serving) but is silent; when maintenance ends, the checks say whether it is back.

What is news
    `bot.health.notify_rules` decides, from the transition and whether this target was
    announced down. The tracker applies the notice to the member's state.

The timeline is data
    Every event is stored with its kind, member and the member's whole state; the sentence
    is rendered from that (`bot.views.event_text`). `rebuild()` replays the data after a
    restart, so rewording a message can never break recovery.

Flapping
    A member whose state flips between down and up `flap_threshold` times within
    `flap_window` is flapping: one "flapping" update, then silence for it (its incident
    stays open) until it has not changed for `flap_window`; `tick()` notices that.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from bot import incident_view as iv
from bot.echo import one_line
from bot.health.machine import Transition
from bot.health.notify_rules import Notice, decide
from bot.inventory import Inventory
from bot.state import IncidentEvent
from bot.views import event_text

if TYPE_CHECKING:
    from bot.engine.model import Outcome
    from bot.state import IncidentRecord, StateStore

VIP = "@vip"
_DETAIL_MAX = 80

MemberKind = Literal["host", "service"]
Member = tuple[MemberKind, str]
UpdateKind = Literal["opened", "updated", "resolved", "flapping"]


@dataclass(frozen=True)
class IncidentUpdate:
    """One thing to tell people, in the incident's thread (`key` and `incident_id` name it)."""

    kind: UpdateKind
    incident_id: int
    key: str
    title: str
    event: IncidentEvent

    @property
    def text(self) -> str:
        return self.event.text


@dataclass
class _MemberState:
    # Host: its services announced DOWN and not back. VIP member: {service} while unreachable.
    failing: set[str] = field(default_factory=set)
    incident: str | None = None  # key of the open incident it belongs to
    changes: deque[float] = field(default_factory=deque)
    last_change: float | None = None
    flapping: bool = False
    maintenance: bool = False
    # Out of maintenance, with failures still on record: the first check result is news once,
    # and "back up" says it came back after maintenance.
    checking_again: bool = False
    after_maintenance: bool = False


@dataclass
class _Open:
    id: int
    key: str
    title: str
    # On the tracker's clock; None when loaded by rebuild(): a monotonic clock does not
    # survive a restart, and an incident from before it is no longer "just opened".
    opened: float | None
    members: set[Member] = field(default_factory=set)
    affected: set[str] = field(default_factory=set)
    acked_by: str = ""


def _ref(member: Member) -> str:
    return f"{member[0]}:{member[1]}"


class IncidentTracker:
    """Turns health transitions into incident updates, persisted in the state store. Thread-safe."""

    def __init__(
        self,
        store: StateStore,
        inv: Inventory,
        *,
        group_window: float = 10.0,
        flap_threshold: int = 4,
        flap_window: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if flap_threshold < 2:
            raise ValueError(f"flap_threshold must be at least 2 (got {flap_threshold})")
        if flap_window <= 0 or group_window < 0:
            raise ValueError("flap_window must be positive and group_window not negative")
        self._store = store
        self._inv = inv
        self._group_window = group_window
        self._flap_threshold = flap_threshold
        self._flap_window = flap_window
        self._clock = clock
        self._lock = threading.RLock()
        self._members: dict[Member, _MemberState] = {}
        self._open: dict[str, _Open] = {}

    # ---------------------------------------------------------------- public

    def on_transition(self, t: Transition, *, serving: Mapping[str, str | None]) -> list[IncidentUpdate]:
        """The updates one transition causes (often none). `serving`: service -> host the route points at."""
        with self._lock:
            now = self._clock()
            updates = self._settle(now, serving)
            member = self._member_for(t.key)
            if member is None:
                return updates
            update = self._apply(member, t, now, serving)
            if update is not None:
                updates.append(update)
            return updates

    def tick(self, serving: Mapping[str, str | None] | None = None) -> list[IncidentUpdate]:
        """Call every scheduler cycle: ends flapping that has calmed down, resolving what is then clear."""
        with self._lock:
            return self._settle(self._clock(), serving or {})

    def flapping(self) -> set[str]:
        """Hosts flapping now: automatic actions leave them alone until they are stable."""
        with self._lock:
            now = self._clock()
            return {name for (kind, name), st in self._members.items() if kind == "host" and self._flaps(st, now)}

    def is_flapping(self, host: str, now: float | None = None) -> bool:
        with self._lock:
            st = self._members.get(("host", host))
            return st is not None and self._flaps(st, self._clock() if now is None else now)

    def incident_key(self, target: tuple[str, str]) -> str | None:
        """The open incident a (service, host) or (service, "@vip") target's member belongs to, if any.

        After grouping, web2's failures may live in `host:web1`.
        """
        with self._lock:
            member = self._member_for(target)
            st = self._members.get(member) if member is not None else None
            return st.incident if st is not None and st.incident in self._open else None

    def note(self, key: str, kind: str, text: str, data: Mapping[str, Any] | None = None) -> IncidentUpdate | None:
        """An incident-level event (an automatic hold, say) for the open incident `key`; None if it is not open."""
        with self._lock:
            incident = self._open.get(key)
            if incident is None:
                return None
            event = self._store.add_incident_event(incident.id, text, kind=kind, data=data)
            return IncidentUpdate("updated", incident.id, incident.key, incident.title, event)

    def note_services(self, services: Iterable[str], kind: str, text: str) -> list[IncidentUpdate]:
        """An event in every open incident that affects one of `services` (what reconcile did to them)."""
        wanted = set(services)
        data = {"services": sorted(wanted), "text": text}
        with self._lock:
            updates = []
            for incident in self._open.values():
                if incident.affected & wanted:
                    event = self._store.add_incident_event(incident.id, text, kind=kind, data=data)
                    updates.append(IncidentUpdate("updated", incident.id, incident.key, incident.title, event))
            return updates

    def acknowledge(self, incident_id: int, by: str) -> tuple[IncidentUpdate | None, str]:
        """Record who is on it. (update, "") the first time; (None, who) when someone already had it."""
        with self._lock:
            incident = next((o for o in self._open.values() if o.id == incident_id), None)
            if incident is None:
                return None, ""
            if incident.acked_by:
                return None, incident.acked_by
            data = {"by": by}
            # Once in the store, not only here: another instance may take the other person's tap.
            event, first = self._store.add_incident_event_once(
                incident.id, event_text(self._inv, iv.ACK, "", data), kind=iv.ACK, data=data)
            if event is None:
                incident.acked_by = str(first.data.get("by", "")) if first is not None else ""
                return None, incident.acked_by
            incident.acked_by = by
            return IncidentUpdate("updated", incident.id, incident.key, incident.title, event), ""

    def record_move(self, outcome: Outcome, kind: str) -> list[IncidentUpdate]:
        """A move that ran (any source), written into every open incident of a service it moved."""
        plan = outcome.plan
        if plan is None or not plan.moves or plan.request.dry_run or outcome.status in ("noop", "refused"):
            return []
        services = [m.service for m in plan.moves]
        data = {
            "services": services,
            "moves": [{"service": m.service, "from": m.from_host, "to": m.to_host} for m in plan.moves],
            "status": outcome.status,
            "by": plan.request.actor,
            "approved_by": outcome.approved_by or "",
            "kind": kind,
            "ms": outcome.timings_ms.get("total_ms"),
            "why": _short(next((line for line in outcome.lines if line.startswith("change failed")), ""), 160),
            "notes": list(plan.notes) if outcome.status == "done" else [],
        }
        text = event_text(self._inv, iv.MOVE, "", data)
        with self._lock:
            updates = []
            for incident in self._open.values():
                if incident.affected & set(services):
                    event = self._store.add_incident_event(incident.id, text, kind=iv.MOVE, data=data)
                    updates.append(IncidentUpdate("updated", incident.id, incident.key, incident.title, event))
            return updates

    def view(self, incident_id: int) -> iv.IncidentView | None:
        record = self._store.get_incident(incident_id)
        return iv.view_of(record) if record is not None else None

    def rebuild(self) -> None:
        """Load the open incidents from the store (after a restart) by replaying their events' data."""
        with self._lock:
            now = self._clock()
            self._members.clear()
            self._open.clear()
            for record in self._store.open_incidents():
                self._load(record, now)

    # --------------------------------------------------------------- changes

    def _member_for(self, key: tuple[str, str]) -> Member | None:
        service, host = key
        if service not in self._inv.services:
            return None
        if host == VIP:
            return ("service", service)
        return ("host", host) if host in self._inv.hosts else None

    def _apply(
        self, member: Member, t: Transition, now: float, serving: Mapping[str, str | None]
    ) -> IncidentUpdate | None:
        st = self._members.setdefault(member, _MemberState())
        service = t.key[0]
        notice = decide(t, announced=service in st.failing)
        if notice is Notice.MAINTENANCE_ON:
            return self._maintenance(member, st, on=True)
        if notice is Notice.MAINTENANCE_OFF:
            return self._maintenance(member, st, on=False)
        if notice is Notice.STILL_DOWN:
            if not st.checking_again:
                return None  # a restart finding what the timeline already says
            st.checking_again = False
            return self._event(member, st, iv.STILL_DOWN, {})
        before = set(st.failing)
        if notice is Notice.DOWN:
            st.failing.add(service)
        elif notice is Notice.RECOVERED:
            st.failing.discard(service)
        if st.failing == before:
            return None
        st.checking_again = False
        if bool(before) != bool(st.failing):
            st.changes.append(now)
            st.last_change = now
            self._prune(st, now)
        if self._flaps(st, now):
            if st.flapping:
                return None  # already said; the stable-again update will tell where it ended
            st.flapping = True
            return self._announce_flapping(member, st, now, serving, t.detail)
        st.flapping = False
        if st.failing - before:
            return self._failed(member, st, service, now, serving, t.detail)
        after_maintenance = st.after_maintenance
        if not st.failing:
            st.after_maintenance = False
        return self._recovered(member, st, before - st.failing, now, after_maintenance)

    def _state(self, st: _MemberState, **extra: Any) -> dict[str, Any]:
        return {"failing": self._ordered(st.failing), "flapping": st.flapping, "maintenance": st.maintenance,
                **extra}

    def _event(self, member: Member, st: _MemberState, kind: str, extra: Mapping[str, Any]) -> IncidentUpdate | None:
        incident = self._open.get(st.incident) if st.incident else None
        if incident is None:
            return None
        return self._write(incident, member, st, kind, extra)

    def _write(self, incident: _Open, member: Member, st: _MemberState, kind: str,
               extra: Mapping[str, Any], update: UpdateKind = "updated") -> IncidentUpdate:
        data = self._state(st, **extra)
        incident.affected.update(st.failing)
        event = self._store.add_incident_event(incident.id, event_text(self._inv, kind, _ref(member), data),
                                               kind=kind, member=_ref(member), data=data)
        return IncidentUpdate(update, incident.id, incident.key, incident.title, event)

    def _maintenance(self, member: Member, st: _MemberState, *, on: bool) -> IncidentUpdate | None:
        if st.maintenance == on:
            return None  # the host's other services say the same
        st.maintenance = on
        st.checking_again = st.after_maintenance = not on and bool(st.failing)
        if not st.failing:
            return None  # planned maintenance of a healthy host is not an incident
        return self._event(member, st, iv.MAINTENANCE_ON if on else iv.MAINTENANCE_OFF, {})

    def _failed(
        self, member: Member, st: _MemberState, service: str, now: float,
        serving: Mapping[str, str | None], detail: str,
    ) -> IncidentUpdate:
        incident, fresh = self._attach(member, st, now, serving)
        extra = {"service": service, "detail": _short(detail), "serving": self._serving(st, serving, member)}
        return self._write(incident, member, st, iv.DOWN, extra, "opened" if fresh else "updated")

    def _serving(self, st: _MemberState, serving: Mapping[str, str | None], member: Member) -> dict[str, str | None]:
        services = st.failing if member[0] == "host" else {member[1]}
        return {s: serving.get(s) for s in self._ordered(services)}

    def _recovered(
        self, member: Member, st: _MemberState, back: set[str], now: float, after_maintenance: bool
    ) -> IncidentUpdate | None:
        incident = self._open.get(st.incident) if st.incident else None
        if incident is None:
            return None  # a recovery from a failure nobody announced
        if st.failing:
            return self._write(incident, member, st, iv.PARTIAL, {"back": self._ordered(back)})
        return self._resolve_or_update(incident, member, st, iv.UP,
                                       {"after_maintenance": after_maintenance}, now)

    def _announce_flapping(
        self, member: Member, st: _MemberState, now: float, serving: Mapping[str, str | None], detail: str
    ) -> IncidentUpdate:
        incident = self._open.get(st.incident) if st.incident else None
        if incident is None:
            # Its last change opened nothing yet (or resolved it): the flapping needs a home.
            incident, _ = self._attach(member, st, now, serving)
        extra = {"changes": len(st.changes), "window": self._flap_window, "detail": _short(detail)}
        update = self._write(incident, member, st, iv.FLAPPING, extra)
        return IncidentUpdate("flapping", update.incident_id, update.key, update.title, update.event)

    def _settle(self, now: float, serving: Mapping[str, str | None]) -> list[IncidentUpdate]:
        """Flapping members that have calmed down, and open incidents left with nothing failing."""
        updates: list[IncidentUpdate] = []
        for member, st in self._members.items():
            if not st.flapping or self._flaps(st, now):
                continue
            st.flapping = False
            incident = self._open.get(st.incident) if st.incident else None
            if incident is None:
                continue
            extra = {"serving": self._serving(st, serving, member)} if st.failing else {}
            updates.append(self._resolve_or_update(incident, member, st, iv.STABLE, extra, now))
        for incident in list(self._open.values()):
            if self._clear(incident, now):
                # Nothing failing but still open: its last member came back while flapping, or
                # the timeline says so after a restart.
                updates.append(self._resolve(incident, "", {}))
        return updates

    def _resolve_or_update(self, incident: _Open, member: Member, st: _MemberState, kind: str,
                           extra: Mapping[str, Any], now: float) -> IncidentUpdate:
        if not self._clear(incident, now):
            return self._write(incident, member, st, kind, extra)
        return self._resolve(incident, _ref(member), self._state(st, **extra, why=kind))

    def _resolve(self, incident: _Open, member: str, data: dict[str, Any]) -> IncidentUpdate:
        record = self._store.get_incident(incident.id)
        took = None
        if record is not None:
            took = round((self._store.now() - record.opened_at).total_seconds())
        data = {**data, "took": took}
        text = event_text(self._inv, iv.RESOLVED, member, data)
        resolved = self._store.resolve_incident(incident.key, text=text, data=data, member=member)
        self._close(incident)
        event = resolved.events[-1] if resolved is not None and resolved.events else None
        if event is None:  # resolved by another process between our two statements
            event = IncidentEvent(self._store.now(), iv.RESOLVED, member, data, text)
        return IncidentUpdate("resolved", incident.id, incident.key, incident.title, event)

    # ------------------------------------------------------------- incidents

    def _attach(
        self, member: Member, st: _MemberState, now: float, serving: Mapping[str, str | None]
    ) -> tuple[_Open, bool]:
        """The open incident `member` belongs to now, and whether it was just opened for it."""
        incident = self._open.get(st.incident) if st.incident else None
        if incident is None:
            incident = self._shared_cause(member, now, serving)
        if incident is not None:
            incident.members.add(member)
            st.incident = incident.key
            return incident, False
        kind, name = member
        key = f"{kind}:{name}"
        if kind == "host":
            title = f"{name} is down"
        else:
            title = f"{name} is unreachable through {self._inv.services[name].router}"
        record = self._store.open_incident(key=key, title=title)
        # The store hands back an incident already open for the key (another process, or
        # one rebuild() skipped); only one without a timeline is news.
        fresh = not record.events
        incident = self._open.get(record.key) or _Open(record.id, record.key, record.title, now if fresh else None)
        self._open[incident.key] = incident
        incident.members.add(member)
        st.incident = incident.key
        return incident, fresh

    def _shared_cause(self, member: Member, now: float, serving: Mapping[str, str | None]) -> _Open | None:
        kind, name = member
        if kind == "service":
            # A VIP that fails because the host behind it is down is that host's incident.
            host_state = self._members.get(("host", serving.get(name) or ""))
            if host_state is not None and host_state.failing and host_state.incident in self._open:
                return self._open[host_state.incident]
        recent = [o for o in self._open.values() if o.opened is not None and now - o.opened < self._group_window]
        return max(recent, key=lambda o: (o.opened or 0.0, o.id)) if recent else None

    def _clear(self, incident: _Open, now: float) -> bool:
        for member in incident.members:
            st = self._members.get(member)
            if st is not None and (st.failing or self._flaps(st, now)):
                return False
        return True

    def _close(self, incident: _Open) -> None:
        self._open.pop(incident.key, None)
        for member in incident.members:
            st = self._members.get(member)
            if st is not None and st.incident == incident.key:
                st.incident = None

    # --------------------------------------------------------------- rebuild

    def _load(self, record: IncidentRecord, now: float) -> None:
        kind, _, name = record.key.partition(":")
        if not ((kind == "host" and name in self._inv.hosts) or (kind == "service" and name in self._inv.services)):
            return  # not one of ours (or for something no longer in the inventory)
        incident = _Open(record.id, record.key, record.title, None)
        self._open[record.key] = incident
        for e in record.events:
            if e.kind == iv.ACK and not incident.acked_by:
                incident.acked_by = str(e.data.get("by", ""))
            if not e.member or e.kind not in iv.MEMBER_KINDS:
                continue
            mkind, _, mname = e.member.partition(":")
            member: Member
            if mkind == "host" and mname in self._inv.hosts:
                member = ("host", mname)
            elif mkind == "service" and mname in self._inv.services:
                member = ("service", mname)
            else:
                continue
            failing, flapping, maintenance = iv.member_state(e.data)
            st = self._members.setdefault(member, _MemberState())
            st.incident = incident.key
            incident.members.add(member)
            st.failing = {s for s in failing if s in self._inv.services}
            incident.affected.update(st.failing)
            st.maintenance = maintenance
            if flapping and not st.flapping:
                # How long it has been flapping is lost with the old process's clock; assume
                # it just changed, so automatic actions wait a full window after a restart.
                st.last_change = now
                st.changes = deque([now] * self._flap_threshold)
            st.flapping = flapping
        if not incident.members and kind in ("host", "service"):
            # Opened but nothing recorded about who failed (a crash between the two writes).
            first: Member = ("host", name) if kind == "host" else ("service", name)
            incident.members.add(first)
            self._members.setdefault(first, _MemberState()).incident = incident.key

    # ------------------------------------------------------------------ misc

    def _ordered(self, services: Iterable[str]) -> list[str]:
        wanted = set(services)
        return [s for s in self._inv.services if s in wanted]

    def _flaps(self, st: _MemberState, now: float) -> bool:
        if st.last_change is None or now - st.last_change >= self._flap_window:
            return False
        if st.flapping:
            return True
        self._prune(st, now)
        return len(st.changes) >= self._flap_threshold

    def _prune(self, st: _MemberState, now: float) -> None:
        while st.changes and st.changes[0] <= now - self._flap_window:
            st.changes.popleft()


def _short(detail: str, limit: int = _DETAIL_MAX) -> str:
    text = one_line(detail.strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"

