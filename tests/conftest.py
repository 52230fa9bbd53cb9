"""Shared test setup: the `lab` marker and the session-wide network-namespace lab."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from bot.drivers import Transcript
from bot.inventory import Inventory
from bot.values import replace
from lab import Lab

# Overridable so that two test runs on one machine can each have a lab of their own.
LAB_PREFIX = os.environ.get("LASTHOP_TEST_LAB_PREFIX", "lt")
LAB_SLOT = int(os.environ.get("LASTHOP_TEST_LAB_SLOT", "7"))
_NEEDS_ROOT = "needs root (network namespaces); CI runs these as root"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab: needs root and builds the network-namespace lab")


def require_root() -> None:
    """Skip a lab test when not root, except in CI: there a skipped lab test would hide a failure."""
    if os.geteuid() == 0:
        return
    if os.environ.get("CI"):
        pytest.fail(f"lab tests must run as root in CI ({_NEEDS_ROOT})", pytrace=False)
    pytest.skip(_NEEDS_ROOT)


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest) -> Lab:
    """A lab (prefix lt, slot 7 unless overridden) for the whole session, torn down at its end."""
    require_root()
    the_lab = Lab(prefix=LAB_PREFIX, slot=LAB_SLOT)
    # Registered before up(): a lab that fails half-way up is torn down too.
    request.addfinalizer(the_lab.down)
    the_lab.up()
    return the_lab


@pytest.fixture
def lab_inv(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Inventory:
    """The lab's own inventory, with a fresh state database per test."""
    from bot.config import load_inventory

    inv = load_inventory(lab.inventory)
    db = tmp_path_factory.mktemp("state") / "lasthop.db"
    return replace(inv, state_url=f"sqlite:///{db}", state_url_redacted=f"sqlite:///{db}")


@pytest.fixture
def lab_home(lab: Lab) -> Iterator[None]:
    """After the test, put every service back on its initial host, as `lab up` made it."""
    yield
    restore_lab_routes(lab)


def restore_lab_routes(lab: Lab) -> None:
    from bot.drivers import DeviceSpec, RouteMove, make_router_driver
    from lab import sshd

    plan = lab.plan
    for router, kind in (("r1", "frr"), ("r2", "linux")):
        device = plan.device(router)
        spec = DeviceSpec(router, str(device.address), sshd.login(device), lab.known_hosts, key_file=lab.key_file)
        with make_router_driver(kind, spec) as d:
            for svc in plan.services:
                if svc.router != router:
                    continue
                now = d.fib_next_hops(svc.prefix)
                if now != {svc.next_hop}:
                    d.move([RouteMove(svc.prefix, next(iter(now)) if len(now) == 1 else None, svc.next_hop)])
                if kind == "frr":  # a half-done change can leave a second configured next hop
                    for prefix, hop in d.configured():
                        if prefix == svc.prefix and hop != svc.next_hop:
                            d.cli.configure([f"no ip route {prefix} {hop}"], Transcript(router))  # type: ignore[attr-defined]
                d.wait_for_fib(svc.prefix, svc.next_hop)
