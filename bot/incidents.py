"""Incidents: health transitions turned into a few clear, threaded announcements.

The seed's sysadmin learned of the outage from a pager at 5 AM. lasthop must notice
first and say so once: every service of a dead host, and every host that fails in the
same burst, is one incident with a timeline, not a storm of alerts.

Members and incidents
    A member is a host (any of its (service, host) targets is DOWN) or a service whose VIP
    check through the router fails (target (service, "@vip")). A member that fails while in
    no open incident joins the open incident opened less than `group_window` ago (for a
    VIP: the incident of the host serving it, whenever that was opened), else opens its
    own, keyed `host:<host>` or `service:<service>`. The key is fixed when the incident is
    opened (the store cannot rename one), so a burst that began with web1 stays
    `host:web1` even when web2 and web3 join it. The incident resolves when every member
    is back and none is flapping.

The timeline is the journal
    Every event text starts with one of a few fixed phrases ("web1 is down (www-a)",
    "web1 is back up", "www-a is unreachable through r1", ...). `rebuild()` replays them
    after a restart, so a member still down is recognised and not announced again. The
    schema has no column for members, and the timeline must exist anyway for people.

Flapping
    A member whose state flips between down and up `flap_threshold` times within
    `flap_window` is flapping: one "flapping" update, then silence for it (its incident
    stays open) until it has not changed for `flap_window`; `tick()` notices that.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from bot.durations import format_duration
from bot.health.machine import Transition
from bot.health.state import Health
from bot.inventory import Inventory, one_line

if TYPE_CHECKING:
    from bot.state import IncidentRecord, StateStore

VIP = "@vip"
# Maintenance ends a failure as far as alerting goes: a person has taken the host.
_CLEARS = frozenset({Health.UP, Health.DISABLED})
_DETAIL_MAX = 80

MemberKind = Literal["host", "service"]
Member = tuple[MemberKind, str]
UpdateKind = Literal["opened", "updated", "resolved", "flapping"]

# The journal's phrases; rebuild() applies them in timeline order, so the latest one wins.
_NAME = r"(?P<name>[^\s()]+)"
_J_DOWN = re.compile(rf"^{_NAME} is (?:still |stable again and )?down \((?P<list>[^)]*)\)")
_J_UP = re.compile(rf"^{_NAME} is (?:back up|no longer checked|stable again and up)\b")
_J_VIP_DOWN = re.compile(rf"^{_NAME} is (?:stable again and )?unreachable through ")
_J_VIP_UP = re.compile(rf"^{_NAME} is (?:reachable again|stable again and reachable) through ")
_J_FLAP = re.compile(rf"^{_NAME} (?P<vip>through \S+ )?is flapping\b")
_J_STABLE_HOST = re.compile(rf"^{_NAME} is stable again and ")
_J_STABLE_VIP = re.compile(rf"^{_NAME} is stable again and (?:reachable|unreachable) through ")


@dataclass(frozen=True)
class IncidentUpdate:
    """One thing to tell people, in the incident's thread (`key` and `incident_id` name it)."""

    kind: UpdateKind
    incident_id: int
    key: str
    title: str
    text: str


@dataclass
class _MemberState:
    # Host: its services whose check is DOWN. VIP member: {service} while unreachable.
    failing: set[str] = field(default_factory=set)
    incident: str | None = None  # key of the open incident it belongs to
    changes: deque[float] = field(default_factory=deque)
    last_change: float | None = None
    flapping: bool = False


@dataclass
class _Open:
    id: int
    key: str
    title: str
    # On the tracker's clock; None when loaded by rebuild(): a monotonic clock does not
    # survive a restart, and an incident from before it is no longer "just opened".
    opened: float | None
    members: set[Member] = field(default_factory=set)


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

        For threading a later message (an automatic move's hold reason, say): after grouping,
        web2's failures may live in `host:web1`.
        """
        with self._lock:
            member = self._member_for(target)
            st = self._members.get(member) if member is not None else None
            return st.incident if st is not None and st.incident in self._open else None

    def rebuild(self) -> None:
        """Load the open incidents from the store (after a restart) by replaying their timelines."""
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
        before = set(st.failing)
        if t.new is Health.DOWN:
            st.failing.add(service)
        elif t.new in _CLEARS:
            st.failing.discard(service)
        # FALLING, RISING, INIT: in doubt, so what was known still stands.
        if st.failing == before:
            return None
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
        return self._recovered(member, st, before - st.failing, t.new, now)

    def _failed(
        self, member: Member, st: _MemberState, service: str, now: float,
        serving: Mapping[str, str | None], detail: str,
    ) -> IncidentUpdate:
        text = self._down_text(member, st, serving, detail=(service, detail))
        incident, fresh = self._attach(member, st, now, serving)
        self._store.add_incident_event(incident.id, text)
        return IncidentUpdate("opened" if fresh else "updated", incident.id, incident.key, incident.title, text)

    def _recovered(
        self, member: Member, st: _MemberState, back: set[str], new: Health, now: float
    ) -> IncidentUpdate | None:
        incident = self._open.get(st.incident) if st.incident else None
        if incident is None:
            return None  # a recovery from a failure nobody announced (before a restart, say)
        kind, name = member
        if st.failing:
            back_up = self._ordered(back)
            text = f"{name} is still down ({self._listing(st.failing)}); {_join(back_up)} {_is(back_up)} back up"
        elif kind == "service":
            text = f"{name} is reachable again through {self._inv.services[name].router}"
        elif new is Health.DISABLED:
            text = f"{name} is no longer checked (maintenance)"
        else:
            text = f"{name} is back up"
        return self._resolve_or_update(incident, text, now)

    def _announce_flapping(
        self, member: Member, st: _MemberState, now: float, serving: Mapping[str, str | None], detail: str
    ) -> IncidentUpdate:
        kind, name = member
        incident = self._open.get(st.incident) if st.incident else None
        if incident is None:
            # Its last change opened nothing yet (or resolved it): the flapping needs a home,
            # and the timeline a record of the state it is in for rebuild() to replay.
            incident, _ = self._attach(member, st, now, serving)
            if st.failing:
                self._store.add_incident_event(incident.id, self._down_text(member, st, serving))
        window = format_duration(self._flap_window)
        who = name if kind == "host" else f"{name} through {self._inv.services[name].router}"
        stops = "; lasthop moves nothing to or from it automatically" if kind == "host" else ""
        text = (
            f"{who} is flapping: {len(st.changes)} changes in {window}{stops}, "
            f"and says nothing more about it until it has been stable for {window}"
        )
        if detail:
            text += f"; last: {_short(detail)}"
        self._store.add_incident_event(incident.id, text)
        return IncidentUpdate("flapping", incident.id, incident.key, incident.title, text)

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
            updates.append(self._resolve_or_update(incident, self._stable_text(member, st, serving), now))
        for incident in list(self._open.values()):
            if self._clear(incident, now):
                # Nothing failing but still open: its last member came back while flapping, or
                # the timeline says so after a restart.
                updates.append(self._resolve_or_update(incident, "nothing is failing any more", now))
        return updates

    def _resolve_or_update(self, incident: _Open, text: str, now: float) -> IncidentUpdate:
        if not self._clear(incident, now):
            self._store.add_incident_event(incident.id, text)
            return IncidentUpdate("updated", incident.id, incident.key, incident.title, text)
        record = self._store.resolve_incident(incident.key, text=text)
        self._close(incident)
        if record is not None and record.resolved_at is not None:
            took = round((record.resolved_at - record.opened_at).total_seconds())
            text = f"{text}; all clear after {format_duration(took)}"
        return IncidentUpdate("resolved", incident.id, incident.key, incident.title, text)

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
        first: Member
        if kind == "host" and name in self._inv.hosts:
            first = ("host", name)
        elif kind == "service" and name in self._inv.services:
            first = ("service", name)
        else:
            return  # not one of ours (or for something no longer in the inventory)
        incident = _Open(record.id, record.key, record.title, None)
        self._open[record.key] = incident
        self._join_loaded(incident, first)
        for _, text in record.events:
            self._replay(incident, text, now)

    def _replay(self, incident: _Open, text: str, now: float) -> None:
        hosts, services = self._inv.hosts, self._inv.services
        if (m := _J_FLAP.match(text)) is not None:
            member: Member = ("service", m["name"]) if m["vip"] else ("host", m["name"])
            if member[1] in (services if m["vip"] else hosts):
                st = self._join_loaded(incident, member)
                # How long it has been flapping is lost with the old process's clock; assume
                # it just changed, so automatic actions wait a full window after a restart.
                st.flapping, st.last_change = True, now
                st.changes = deque([now] * self._flap_threshold)
            return
        if (m := _J_VIP_DOWN.match(text) or _J_VIP_UP.match(text)) is not None and m["name"] in services:
            st = self._join_loaded(incident, ("service", m["name"]))
            st.failing = {m["name"]} if m.re is _J_VIP_DOWN else set()
            if _J_STABLE_VIP.match(text):
                st.flapping = False
            return
        if (m := _J_DOWN.match(text) or _J_UP.match(text)) is not None and m["name"] in hosts:
            st = self._join_loaded(incident, ("host", m["name"]))
            listed = (s.strip() for s in m["list"].split(",")) if m.re is _J_DOWN else ()
            st.failing = {s for s in listed if s in services}
            if _J_STABLE_HOST.match(text):
                st.flapping = False

    def _join_loaded(self, incident: _Open, member: Member) -> _MemberState:
        st = self._members.setdefault(member, _MemberState())
        st.incident = incident.key
        incident.members.add(member)
        return st

    # ------------------------------------------------------------------ text

    def _down_text(
        self, member: Member, st: _MemberState, serving: Mapping[str, str | None],
        *, detail: tuple[str, str] | None = None, head: str = "",
    ) -> str:
        kind, name = member
        if kind == "service":
            router = self._inv.services[name].router
            host = serving.get(name)
            behind = f"it is served by {host}" if host else "who serves it is unknown"
            text = f"{name} is {head}unreachable through {router} (VIP check); {behind}"
        else:
            failing = self._ordered(st.failing)
            text = f"{name} is {head}down ({', '.join(failing)}); {self._advice(name, failing, serving)}"
        if detail is not None and detail[1]:
            text += f"; {detail[0]}: {_short(detail[1])}"
        return text

    def _advice(self, host: str, failing: list[str], serving: Mapping[str, str | None]) -> str:
        served = [s for s in failing if serving.get(s) == host]
        unknown = [s for s in failing if serving.get(s) is None]
        parts = []
        if served:
            everything = [s for s in self._inv.services if serving.get(s) == host]
            if len(served) > 1 and served == everything:
                move = f"suggested move: lasthop failover {host}"
            else:
                moves = ", ".join(f"lasthop failover {s}" for s in served)
                move = f"suggested move{'s' if len(served) > 1 else ''}: {moves}"
            parts.append(f"{_join(served)} {_is(served)} served by {host}: {move}")
        if unknown:
            parts.append(f"who serves {_join(unknown)} is unknown")
        if not parts:
            parts.append(f"{host} serves none of {'them' if len(failing) > 1 else 'it'} now: nothing to move")
        return "; ".join(parts)

    def _stable_text(self, member: Member, st: _MemberState, serving: Mapping[str, str | None]) -> str:
        kind, name = member
        if st.failing:
            return self._down_text(member, st, serving, head="stable again and ")
        if kind == "service":
            return f"{name} is stable again and reachable through {self._inv.services[name].router}"
        return f"{name} is stable again and up"

    def _ordered(self, services: Iterable[str]) -> list[str]:
        wanted = set(services)
        return [s for s in self._inv.services if s in wanted]

    def _listing(self, services: Iterable[str]) -> str:
        return ", ".join(self._ordered(services))

    # --------------------------------------------------------------- flapping

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


def _join(names: Iterable[str]) -> str:
    items = list(names)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _is(names: Iterable[str]) -> str:
    return "is" if len(list(names)) == 1 else "are"


def _short(detail: str) -> str:
    text = one_line(detail.strip())
    return text if len(text) <= _DETAIL_MAX else text[: _DETAIL_MAX - 1] + "…"
