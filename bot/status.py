"""Who serves what, read live: one data model that the CLI prints and Slack renders."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from bot.drivers.errors import DriverError
from bot.engine.live import LiveTable, find_drift, hops, serving_host
from bot.engine.pipeline import Engine
from bot.health.state import Health
from bot.state.errors import StateError
from bot.state.records import LeaderRecord


@dataclass(frozen=True)
class ServiceRow:
    service: str
    prefix: str
    router: str
    host: str | None  # the host the router really points at; None: none, several, or unknown
    next_hops: tuple[str, ...]
    health: str  # of that host, for this service
    loopback: bool | None  # True: its VIPs are on its loopback; False: some are missing; None: not known
    drift: str = ""
    error: str = ""  # the router could not be read
    loopback_error: str = ""  # why the loopback is not known: the host could not be read (never "missing")

    @property
    def loopback_state(self) -> LoopbackState:
        """In one word: ok, missing, unknown (the host could not be read: see loopback_error), or unchecked."""
        if self.loopback is not None:
            return "ok" if self.loopback else "missing"
        return "unknown" if self.loopback_error else "unchecked"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "loopback_state": self.loopback_state}


LoopbackState = Literal["ok", "missing", "unknown", "unchecked"]


@dataclass(frozen=True)
class HostMaintenance:
    """A host in maintenance: no alerts, no moves to it, until `until` (None: until turned off)."""

    host: str
    by: str
    reason: str
    since: datetime
    until: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {"by": self.by, "reason": self.reason, "since": self.since.isoformat(),
                "until": self.until.isoformat() if self.until else None}


@dataclass(frozen=True)
class Leadership:
    """Which `serve` instance leads, as the store records it. `record` None and no `error`: no
    serve ever ran on this store, so there is nothing to say. `shared`: PostgreSQL, where a
    follower takes over from a leader that is gone; SQLite has no followers."""

    record: LeaderRecord | None = None
    shared: bool = False
    error: str = ""  # the store could not be read

    def to_dict(self) -> dict[str, Any] | None:
        r = self.record
        if r is None:
            return None
        return {"instance": r.instance, "process": f"{r.node}:{r.pid}", "term": r.term,
                "since": r.since.isoformat(), "leading": r.leading,
                "until": r.until.isoformat() if r.until else None, "reason": r.reason}

    def words(self, at: Callable[[datetime], str], name: Callable[[str], str] = str) -> str | None:
        """One line, or None when there is nothing to say. `at` formats a time, `name` makes store
        text safe for where it goes (chat escapes it); both differ between the terminal and chat."""
        r = self.record
        if self.error:
            return f"leader: unknown ({name(self.error)})"
        if r is None:
            return None
        if r.leading:
            return f"leader: {name(r.instance)} ({name(r.node)}:{r.pid}) since {at(r.since)}, term {r.term}"
        # Said plainly: who follows depends on the database, and SQLite runs one serve at most.
        then = "a follower, if one runs, takes over within seconds" if self.shared else "lasthop serve is not running"
        if r.until is not None:
            why = f" ({name(r.reason)})" if r.reason else ""
            return f"leader: none: {name(r.instance)} stood down at {at(r.until)}{why}; {then}"
        ended = "session" if self.shared else "process"
        return f"leader: none: {name(r.instance)}'s {ended} ended; {then}"


def read_leadership(engine: Engine) -> Leadership:
    """The store's leader record; a database error is said, not raised: status must still answer."""
    try:
        return Leadership(engine.store.leader(), engine.store.shared)
    except StateError as e:
        return Leadership(None, engine.store.shared, error=str(e) or type(e).__name__)


@dataclass
class StatusView:
    rows: list[ServiceRow]
    hosts: dict[str, dict[str, str]] = field(default_factory=dict)  # host -> service -> health
    notes: list[str] = field(default_factory=list)
    maintenance: dict[str, HostMaintenance] = field(default_factory=dict)  # host -> its window
    leadership: Leadership = field(default_factory=Leadership)

    def to_dict(self) -> dict[str, Any]:
        return {"services": [r.to_dict() for r in self.rows], "hosts": self.hosts, "notes": self.notes,
                "maintenance": {h: m.to_dict() for h, m in sorted(self.maintenance.items())},
                "leader": self.leadership.to_dict(), "leader_error": self.leadership.error}


def collect_status(engine: Engine, *, only: str | None = None, loopback: bool = True) -> StatusView:
    """Read every router and host now; a device that cannot be read is a row with its error."""
    inv = engine.inv
    live: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for router in sorted(inv.routers):
        try:
            live.update(engine.read_live([router]))
        except DriverError as e:
            errors[router] = str(e)
    table: LiveTable = live
    health = engine.health.snapshot()
    drift = {d.service: d.text for d in find_drift(inv, table, engine.expected())}
    services = [s for s in inv.services.values() if only in (None, s.name) or (only in s.hosts)]
    serving = {s.name: serving_host(inv, table, s.name) for s in services}

    def vips_ok(name: str) -> tuple[bool | None, str]:
        """(True, "") all there, (False, "") some missing, (None, why) the host could not be read."""
        host = serving[name]
        if not loopback or host is None:
            return None, ""
        try:
            return engine.devices.host(host).check_vips(inv.services[name].vips, arp=False).ok, ""
        except DriverError as e:
            # Not logged in (host key, key file, refused, timed out) is not knowing, not "missing".
            return None, str(e) or f"{host}: could not be read"

    with ThreadPoolExecutor(max_workers=4) as pool:
        loop = dict(zip([s.name for s in services], pool.map(vips_ok, [s.name for s in services]), strict=True))
    rows = []
    for svc in services:
        host = serving[svc.name]
        state = health.get((svc.name, host), Health.INIT) if host else Health.INIT
        rows.append(ServiceRow(
            service=svc.name, prefix=str(svc.prefix), router=svc.router, host=host,
            next_hops=tuple(str(h) for h in sorted(hops(table, svc.router, svc.prefix))),
            health=state.value, loopback=loop[svc.name][0], drift=drift.get(svc.name, ""),
            error=errors.get(svc.router, ""), loopback_error=loop[svc.name][1],
        ))
    hosts: dict[str, dict[str, str]] = {}
    for (svc_name, host_name), state in sorted(health.items()):
        hosts.setdefault(host_name, {})[svc_name] = state.value
    shown = set(inv.hosts) if only is None else {only} if only in inv.hosts else {
        h for s in services for h in s.hosts}
    maintenance = {host: HostMaintenance(host, m.by, m.reason, m.since, m.until)
                   for host, m in sorted(engine.store.maintenance().items()) if host in shown}
    view = StatusView(rows, hosts, maintenance=maintenance, leadership=read_leadership(engine))
    for change in engine.store.changes_in_flight(unsettled=True):
        said = "waiting for a person" if change.status == "needs_human" else f"still {change.status}"
        view.notes.append(f"change {change.id[:8]} on {change.router} is {said}")
    return view


def detail_lines(engine: Engine, view: StatusView, kind: str, name: str) -> list[str]:
    """What /status NAME adds: per-host health with rise/fall counters, the route, the last changes."""
    inv = engine.inv
    machines = getattr(engine.health, "machines", {})  # the serve process's state machines, when there
    health = engine.health.snapshot()

    def host_line(service: str, host: str) -> str:
        state = health.get((service, host), Health.INIT).value
        m = machines.get((service, host))
        if m is None:
            return f"{host}: {state}"
        svc = inv.services[service]
        count = (f", {m.fails}/{svc.check.fall} failed" if m.fails else "") + (
            f", {m.passes}/{svc.check.rise} passed" if m.passes else "")
        last = f"; {m.last_detail}" if m.last_detail else ""
        return f"{host}: {state}{count}{last}"

    lines: list[str] = []
    services = [name] if kind == "service" else [s.name for s in inv.services.values() if name in s.hosts]
    for service in services:
        svc = inv.services[service]
        row = next((r for r in view.rows if r.service == service), None)
        route = ", ".join(row.next_hops) if row and row.next_hops else "no route"
        lines.append(f"{service}: {svc.prefix} on {svc.router} via {route}")
        hosts = svc.hosts if kind == "service" else (name,)
        lines.extend(f"  {host_line(service, h)}" for h in hosts)
        for change in engine.store.recent_changes(limit=3, prefix=str(svc.prefix)):
            moves = ", ".join(f"{m['old'] or 'none'} -> {m['new']}" for m in change.moves)
            lines.append(f"  {change.created_at:%m-%d %H:%M}Z {change.status}: {moves} by {change.requested_by}")
    return lines
