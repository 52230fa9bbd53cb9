"""Who serves what, read live: one data model that the CLI prints and Slack renders."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from bot.drivers.errors import DriverError
from bot.engine.live import LiveTable, find_drift, hops, serving_host
from bot.engine.pipeline import Engine
from bot.health.state import Health


@dataclass(frozen=True)
class ServiceRow:
    service: str
    prefix: str
    router: str
    host: str | None  # the host the router really points at; None: none, several, or unknown
    next_hops: tuple[str, ...]
    health: str  # of that host, for this service
    loopback: bool | None  # its VIPs verified on its loopback just now; None: not checked
    drift: str = ""
    error: str = ""  # the router could not be read


@dataclass
class StatusView:
    rows: list[ServiceRow]
    hosts: dict[str, dict[str, str]] = field(default_factory=dict)  # host -> service -> health
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"services": [asdict(r) for r in self.rows], "hosts": self.hosts, "notes": self.notes}


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

    def vips_ok(name: str) -> bool | None:
        host = serving[name]
        if not loopback or host is None:
            return None
        try:
            return engine.devices.host(host).check_vips(inv.services[name].vips, arp=False).ok
        except DriverError:
            return False

    with ThreadPoolExecutor(max_workers=4) as pool:
        loop = dict(zip([s.name for s in services], pool.map(vips_ok, [s.name for s in services]), strict=True))
    rows = []
    for svc in services:
        host = serving[svc.name]
        state = health.get((svc.name, host), Health.INIT) if host else Health.INIT
        rows.append(ServiceRow(
            service=svc.name, prefix=str(svc.prefix), router=svc.router, host=host,
            next_hops=tuple(str(h) for h in sorted(hops(table, svc.router, svc.prefix))),
            health=state.value, loopback=loop[svc.name], drift=drift.get(svc.name, ""),
            error=errors.get(svc.router, ""),
        ))
    hosts: dict[str, dict[str, str]] = {}
    for (svc_name, host_name), state in sorted(health.items()):
        hosts.setdefault(host_name, {})[svc_name] = state.value
    view = StatusView(rows, hosts)
    for change in engine.store.changes_in_flight():
        view.notes.append(f"change {change.id[:8]} on {change.router} is still {change.status}")
    return view
