"""One driver per router and one verifier per host, made on first use and kept.

Sessions are persistent, so the second move of the night does not pay for the
SSH handshake again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from bot.drivers import RouterDriver, make_router_driver
from bot.drivers.host import HostVerifier
from bot.inventory import Inventory

RouterFactory = Callable[[str], RouterDriver]
HostFactory = Callable[[str], HostVerifier]


class Devices:
    def __init__(self, inv: Inventory, router_factory: RouterFactory | None = None,
                 host_factory: HostFactory | None = None) -> None:
        self.inv = inv
        self._router_factory = router_factory or self._make_router
        self._host_factory = host_factory or (lambda name: HostVerifier(self.inv.hosts[name].ssh))
        self._routers: dict[str, RouterDriver] = {}
        self._hosts: dict[str, HostVerifier] = {}
        self._lock = threading.Lock()

    def _make_router(self, name: str) -> RouterDriver:
        r = self.inv.routers[name]
        return make_router_driver(r.driver, r.ssh, revert_seconds=r.revert_seconds)

    def router(self, name: str) -> RouterDriver:
        with self._lock:
            if name not in self._routers:
                self._routers[name] = self._router_factory(name)
            return self._routers[name]

    def host(self, name: str) -> HostVerifier:
        with self._lock:
            if name not in self._hosts:
                self._hosts[name] = self._host_factory(name)
            return self._hosts[name]

    def close(self) -> None:
        with self._lock:
            for r in self._routers.values():
                r.close()
            for h in self._hosts.values():
                h.close()
            self._routers.clear()
            self._hosts.clear()
