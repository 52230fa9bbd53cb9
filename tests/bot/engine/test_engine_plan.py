"""`Engine.plan` tells the planner what only the store and the health source know: maintenance, flapping.

No network: the router is a table in memory, health a dictionary, the store a SQLite file.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from bot.engine.devices import Devices
from bot.engine.model import MoveRequest
from bot.engine.pipeline import Engine
from bot.health.checks import CheckResult
from bot.health.state import Health
from bot.inventory import Inventory
from bot.state import StateStore

WEB = {n: IPv4Address(f"192.0.2.{n + 1}") for n in (1, 2, 3)}
# www-a on web1 (down), www-b on web2, www-d on web1: left alone, www-a goes to the idle web3.
TABLE = {
    IPv4Network("198.51.100.32/27"): {WEB[1]},
    IPv4Network("198.51.100.64/27"): {WEB[2]},
    IPv4Network("198.51.100.96/27"): {WEB[1]},
}


class TableRouter:
    def fib_next_hops(self, prefix: IPv4Network) -> set[IPv4Address]:
        return set(TABLE.get(prefix, set()))

    def fib_next_hops_many(self, prefixes: list[IPv4Network]) -> dict[IPv4Network, set[IPv4Address]]:
        return {p: self.fib_next_hops(p) for p in prefixes}


class DictHealth:
    """A health source without flapping(): the CLI's kind."""

    def __init__(self, inv: Inventory) -> None:
        self.state = {(s, h): Health.UP for s in inv.services for h in inv.hosts}
        self.state[("www-a", "web1")] = Health.DOWN

    def snapshot(self) -> dict[tuple[str, str], Health]:
        return dict(self.state)

    def check(self, service: str, host: str) -> CheckResult:  # pragma: no cover - planning never checks
        raise AssertionError("planning must not run checks")


class FlappingHealth(DictHealth):
    """A health source that knows which hosts flap: the serve daemon's kind."""

    def flapping(self) -> set[str]:
        return {"web3"}


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(f"sqlite:///{tmp_path}/state.db")


def target(inv: Inventory, store: StateStore, health: DictHealth) -> str:
    engine = Engine(inv, store, devices=Devices(inv, router_factory=lambda name: TableRouter()),  # type: ignore[arg-type, return-value]
                    health=health)
    plan = engine.plan(MoveRequest(kind="service", target="www-a", actor="alice", source="cli"))
    (move,) = plan.moves
    return move.to_host


def test_plan_goes_to_the_least_loaded_host_without_maintenance_or_flapping(inv: Inventory, store: StateStore) -> None:
    assert target(inv, store, DictHealth(inv)) == "web3"


def test_plan_avoids_a_host_in_maintenance_in_the_store(inv: Inventory, store: StateStore) -> None:
    store.set_maintenance("web3", by="bob", reason="kernel update")
    assert target(inv, store, DictHealth(inv)) == "web2"  # web3 still checks UP: only the store knows


def test_plan_avoids_a_host_the_health_source_says_flaps(inv: Inventory, store: StateStore) -> None:
    assert target(inv, store, FlappingHealth(inv)) == "web2"
