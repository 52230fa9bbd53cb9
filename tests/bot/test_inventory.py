"""The typed inventory: the shipped files load, lookups and resolve() turn text into inventory names."""

from __future__ import annotations

import ast
import dataclasses
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Literal

import pydantic
import pytest

from bot import inventory as inventory_module
from bot.config import ConfigError, load_inventory
from bot.drivers import driver_class, router_kinds
from bot.inventory import CheckSpec, Inventory
from bot.values import replace

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "config" / "lab.yaml"
EXAMPLE = ROOT / "config" / "example.yaml"
DATA = Path(__file__).parent / "data" / "config"
# The variables config/example.yaml documents at its top.
EXAMPLE_ENV = {"LASTHOP_EDGE_PASSWORD": "example-edge-password"}


@pytest.fixture(scope="module")
def lab() -> Inventory:
    # The lab's key and known_hosts exist only while the lab is up.
    return load_inventory(LAB, {}, check_files=False)


@pytest.fixture(scope="module")
def example() -> Inventory:
    return load_inventory(EXAMPLE, EXAMPLE_ENV, check_files=False)


def test_lab_file_matches_the_lab(lab: Inventory) -> None:
    assert list(lab.routers) == ["r1", "r2"]
    assert list(lab.hosts) == ["web1", "web2", "web3"]
    assert list(lab.services) == ["www-a", "www-b", "www-c", "www-d"]
    r1, r2 = lab.routers["r1"], lab.routers["r2"]
    assert (r1.driver, r1.ssh.address, r1.save_config, r1.revert_seconds) == ("frr", "198.18.0.11", True, None)
    assert (r2.driver, r2.ssh.address, r2.save_config) == ("linux", "198.18.0.12", False)
    assert r1.lan == (IPv4Network("198.51.100.0/27"),)
    assert {name: str(h.address) for name, h in lab.hosts.items()} == {
        "web1": "198.51.100.2", "web2": "198.51.100.3", "web3": "198.51.100.4",
    }
    assert {name: h.ssh.address for name, h in lab.hosts.items()} == {
        "web1": "198.18.0.21", "web2": "198.18.0.22", "web3": "198.18.0.23",
    }
    expected = {
        "www-a": ("198.51.100.32/27", "r1", ("web1", "web2", "web3"), ("198.51.100.33",)),
        "www-b": ("198.51.100.64/27", "r1", ("web2", "web3", "web1"), ("198.51.100.65",)),
        "www-c": ("198.51.100.200/32", "r1", ("web3", "web1", "web2"), ("198.51.100.200",)),
        "www-d": ("198.51.100.96/27", "r2", ("web1", "web2", "web3"), ("198.51.100.97",)),
    }
    for name, (prefix, router, hosts, vips) in expected.items():
        s = lab.services[name]
        assert (str(s.prefix), s.router, s.hosts, tuple(map(str, s.vips))) == (prefix, router, hosts, vips)
        assert (s.check.kind, s.check.port) == ("http", 80)
    assert lab.warnings == []


def test_device_specs_get_the_defaults(lab: Inventory) -> None:
    for spec in [*(r.ssh for r in lab.routers.values()), *(h.ssh for h in lab.hosts.values())]:
        # r1's own username beats the default: the lab's FRR router has a non-root login.
        assert spec.username == ("lasthop-lab" if spec.name == "r1" else "root")
        assert spec.key_file == Path("/run/lasthop-lab/lh/id_ed25519")
        assert spec.known_hosts == Path("/run/lasthop-lab/lh/known_hosts")
        assert (spec.port, spec.connect_timeout, spec.command_timeout, spec.password) == (22, 5.0, 10.0, None)
    assert lab.routers["r1"].ssh.name == "r1"
    assert lab.hosts["web2"].ssh.name == "web2"


def test_example_file_loads(example: Inventory) -> None:
    edge = example.routers["edge"]
    assert edge.driver == "cisco_ios" and edge.driver in router_kinds()
    assert edge.revert_seconds == 300
    assert edge.save_config is True
    assert edge.ssh.password == EXAMPLE_ENV["LASTHOP_EDGE_PASSWORD"]
    assert edge.ssh.key_file == Path("/etc/lasthop/id_ed25519")
    # The article's server LAN: every next hop sits in the router's one LAN.
    assert all(edge.reaches(h.address) for h in example.hosts.values())
    assert all(s.prefix.prefixlen == 27 for name, s in example.services.items() if name != "shop")
    shop = example.services["shop"]
    assert shop.prefix.prefixlen == 32 and shop.vips == (shop.prefix.network_address,)
    assert (shop.check.kind, shop.check.port, shop.check.path) == ("https", 443, "/healthz")
    assert example.services["www-a"].check == CheckSpec()  # the file spells out every default
    assert example.warnings == []
    assert EXAMPLE_ENV["LASTHOP_EDGE_PASSWORD"] not in repr(example) + example.describe()


def test_example_names_its_environment_variables() -> None:
    text = EXAMPLE.read_text()
    for name in EXAMPLE_ENV:
        assert f"#   {name}" in text


def test_policy_defaults(tmp_path: Path) -> None:
    text = LAB.read_text()
    no_policy = tmp_path / "no-policy.yaml"
    no_policy.write_text(text[: text.index("\npolicy:")] + "\n")
    p = load_inventory(no_policy, env={}, check_files=False).policy
    assert (p.approval_timeout, p.verify_timeout, p.two_person_rule, p.save_after_change) == (900.0, 10.0, True, True)
    assert tuple(p.risky.model_dump().values()) == (True, True, True, True, True)
    a = p.auto_failover
    assert (a.enabled, a.max_moves, a.window, a.failback, a.hold_down, a.partition_threshold) == (
        False, 3, 3600.0, False, 600.0, 0.5,
    )
    assert (p.flapping.changes, p.flapping.window) == (4, 300.0)


def test_objects_are_frozen(lab: Inventory) -> None:
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        lab.services["www-a"].router = "r2"
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        lab.routers["r1"].options.driver = "linux"
    with pytest.raises(dataclasses.FrozenInstanceError):
        lab.routers["r1"].ssh.address = "198.18.0.99"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "kind", "name"),
    [
        ("www-a", "service", "www-a"),
        ("  WWW-B ", "service", "www-b"),
        ("web3", "host", "web3"),
        ("Web1", "host", "web1"),
        ("198.51.100.32/27", "service", "www-a"),
        ("198.51.100.200/32", "service", "www-c"),
        ("198.51.100.33", "service", "www-a"),  # a VIP
        ("198.51.100.70", "service", "www-b"),  # any address inside the prefix
        ("198.51.100.200", "service", "www-c"),
        ("198.51.100.97", "service", "www-d"),
        ("198.51.100.3", "host", "web2"),  # a next hop
    ],
)
def test_resolve(lab: Inventory, text: str, kind: str, name: str) -> None:
    got_kind, got_name = lab.resolve(text)
    assert (got_kind, got_name) == (kind, name)
    # The name handed back is the inventory's own string, not the user's.
    keys = lab.services if kind == "service" else lab.hosts
    assert any(key is got_name for key in keys)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("wwwa", "no service or host named 'wwwa'; did you mean www-a"),
        ("web", "did you mean web1, web2, web3?"),
        ("mail", "no service or host named 'mail' (services: www-a, www-b, www-c, www-d; hosts: web1, web2, web3)"),
        ("198.51.100.32/28", "198.51.100.32/28 is not a service prefix; did you mean 198.51.100.32/27 (www-a)?"),
        ("203.0.113.0/24", "203.0.113.0/24 is not a service prefix"),
        ("198.51.100.250", "198.51.100.250 is not in any service prefix and is no host's address"),
        ("2001:db8::1", "IPv6"),
        ("198.51.100.999/27", "is not a prefix"),
        ("<!channel> `rm -rf`", "no service or host by that name"),
        ("", "no service or host by that name"),
    ],
)
def test_resolve_refuses(lab: Inventory, text: str, fragment: str) -> None:
    with pytest.raises(LookupError) as info:
        lab.resolve(text)
    assert fragment in str(info.value)
    assert "<!channel>" not in str(info.value)


def test_lookups(lab: Inventory) -> None:
    svc = lab.service_for_prefix(IPv4Network("198.51.100.64/27"))
    assert svc is not None and svc.name == "www-b"
    assert lab.service_for_prefix("198.51.100.96/27") is lab.services["www-d"]
    assert lab.service_for_prefix(IPv4Network("198.51.100.64/28")) is None
    assert lab.service_for_prefix("not a prefix") is None
    host = lab.host_by_address(IPv4Address("198.51.100.4"))
    assert host is not None and host.name == "web3"
    assert lab.host_by_address("198.51.100.9") is None
    assert lab.service_containing(IPv4Address("198.51.100.99")) is lab.services["www-d"]
    assert [s.name for s in lab.services_on("r2")] == ["www-d"]


def test_describe_is_short_and_complete(lab: Inventory) -> None:
    text = lab.describe()
    assert len(text.splitlines()) == 1 + 2 + 3 + 4 + 1
    for name in [*lab.routers, *lab.hosts, *lab.services]:
        assert name in text
    assert "state sqlite:////run/lasthop-lab/lh/lasthop.db" in text  # the demo lab's own database


def test_the_inventory_types_do_not_import_the_config_loader() -> None:
    """bot.config builds an Inventory; bot.inventory must not reach back (they imported each other)."""
    tree = ast.parse(Path(inventory_module.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and (m == "bot.config" or m.startswith("bot.config.")) for m in imported), imported


def test_data_file_with_real_files(tmp_path: Path) -> None:
    # tests/bot/data/config/valid.yaml names its key and known_hosts relative to itself.
    inv = load_inventory(DATA / "valid.yaml", {"WEB3_PASSWORD": "pw-for-web3"})
    assert inv.routers["r1"].ssh.key_file == DATA / "test_key"
    assert inv.hosts["web3"].ssh.password == "pw-for-web3"
    assert inv.hosts["web3"].ssh.username == "admin"
    assert inv.hosts["web3"].ssh.port == 2222
    assert inv.hosts["web1"].ssh.username == "lasthop"
    assert inv.hosts["web1"].tags == ("rack1", "blue")
    assert inv.services["www-a"].check.interval == 0.5


def test_lab_probes_from_its_management_address(lab: Inventory) -> None:
    assert lab.probe.source == IPv4Address("198.18.0.1")
    assert lab.probe.verify_vips is True


def test_probe_source_must_be_an_address(tmp_path: Path) -> None:
    text = LAB.read_text().replace("source: 198.18.0.1", "source: lasthop-noc")
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"probe\.source"):
        load_inventory(path, env={}, check_files=False)


def test_slack_roles_load_and_bad_ids_are_named(tmp_path: Path) -> None:
    text = LAB.read_text() + (
        "slack:\n  alert_channel: C0ALERTS\n  channels: [C0ALERTS]\n"
        "  roles: {viewers: ['*'], operators: [U0ALICE], approvers: [U0BOB, S0ONCALL]}\n"
    )
    good = tmp_path / "good.yaml"
    good.write_text(text)
    inv = load_inventory(good, env={}, check_files=False)
    assert inv.slack.alert_channel == "C0ALERTS"
    assert inv.slack.approvers == ("U0BOB", "S0ONCALL") and inv.slack.viewers == ("*",)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("U0ALICE", "alice"))
    with pytest.raises(ConfigError, match=r"slack\.roles\.operators\[0\]: bad Slack ID 'alice'"):
        load_inventory(bad, env={}, check_files=False)
    assert load_inventory(LAB, env={}, check_files=False).slack.channels == ()  # nothing granted by default


# -- one model layer: the types the code reads are the ones that checked the file ---------------------


def test_a_check_built_in_code_is_held_to_the_files_rules() -> None:
    with pytest.raises(pydantic.ValidationError, match="timeout 2s must be shorter than interval 1s"):
        CheckSpec(interval=1.0, timeout=2.0)
    with pytest.raises(pydantic.ValidationError, match="fast_interval 5s must not be longer than interval 1s"):
        CheckSpec(interval=1.0, timeout=0.5, fast_interval=5.0)
    assert CheckSpec(kind="https").port == 443  # the default follows the kind
    assert CheckSpec(kind="https", port=8443).port == 8443
    assert CheckSpec().port == 80


def test_a_service_built_in_code_keeps_its_vips_inside_its_prefix(lab: Inventory) -> None:
    www = lab.services["www-a"]
    with pytest.raises(pydantic.ValidationError, match=r"198\.51\.100\.99 is outside the prefix 198\.51\.100\.32/27"):
        replace(www, vips=(IPv4Address("198.51.100.33"), IPv4Address("198.51.100.99")))
    host_route = replace(www, prefix=IPv4Network("198.51.100.40/32"), vips=None)
    assert host_route.vips == (IPv4Address("198.51.100.40"),)  # a /32 is its own VIP
    with pytest.raises(pydantic.ValidationError, match="only a /32 prefix may leave it out"):
        replace(www, vips=None)


def test_replace_checks_the_copy_and_leaves_the_original(lab: Inventory) -> None:
    check = lab.services["www-a"].check
    with pytest.raises(pydantic.ValidationError, match="must be shorter than interval"):
        replace(check, timeout=check.interval)
    faster = replace(check, interval=check.interval * 2)
    assert faster.interval == check.interval * 2 and lab.services["www-a"].check is check
    with pytest.raises(pydantic.ValidationError, match="lan"):
        replace(lab.routers["r1"], lan=(lab.routers["r1"].lan[0], lab.routers["r1"].lan[0]))


def test_each_router_holds_its_own_drivers_options(tmp_path: Path) -> None:
    inv = load_inventory(LAB, {}, check_files=False)
    for router in inv.routers.values():
        assert type(router.options) is driver_class(router.driver).options
    ios = tmp_path / "ios.yaml"
    ios.write_text(LAB.read_text().replace("driver: frr", "driver: cisco_ios, revert_timer: 5m", 1))
    r1 = load_inventory(ios, {}, check_files=False).routers["r1"]
    assert (r1.driver, r1.revert_seconds, r1.save_config) == ("cisco_ios", 300, True)
    assert "revert_timer" not in driver_class("frr").options.model_fields  # only drivers that can revert


def test_every_driver_names_an_options_model_of_its_own_kind() -> None:
    for kind in router_kinds():
        options = driver_class(kind).options
        assert options.model_fields["driver"].annotation == Literal[kind]  # type: ignore[valid-type]
        assert options.model_validate({"driver": kind}).driver == kind


def test_an_unknown_key_on_a_router_is_matched_against_its_drivers_options(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(LAB.read_text().replace("driver: frr", "driver: cisco_ios, revert_timr: 5m", 1))
    with pytest.raises(ConfigError) as caught:
        load_inventory(path, {}, check_files=False)
    assert "routers.r1: unknown key 'revert_timr' (did you mean 'revert_timer'?)" in str(caught.value)
