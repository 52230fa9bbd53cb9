"""The real lab (prefix lt, slot 7): traffic, idempotent up, break/heal, SSH, a second lab beside it."""

from __future__ import annotations

import argparse
import contextlib
import grp
import json
import pwd
import subprocess
from pathlib import Path

import pytest

from lab import ClientGetError, Lab, LabError, frr, sshd
from lab.cli import configure, run
from lab.wait import wait_until

pytestmark = pytest.mark.lab

SERVICES = [
    ("198.51.100.33", "web1"),
    ("198.51.100.65", "web2"),
    ("198.51.100.200", "web3"),
    ("198.51.100.97", "web1"),
]


def answer_eventually(lab: Lab, vip: str, want: str, timeout: float = 10.0) -> str:
    """Poll until `want` answers `vip` (a healed host may need an ARP round or a SYN retry)."""
    last = [""]

    def answers() -> bool:
        try:
            last[0] = lab.client_get(vip, timeout=1.0)
        except ClientGetError as exc:
            last[0] = str(exc)
        return last[0] == want

    # On timeout the caller's assert shows what answered instead.
    with contextlib.suppress(LabError):
        wait_until(answers, timeout=timeout, what=f"{want} to answer {vip}")
    return last[0]


def daemon_pids(lab: Lab) -> dict[str, str]:
    files = [*lab.state_dir.glob("*/*.pid"), *Path(f"/var/run/frr/{lab.plan.frr_pathspace}").glob("*.pid")]
    return {str(f): f.read_text().strip() for f in files}


def ssh(lab: Lab, name: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return ssh_with(lab.known_hosts, lab, name, *args, stdin=stdin)


def ssh_with(known_hosts: Path, lab: Lab, name: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    device = lab.plan.device(name)
    argv = [
        "ssh", "-i", str(lab.key_file),
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=5",
        *args[:-1], f"{sshd.login(device)}@{device.address}", *args[-1:],
    ]  # fmt: skip
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=20, check=False)


def _output(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout


def lab_leftovers(prefix: str) -> list[str]:
    """Everything a lab with this prefix could leave behind; [] when it is gone."""
    left = [ns for ns in _output(["ip", "netns", "list"]).split() if ns.startswith(f"{prefix}-")]
    links = json.loads(_output(["ip", "-j", "link", "show"]))
    left += [f"interface {lk['ifname']}" for lk in links if lk["ifname"].startswith(f"{prefix}-")]
    for path in (f"/run/lasthop-lab/{prefix}", f"/etc/frr/{prefix}-r1", f"/var/run/frr/{prefix}-r1"):
        if Path(path).exists():
            left.append(path)
    tokens = (f"/run/lasthop-lab/{prefix}/", f"/var/run/frr/{prefix}-r1/", f"/etc/frr/{prefix}-r1/")
    for proc in Path("/proc").iterdir():
        try:
            line = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(t in line for t in tokens):
            left.append(f"process {proc.name}: {line.strip()}")
    return left


@pytest.mark.parametrize(("vip", "host"), SERVICES)
def test_client_reaches_the_initial_host(lab: Lab, vip: str, host: str) -> None:
    assert lab.client_get(vip) == host


def test_up_again_changes_nothing(lab: Lab) -> None:
    before = daemon_pids(lab)
    written = lab.lab_json.stat().st_mtime_ns
    assert lab.up() == []
    assert daemon_pids(lab) == before
    assert lab.lab_json.stat().st_mtime_ns == written
    for vip, host in SERVICES:
        assert lab.client_get(vip) == host


def test_status_reports_a_healthy_lab(lab: Lab) -> None:
    status = lab.status()
    assert status.healthy
    assert {s.name: s.answered_by for s in status.services} == {
        "www-a": "web1",
        "www-b": "web2",
        "www-c": "web3",
        "www-d": "web1",
    }
    text = status.render()
    assert f"lab {lab.plan.prefix} (slot {lab.plan.slot}): healthy" in text
    assert "www-d" in text and "answered by web1" in text


def test_lab_json_tells_other_tools_where_things_are(lab: Lab) -> None:
    data = json.loads(lab.lab_json.read_text())
    assert data["prefix"] == lab.plan.prefix and data["slot"] == lab.plan.slot
    assert data["key_file"] == str(lab.key_file)
    assert data["known_hosts"] == str(lab.known_hosts)
    assert {d["name"]: d["mgmt"] for d in data["devices"]}["r1"] == f"198.18.{lab.plan.slot}.11"


def test_broken_web_server_stops_answering_and_heals(lab: Lab) -> None:
    try:
        assert lab.break_host("web1") == ["web1: web server stopped"]
        assert lab.break_host("web1") == []
        with pytest.raises(ClientGetError, match=r"198\.51\.100\.33"):
            lab.client_get("198.51.100.33")
        assert lab.client_get("198.51.100.65") == "web2"
        assert not lab.status().healthy
    finally:
        actions = lab.heal("web1")
    assert actions == ["web1: web server started"]
    assert answer_eventually(lab, "198.51.100.33", "web1") == "web1"
    assert lab.heal("web1") == []


def test_broken_link_goes_down_and_heals(lab: Lab) -> None:
    try:
        assert lab.break_host("web1", link=True) == ["web1: eth0 down"]
        link = json.loads(lab.exec("web1", ["ip", "-j", "link", "show", "eth0"]).stdout)[0]
        assert "UP" not in link["flags"]
        with pytest.raises(ClientGetError):
            lab.client_get("198.51.100.33", timeout=1.0)
    finally:
        actions = lab.heal("web1")
    assert actions == ["web1: eth0 up, default route via 198.51.100.1"]
    default = json.loads(lab.exec("web1", ["ip", "-j", "route", "show", "default"]).stdout)
    assert [r["gateway"] for r in default] == ["198.51.100.1"]
    assert answer_eventually(lab, "198.51.100.33", "web1") == "web1"
    assert answer_eventually(lab, "198.51.100.97", "web1") == "web1"


@pytest.mark.parametrize("name", ["r2", "web1", "web2", "web3"])
def test_ssh_to_linux_devices_with_strict_host_keys(lab: Lab, name: str) -> None:
    done = ssh(lab, name, "hostname")
    assert done.returncode == 0, done.stderr
    # sshd runs in a private UTS namespace named after the device.
    assert done.stdout.strip() == f"{lab.plan.prefix}-{name}"


def test_ssh_to_r1_lands_in_vtysh(lab: Lab) -> None:
    done = ssh(lab, "r1", "-tt", "", stdin="show ip route static json\nexit\n")
    assert done.returncode == 0, done.stderr
    assert f"{lab.plan.frr_pathspace}#" in done.stdout
    assert '"198.51.100.32/27"' in done.stdout
    assert '"installed":true' in done.stdout


def test_r1_is_managed_by_a_non_root_login_in_frrvty(lab: Lab) -> None:
    entry = pwd.getpwnam("lasthop-lab")
    assert entry.pw_uid != 0 and entry.pw_shell == "/usr/bin/vtysh"
    assert {"frr", "frrvty"} <= {g.gr_name for g in grp.getgrall() if "lasthop-lab" in g.gr_mem} | {
        grp.getgrgid(entry.pw_gid).gr_name}
    assert frr.login_problem() is None
    # Its shell is a plain vtysh (no -N), which finds this lab's r1 through the sshd's mounts.
    done = ssh(lab, "r1", "-tt", "", stdin="show running-config\nexit\n")
    assert done.returncode == 0, done.stderr
    assert f"hostname {lab.plan.frr_pathspace}" in done.stdout
    # Only that login: root is refused on r1, as on a router nobody manages as root.
    device = lab.plan.device("r1")
    root = subprocess.run(
        ["ssh", "-i", str(lab.key_file), "-o", f"UserKnownHostsFile={lab.known_hosts}", "-o", "BatchMode=yes",
         "-o", "ConnectTimeout=5", f"root@{device.address}", "show version"],
        capture_output=True, text=True, timeout=20, check=False,
    )
    assert root.returncode == 255 and "Permission denied" in root.stderr
    assert frr.ensure_login() is None  # idempotent: nothing to do the second time


def test_r1_restarted_with_an_ecmp_limit_of_one_refuses_a_second_next_hop(lab: Lab) -> None:
    prefix = lab.plan.static_routes(frr.ROUTER)[0].destination
    second = lab.plan.host("web3").address.ip
    add = f"ip route {prefix} {second}"
    try:
        assert lab.restart_router(ecmp=1) == ["r1: FRR restarted with at most 1 next hop per route"]
        zebra = frr.running(lab.plan)["zebra"]
        assert zebra is not None and Path(f"/proc/{zebra}/cmdline").read_bytes().split(b"\0")[-3:-1] == [b"-e", b"1"]
        refused = ssh(lab, "r1", "-tt", "", stdin=f"configure terminal\n{add}\nend\nexit\n")
        assert "Route cannot have more than 1 ECMP nexthops" in refused.stdout, refused.stdout
        assert add not in frr.vtysh(lab.plan, "show running-config")
    finally:
        assert lab.restart_router() == ["r1: FRR restarted"]
    # Back to FRR's own limit: the same line is taken (and then removed again).
    frr.vtysh(lab.plan, f"configure terminal\n{add}")
    assert add in frr.vtysh(lab.plan, "show running-config")
    lab.restart_router()  # from the lab's own configuration: the extra route is gone
    assert add not in frr.vtysh(lab.plan, "show running-config")


def test_only_zebra_takes_an_ecmp_limit(lab: Lab) -> None:
    with pytest.raises(LabError, match="only zebra takes an ECMP limit, not staticd"):
        frr.start(lab.plan, "staticd", Path("/dev/null"), ecmp=1)


def test_ssh_refuses_an_unknown_host_key(lab: Lab, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    done = ssh_with(empty, lab, "web1", "hostname")
    assert done.returncode != 0
    assert "Host key verification failed" in done.stderr


def test_exec_runs_in_the_named_namespace(lab: Lab) -> None:
    assert lab.exec("client", ["hostname"]).stdout.strip() == f"{lab.plan.prefix}-client"
    with pytest.raises(LabError, match="unknown namespace"):
        lab.exec("web9", ["true"])


def test_client_get_refuses_addresses_outside_the_lab(lab: Lab) -> None:
    with pytest.raises(LabError, match="not a lab address"):
        lab.client_get("127.0.0.1")


def test_cli_status_and_errors(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="lab")
    configure(parser)
    prefix = lab.plan.prefix
    assert run(parser.parse_args(["status", "--prefix", prefix])) == 0
    assert f"lab {prefix} (slot {lab.plan.slot}): healthy" in capsys.readouterr().out
    assert run(parser.parse_args(["heal", "web9", "--prefix", prefix])) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown host 'web9'" in err


def test_second_lab_beside_the_first(lab: Lab) -> None:
    other = Lab(prefix="lu", slot=8)
    try:
        other.up()
        assert other.client_get("198.51.100.33") == "web1"
        assert ssh(other, "web2", "hostname").stdout.strip() == "lu-web2"
        assert lab.client_get("198.51.100.33") == "web1"
    finally:
        other.down()
    assert lab_leftovers("lu") == []
    assert frr.login_problem() is None  # r1's login is shared: kept while a lab is left
    other.down()  # nothing left to remove: still fine
    for vip, host in SERVICES:
        assert lab.client_get(vip) == host
    assert lab.status().healthy
