"""What `lab status` reports, as data, and its text rendering."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path


@dataclass(frozen=True)
class DeviceStatus:
    name: str
    namespace: str
    kind: str
    mgmt: IPv4Address | None
    present: bool
    processes: Mapping[str, bool]
    links: Mapping[str, str]  # ifname -> "up" | "down" | "no-carrier" | "missing"

    @property
    def healthy(self) -> bool:
        return self.present and all(self.processes.values()) and all(s == "up" for s in self.links.values())


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    vip: IPv4Address
    prefix: IPv4Network
    router: str
    next_hops: tuple[str, ...]  # the router's route for the prefix, as host names where known
    answered_by: str | None
    error: str | None


@dataclass(frozen=True)
class LabStatus:
    prefix: str
    slot: int
    state_dir: Path
    mgmt_net: IPv4Network
    root_link: str
    namespaces: Mapping[str, bool]
    devices: tuple[DeviceStatus, ...]
    services: tuple[ServiceStatus, ...]

    @property
    def exists(self) -> bool:
        return any(self.namespaces.values()) or self.root_link != "missing"

    @property
    def healthy(self) -> bool:
        return (
            all(self.namespaces.values())
            and self.root_link == "up"
            and all(d.healthy for d in self.devices)
            and all(s.answered_by is not None for s in self.services)
        )

    def render(self) -> str:
        if not self.exists:
            return f"lab {self.prefix}: not running"
        verdict = "healthy" if self.healthy else "DEGRADED"
        lines = [
            f"lab {self.prefix} (slot {self.slot}): {verdict}",
            f"  mgmt {self.mgmt_net} via {self.prefix}-mgmt ({self.root_link}), state {self.state_dir}",
        ]
        missing = [ns for ns, ok in self.namespaces.items() if not ok]
        lines.append("  namespaces: all present" if not missing else f"  namespaces missing: {' '.join(missing)}")
        lines.append("devices:")
        for dev in self.devices:
            procs = ", ".join(f"{p} {'up' if ok else 'DOWN'}" for p, ok in dev.processes.items())
            links = ", ".join(f"{i} {_shout(s)}" for i, s in dev.links.items())
            mgmt = str(dev.mgmt) if dev.mgmt else "-"
            where = "" if dev.present else "  (namespace missing)"
            lines.append(f"  {dev.name:<7}{mgmt:<15}{procs or '-':<42}{links}{where}")
        lines.append(f"services (HTTP GET from {self.prefix}-client):")
        for svc in self.services:
            via = ", ".join(svc.next_hops) or "no route"
            answer = f"answered by {svc.answered_by}" if svc.answered_by else f"NO ANSWER ({svc.error})"
            lines.append(f"  {svc.name:<7}{svc.vip!s:<16}{svc.router} -> {via:<14}{answer}")
        return "\n".join(lines)


def _shout(state: str) -> str:
    # Upper case makes the one broken thing stand out in a screen of "up".
    return state if state == "up" else state.upper()
