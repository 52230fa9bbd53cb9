"""LabPlan is pure: names and addresses only, no system access."""

from __future__ import annotations

import dataclasses
import json
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from lab.plan import ALLOWED_RANGES, LabPlan, PlanError

FORBIDDEN = [IPv4Network("10.0.0.0/8"), IPv4Network("172.16.0.0/12"), IPv4Network("192.168.0.0/16")]


def _allowed(address: IPv4Address) -> bool:
    return any(address in net for net in ALLOWED_RANGES)


@pytest.mark.parametrize("slot", [0, 7, 255])
def test_every_address_is_in_the_documentation_ranges(slot: int) -> None:
    plan = LabPlan("lh", slot)
    for address in plan.all_addresses():
        assert _allowed(address), address
        assert not any(address in net for net in FORBIDDEN), address
    for net in plan.all_networks():
        assert any(net.subnet_of(r) for r in ALLOWED_RANGES), net


def test_the_allowed_ranges_are_exactly_the_documented_ones() -> None:
    assert {str(n) for n in ALLOWED_RANGES} == {
        "198.51.100.0/24",
        "203.0.113.0/24",
        "192.0.2.0/24",
        "198.18.0.0/15",
    }


def test_addresses_of_the_topology() -> None:
    plan = LabPlan("lh", 3)
    assert str(plan.mgmt_net) == "198.18.3.0/24"
    assert str(plan.root_mgmt) == "198.18.3.1/24"
    assert {d.name: str(d.address) for d in plan.devices} == {
        "r1": "198.18.3.11",
        "r2": "198.18.3.12",
        "web1": "198.18.3.21",
        "web2": "198.18.3.22",
        "web3": "198.18.3.23",
    }
    assert {d.name: d.kind for d in plan.devices} == {
        "r1": "frr",
        "r2": "linux",
        "web1": "host",
        "web2": "host",
        "web3": "host",
    }
    assert {h.name: str(h.address) for h in plan.hosts} == {
        "web1": "198.51.100.2/27",
        "web2": "198.51.100.3/27",
        "web3": "198.51.100.4/27",
    }
    assert str(plan.gateway) == "198.51.100.1"
    assert str(plan.client_address) == "203.0.113.10/28"
    assert [(str(r.destination), str(r.gateway)) for r in plan.client_routes] == [
        ("198.51.100.0/24", "203.0.113.1"),
        ("198.51.100.96/27", "203.0.113.2"),
    ]
    addrs = {(lk.namespace, lk.ifname): str(lk.address) for lk in plan.links}
    assert addrs[("lh-r1", "eth0")] == "198.51.100.1/27"
    assert addrs[("lh-r1", "eth1")] == "203.0.113.1/28"
    assert addrs[("lh-r2", "eth0")] == "198.51.100.30/27"
    assert addrs[("lh-r2", "eth1")] == "203.0.113.2/28"
    assert addrs[("lh-client", "eth0")] == "203.0.113.10/28"
    assert ("lh-client", "mgmt0") not in addrs


def test_services_and_vips() -> None:
    plan = LabPlan()
    rows = [(s.name, str(s.prefix), str(s.vip), s.router, s.initial_host, str(s.next_hop)) for s in plan.services]
    assert rows == [
        ("www-a", "198.51.100.32/27", "198.51.100.33", "r1", "web1", "198.51.100.2"),
        ("www-b", "198.51.100.64/27", "198.51.100.65", "r1", "web2", "198.51.100.3"),
        ("www-c", "198.51.100.200/32", "198.51.100.200", "r1", "web3", "198.51.100.4"),
        ("www-d", "198.51.100.96/27", "198.51.100.97", "r2", "web1", "198.51.100.2"),
    ]
    assert [(str(v.address), v.label) for v in plan.vips] == [
        ("198.51.100.33", "lo:1"),
        ("198.51.100.65", "lo:2"),
        ("198.51.100.200", "lo:3"),
        ("198.51.100.97", "lo:4"),
    ]
    for service in plan.services:
        assert service.vip in service.prefix
    assert [str(r.destination) for r in plan.static_routes("r1")] == [
        "198.51.100.32/27",
        "198.51.100.64/27",
        "198.51.100.200/32",
    ]


def test_names_fit_linux_interface_names() -> None:
    plan = LabPlan("abcdef", 0)
    names = [plan.root_mgmt_ifname, *plan.namespaces]
    names += [lk.ifname for lk in plan.links] + [lk.switch_port for lk in plan.links]
    assert all(len(n) <= 15 for n in names), [n for n in names if len(n) > 15]
    assert plan.namespaces == (
        "abcdef-sw",
        "abcdef-r1",
        "abcdef-r2",
        "abcdef-web1",
        "abcdef-web2",
        "abcdef-web3",
        "abcdef-client",
    )
    assert plan.root_mgmt_ifname == "abcdef-mgmt"
    assert plan.frr_pathspace == "abcdef-r1"


def test_switch_ports_are_unique() -> None:
    ports = [lk.switch_port for lk in LabPlan().links]
    assert len(ports) == len(set(ports))


@pytest.mark.parametrize("prefix", ["", "Lh", "1lh", "lh-x", "abcdefg", "l h", "lh\n"])
def test_bad_prefix_is_rejected(prefix: str) -> None:
    with pytest.raises(PlanError, match="prefix"):
        LabPlan(prefix, 0)


@pytest.mark.parametrize("slot", [-1, 256, True])
def test_bad_slot_is_rejected(slot: int) -> None:
    with pytest.raises(PlanError, match="slot"):
        LabPlan("lh", slot)


def test_different_slots_give_different_mgmt_subnets() -> None:
    nets = {LabPlan("lh", s).mgmt_net for s in range(256)}
    assert len(nets) == 256
    assert not LabPlan("lt", 7).mgmt_net.overlaps(LabPlan("lu", 8).mgmt_net)


def test_plan_is_frozen_and_serialisable() -> None:
    plan = LabPlan("lh", 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.slot = 2  # type: ignore[misc]
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["prefix"] == "lh" and data["slot"] == 1
    assert [s["name"] for s in data["services"]] == ["www-a", "www-b", "www-c", "www-d"]


REGENERATE = ("python -c \"from pathlib import Path; from lab.inventory import inventory_yaml; "
              "from lab.plan import LabPlan; print(inventory_yaml(LabPlan('lh', 0), Path('/run/lasthop-lab/lh')), "
              "end='')\" > config/lab.yaml")


def test_written_inventory_is_config_lab_yaml_byte_for_byte(tmp_path: Path) -> None:
    """config/lab.yaml IS what `lasthop lab up` writes for the default lab, state_url included, so history and
    maintenance done with it reach the demo. After changing lab/inventory.py, regenerate it with REGENERATE."""
    from bot.config import load_inventory
    from lab.inventory import inventory_yaml
    from lab.state import DEFAULT_STATE_ROOT, StatePaths

    root = Path(__file__).resolve().parents[2]
    paths = StatePaths(DEFAULT_STATE_ROOT, "lh")
    written = inventory_yaml(LabPlan("lh", 0), paths.dir)
    checked_in = (root / "config" / "lab.yaml").read_text()
    assert checked_in == written, f"config/lab.yaml differs from the lab's inventory; regenerate it: {REGENERATE}"
    inv = load_inventory(root / "config" / "lab.yaml", env={}, check_files=False)
    assert inv.state_url == f"sqlite:///{paths.dir}/lasthop.db"
    assert inv.routers["r1"].ssh.key_file == paths.key_file
    other = tmp_path / "other.yaml"
    other.write_text(inventory_yaml(LabPlan("lt", 7), Path("/run/lasthop-lab/lt")))
    lt = load_inventory(other, env={}, check_files=False)
    assert lt.routers["r1"].ssh.address == "198.18.7.11"
    assert str(lt.probe.source) == "198.18.7.1"
