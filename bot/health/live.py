"""Health read on demand, for a process with no scheduler (the CLI, a one-off move).

All (service, host) checks run at once in a small pool, so a black-holed host
costs one timeout, not one per check.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address
from typing import Protocol

from bot.health.checks import CheckResult, run_check
from bot.health.state import Health
from bot.inventory import Inventory

HealthMap = dict[tuple[str, str], Health]


class HealthSource(Protocol):
    def snapshot(self) -> HealthMap: ...

    def check(self, service: str, host: str) -> CheckResult: ...


class LiveHealth:
    """Checks everything when asked. One result per pair: UP or DOWN, nothing in between."""

    def __init__(self, inv: Inventory, source: IPv4Address | None = None, workers: int = 8) -> None:
        self.inv = inv
        self.source = source
        self.workers = workers
        self.last: dict[tuple[str, str], CheckResult] = {}

    def check(self, service: str, host: str) -> CheckResult:
        svc = self.inv.services[service]
        result = run_check(self.inv.hosts[host].address, svc.check, self.source)
        self.last[(service, host)] = result
        return result

    def snapshot(self) -> HealthMap:
        pairs = [(s.name, h) for s in self.inv.services.values() for h in s.hosts]
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            results = list(pool.map(lambda p: self.check(*p), pairs))
        return {p: (Health.UP if r.ok else Health.DOWN) for p, r in zip(pairs, results, strict=True)}
