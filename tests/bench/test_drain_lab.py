"""The drain benchmark at its tiny size on the lab: real FRR, real hosts, a well-formed record,
and the lab left exactly as it was found, after a failed run too.

No assertion is about speed: only that the drains happened, were counted and were written.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest

from bench import drain, load
from bench import results as rs
from bench.cli import run_one
from lab import Lab, frr, netns
from lab.errors import LabError


def _lo(namespace: str) -> set[str]:
    out = subprocess.run(["ip", "-n", namespace, "-j", "-4", "addr", "show", "dev", "lo"], capture_output=True,
                         text=True, check=True, timeout=10).stdout
    return {f"{a['local']}/{a['prefixlen']}" for e in json.loads(out) for a in e.get("addr_info", [])}


def snapshot(lab: Lab) -> dict[str, Any]:
    """What the benchmark may touch: r1's kernel routes, its static config, each host's loopback."""
    plan = lab.plan
    return {
        "r1": netns.routes(plan.frr_pathspace),
        "r1 static": sorted(ln for ln in frr.vtysh(plan, "show running-config").splitlines()
                            if ln.startswith("ip route")),
        **{h.name: _lo(h.namespace) for h in plan.hosts},
    }


def settings_for(lab: Lab, **changes: Any) -> drain.Settings:
    return dataclasses.replace(drain.Settings.tiny(), lab_prefix=lab.plan.prefix, lab_slot=lab.plan.slot, **changes)


def assert_as_found(lab: Lab, before: dict[str, Any]) -> None:
    assert snapshot(lab) == before
    plan = lab.plan
    routes = netns.routes(plan.frr_pathspace)
    for svc in plan.services:
        if svc.router == "r1":
            assert routes[svc.prefix] == {svc.next_hop}, svc.name  # on its initial host
    assert not any(p.subnet_of(drain.BLOCK) for p in routes)
    assert drain.leftovers(plan) == []
    assert not drain.mentions_block(frr.config_file(plan).read_text())  # nothing of the block saved


@pytest.fixture(scope="module")
def tiny(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> tuple[rs.Result, Path, dict[str, Any]]:
    before = snapshot(lab)
    result, path = run_one(load("drain"), settings_for(lab), tmp_path_factory.mktemp("drain"))
    return result, path, before


@pytest.mark.lab
def test_tiny_run_writes_a_well_formed_record(tiny: tuple[rs.Result, Path, dict[str, Any]]) -> None:
    result, path, _ = tiny
    assert rs.read(path) == result == rs.read(path.parent / "drain.json")
    assert result.name == "drain" and result.unit == "s" and result.better == "lower"
    assert result.settings["sizes"] == [1, 2] and result.repetitions == 1
    assert set(result.stages) == {*drain.STAGES, "other"}
    assert result.stages["precheck"] > 0 and result.stages["apply"] > 0  # it really went to r1 and the hosts
    assert [t.name for t in result.targets] == ["drain of 2 services, total"]
    drains = result.details["drains"]
    assert [d["n"] for d in drains] == [1, 2]
    for d in drains:
        # Every service left web1, for the other hosts, in one change: one session, no new login.
        assert sum(d["to_hosts"].values()) == d["n"] and "web1" not in d["to_hosts"]
        assert d["router_logins"] == 0 and d["router_save"] == 1
        assert d["router_config"] >= 2 * (d["n"] + 2)  # two blocks (add, remove), each entered and left
        assert d["host_commands"] >= d["n"]  # each target's loopback read before its move
        assert d["change_total"] <= d["execute"] <= d["total"]
    # Each extra prefix is more configuration lines; all round trips together need not grow, as the
    # FIB wait polls as often as zebra takes (one read fewer can offset a line more).
    assert drains[1]["router_config"] > drains[0]["router_config"]
    assert "multiple_prefixes" in drains[1]["risks"]  # accepted, as --accept-risk does
    assert result.details["cold"]["router_logins"] == 1
    per = result.details["per_prefix"]
    assert set(per) >= {"total", *drain.STAGES, "router_round_trips"}
    assert any(n.startswith("each extra prefix costs ") for n in result.notes)


@pytest.mark.lab
def test_tiny_run_leaves_the_lab_as_found(lab: Lab, tiny: tuple[rs.Result, Path, dict[str, Any]]) -> None:
    assert_as_found(lab, tiny[2])


@pytest.mark.lab
def test_a_drain_that_fails_still_removes_everything(lab: Lab, tiny: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(lab)
    real = drain.drain_once
    calls: list[int] = []

    def fails_second(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 2:
            raise LabError("injected failure after one drain")
        return real(*args, **kwargs)

    monkeypatch.setattr(drain, "drain_once", fails_second)
    with pytest.raises(LabError, match="injected failure"):
        drain.run(settings_for(lab))
    assert len(calls) == 2
    assert_as_found(lab, before)


@pytest.mark.lab
def test_an_address_of_the_block_already_there_is_refused_and_changes_nothing(lab: Lab, tiny: Any) -> None:
    web2 = lab.plan.host("web2").namespace
    taken = IPv4Address("198.51.100.130")
    subprocess.run(["ip", "-n", web2, "addr", "add", f"{taken}/32", "dev", "lo"], check=True, timeout=10)
    try:
        before = snapshot(lab)
        with pytest.raises(LabError, match=r"web2 has 198\.51\.100\.130 on its loopback"):
            drain.run(settings_for(lab))
        assert snapshot(lab) == before
    finally:
        subprocess.run(["ip", "-n", web2, "addr", "del", f"{taken}/32", "dev", "lo"], check=True, timeout=10)


def test_the_block_is_free_in_the_lab_plan() -> None:
    plan = Lab("lt", 7).plan
    assert not any(s.prefix.overlaps(drain.BLOCK) for s in plan.services)
    assert not any(v.address in drain.BLOCK for v in plan.vips)
    services = drain.bench_services(drain.MAX_SERVICES)
    assert len({s.prefix for s in services}) == drain.MAX_SERVICES
    assert all(s.prefix.subnet_of(drain.BLOCK) and s.prefix.prefixlen == 32 for s in services)
    assert IPv4Network("198.51.100.0/24").supernet_of(drain.BLOCK)


@pytest.mark.parametrize(("changes", "problem"), [
    ({"sizes": (30,)}, "at least two different"),
    ({"sizes": (1, 63)}, "each 1 to 62"),
    ({"repetitions": 0}, "repetitions"),
    ({"host": "web9"}, "host must be one of web1, web2, web3"),
    ({"lab_prefix": "LH"}, "bad lab prefix"),
])
def test_settings_refuse_what_cannot_run(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        dataclasses.replace(drain.Settings(), **changes)
