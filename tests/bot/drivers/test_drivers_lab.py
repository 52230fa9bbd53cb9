"""The drivers against the lab: real FRR and a real Linux router over real SSH, proven from the client.

Needs root (network namespaces); CI runs these as root.
"""

from __future__ import annotations

import os
import signal
import subprocess
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from support.labtools import client_answer, comm, namespace_pids, parent, ssh_session_pids, wait_for

from bot.drivers import DeviceSpec, RouteMove, make_router_driver
from bot.drivers.base import Transcript
from bot.drivers.errors import CommandRejected, CommandTimeout, ConnectError, HostKeyError
from bot.drivers.host import HostVerifier
from bot.drivers.ssh import ExecSession
from lab import Lab, netns, sshd

pytestmark = pytest.mark.lab

A = IPv4Network("198.51.100.32/27")
B = IPv4Network("198.51.100.64/27")
D = IPv4Network("198.51.100.96/27")
VIP_A, VIP_B, VIP_D = IPv4Address("198.51.100.33"), IPv4Address("198.51.100.65"), IPv4Address("198.51.100.97")
WEB1, WEB2, WEB3 = IPv4Address("198.51.100.2"), IPv4Address("198.51.100.3"), IPv4Address("198.51.100.4")


def spec(lab: Lab, name: str, **over: object) -> DeviceSpec:
    # A device of the lab is logged in to as the lab's login for it (r1: the non-root FRR user).
    username = "root" if "address" in over else sshd.login(lab.plan.device(name))
    address = over.pop("address", None) or str(lab.plan.device(name).address)
    fields: dict[str, object] = dict(
        name=name, address=address, username=username,
        known_hosts=lab.known_hosts, key_file=lab.key_file, connect_timeout=3.0, command_timeout=5.0,
    )
    fields.update(over)
    return DeviceSpec(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["frr", "cisco_ios"])
def test_cli_router_moves_a_vip_and_back_as_seen_by_the_client(lab: Lab, lab_home: None, kind: str) -> None:
    with make_router_driver(kind, spec(lab, "r1")) as d:
        routes = {(r.prefix, r.next_hop) for r in d.get_static_routes()}
        assert (A, WEB1) in routes and (B, WEB2) in routes
        assert client_answer(lab, VIP_A, "web1") == "web1"

        transcript = d.move([RouteMove(A, WEB1, WEB2)])
        assert d.wait_for_fib(A, WEB2) == {WEB2}
        assert client_answer(lab, VIP_A, "web2") == "web2"
        sent = [e.command for e in transcript.exchanges]
        if kind == "frr":
            assert "ip route 198.51.100.32/27 198.51.100.3" in sent
            assert "no ip route 198.51.100.32/27 198.51.100.2" in sent
        else:
            assert "ip route 198.51.100.32 255.255.255.224 198.51.100.3" in sent
        assert sent.index(next(c for c in sent if c.startswith("ip route"))) < sent.index(
            next(c for c in sent if c.startswith("no ip route"))
        ), "the new route must be added before the old one is removed"

        d.move([RouteMove(A, WEB2, WEB1)])
        assert d.wait_for_fib(A, WEB1) == {WEB1}
        assert client_answer(lab, VIP_A, "web1") == "web1"
        assert {(r.prefix, r.next_hop) for r in d.get_static_routes()} == routes


def test_frr_moves_two_prefixes_in_one_session_and_saves(lab: Lab, lab_home: None) -> None:
    conf = Path("/etc/frr") / lab.plan.frr_pathspace / "frr.conf"
    with make_router_driver("frr", spec(lab, "r1")) as d:
        d.move([RouteMove(A, WEB1, WEB3), RouteMove(B, WEB2, WEB3)])
        # The old next hops leave the FIB when zebra gets to it: a move's own end waits only for the
        # new ones (make before break); the engine's verify then waits for exactly the new.
        assert d.wait_for_fib(A, WEB3) == {WEB3} and d.wait_for_fib(B, WEB3) == {WEB3}
        assert client_answer(lab, VIP_A, "web3") == "web3"
        assert client_answer(lab, VIP_B, "web3") == "web3"
        saved_by = d.save_config()
        # Saved as the non-root login: vtysh could not chown the new file to frr, and said so.
        reply = saved_by.exchanges[-1].reply
        assert "% Warning: can't chown configuration file" in reply and "Integrated configuration saved" in reply
        assert (conf.owner(), conf.group()) == ("lasthop-lab", "frr")  # group frr: the daemons can read it
        saved = conf.read_text()
        assert "ip route 198.51.100.32/27 198.51.100.4" in saved
        assert "ip route 198.51.100.32/27 198.51.100.2" not in saved
        d.move([RouteMove(A, WEB3, WEB1), RouteMove(B, WEB3, WEB2)])
        d.save_config()
        assert "ip route 198.51.100.32/27 198.51.100.2" in conf.read_text()


def test_frr_reads_many_prefixes_in_one_exchange_with_each_prefixs_own_answer(lab: Lab, lab_home: None) -> None:
    """The covering read against one read per prefix, on r1 as FRR has it: a kernel route beating a
    static, a more specific route inside another, a static whose next hop does not resolve (zebra
    never sees it), the lab's own statics, a connected route and prefixes with no route at all."""
    kernel, inner, unresolved = (IPv4Network(p) for p in ("198.51.100.160/27", "198.51.100.168/29",
                                                          "198.51.100.224/27"))
    lines = [f"ip route {kernel} {WEB1}", f"ip route {inner} {WEB3}", f"ip route {unresolved} 198.51.100.250"]
    r1 = lab.plan.device("r1").namespace
    with make_router_driver("frr", spec(lab, "r1")) as d:
        cli = d.cli  # type: ignore[attr-defined]
        cli.configure(lines, Transcript("r1"))
        try:
            # zebra installs the statics and learns of the kernel route when it gets to them: wait for
            # each (bounded), so the reads compared below see one settled table.
            wait_for(lambda: d.fib_next_hops(kernel) == {WEB1} and d.fib_next_hops(inner) == {WEB3}, 10,
                     "zebra to install the statics")
            netns.apply(r1, [f"route add {kernel} via {WEB2}"])
            wait_for(lambda: d.fib_next_hops(kernel) == {WEB2}, 10, "the kernel route to win in zebra")
            prefixes = [A, B, D, kernel, inner, unresolved, IPv4Network("198.51.100.0/27"),
                        IPv4Network("198.51.100.128/26"), IPv4Network("198.51.100.200/32")]
            one = {p: d.fib_next_hops(p) for p in prefixes}
            assert one[kernel] == {WEB2} and one[inner] == {WEB3} and one[unresolved] == set()
            assert d.fib_next_hops_many(prefixes) == one
        finally:
            netns.apply(r1, [f"route del {kernel}"])
            cli.configure(["no " + line for line in lines], Transcript("r1"))


def test_linux_router_moves_with_an_atomic_replace(lab: Lab, lab_home: None) -> None:
    with make_router_driver("linux", spec(lab, "r2")) as d:
        assert {(r.prefix, r.next_hop) for r in d.get_static_routes()} == {(D, WEB1)}
        assert client_answer(lab, VIP_D, "web1") == "web1"
        transcript = d.move([RouteMove(D, WEB1, WEB2)])
        assert [e.command for e in transcript.exchanges] == [
            "ip route replace 198.51.100.96/27 via 198.51.100.3 proto static"
        ]
        assert d.fib_next_hops(D) == {WEB2}
        assert client_answer(lab, VIP_D, "web2") == "web2"
        d.move([RouteMove(D, WEB2, WEB1)])
        assert client_answer(lab, VIP_D, "web1") == "web1"


def test_repeating_a_move_is_harmless(lab: Lab, lab_home: None) -> None:
    with make_router_driver("frr", spec(lab, "r1")) as d:
        d.move([RouteMove(A, WEB1, WEB2)])
        again = d.move([RouteMove(A, WEB1, WEB2)])  # a retry after a lost reply
        assert not any(e.command.startswith(("ip route", "no ip route")) for e in again.exchanges)
        assert d.wait_for_fib(A, WEB2) == {WEB2}  # the old hop's removal reaches the FIB when zebra gets to it


def test_host_verifier_sees_vips_and_a_missing_one(lab: Lab) -> None:
    for name in ("web1", "web2", "web3"):
        v = HostVerifier(spec(lab, name))
        check = v.check_vips([VIP_A, VIP_B, VIP_D])
        assert check.ok, check
        assert {a.label for a in v.loopback().addresses} >= {"lo", "lo:1", "lo:2"}
        v.close()
    v = HostVerifier(spec(lab, "web3"))
    try:
        v.unbind_vip(VIP_A)
        check = v.check_vips([VIP_A, VIP_B])
        assert check.missing == (VIP_A,) and check.present == (VIP_B,)
        # The VIP still answers from web3's point of view (forwarded to the active server),
        # which is why presence is never judged by requesting it.
        v.unbind_vip(VIP_A)  # removing it again changes nothing
    finally:
        v.bind_vip(VIP_A, 1)
        v.bind_vip(VIP_A, 1)  # binding twice is idempotent
        assert v.check_vips([VIP_A]).ok
        v.close()


def test_a_hosts_reads_run_in_one_shell_with_the_answers_exec_channels_give(lab: Lab) -> None:
    by_exec, by_shell = ExecSession(spec(lab, "web2")), ExecSession(spec(lab, "web2"), shell=True)
    try:
        for command in ("ip -j -4 addr show dev lo", f"ip -j route get {VIP_A} && ip -j route get {VIP_B}",
                        "sysctl net.ipv4.conf.all.arp_ignore net.ipv4.conf.all.arp_announce",
                        "ip route get 198.51.100.999", "printf 'no newline'", "true"):
            a, b = by_exec.run(command), by_shell.run(command)
            assert (b.exit_status, b.stdout, b.stderr) == (a.exit_status, a.stdout, a.stderr), command
        # One shell on web2 (a child of its sshd session) answered every command.
        pid = int(by_shell.run("echo $$").stdout)
        assert int(by_shell.run("echo $$").stdout) == pid
        assert comm(pid) == "sh" and comm(parent(pid)) == "sshd"
        # The host's shell killed between two reads: the next read is answered all the same.
        os.kill(pid, signal.SIGKILL)
        again = by_shell.run(f"ip -j route get {VIP_A}")
        assert again.exit_status == 0 and f'"dst":"{VIP_A}"' in again.stdout
        assert int(by_shell.run("echo $$").stdout) != pid
    finally:
        by_exec.close()
        by_shell.close()


def test_wrong_host_key_is_refused_and_changes_nothing(lab: Lab, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True, timeout=10)
    address = str(lab.plan.device("r1").address)
    bad = tmp_path / "known_hosts"
    bad.write_text(f"{address} {' '.join(other.with_suffix('.pub').read_text().split()[:2])}\n")
    for kind in ("frr", "cisco_ios"):
        with make_router_driver(kind, spec(lab, "r1", known_hosts=bad)) as d, pytest.raises(HostKeyError) as err:
            d.move([RouteMove(A, WEB1, WEB2)])
        assert str(err.value).startswith("r1: host key of 198.18.") and "does not match" in str(err.value)
    unknown = tmp_path / "empty_known_hosts"
    unknown.write_text("")
    with make_router_driver("linux", spec(lab, "r2", known_hosts=unknown)) as d, pytest.raises(HostKeyError) as err:
        d.get_static_routes()
    assert "is not in" in str(err.value)
    with make_router_driver("frr", spec(lab, "r1")) as d:
        assert d.fib_next_hops(A) == {WEB1}


def test_unreachable_router_is_a_named_connect_error(lab: Lab) -> None:
    nobody = str(lab.plan.mgmt_net[99])  # inside the lab's management net, no device there
    for kind in ("frr", "linux"):
        with make_router_driver(kind, spec(lab, "r9", address=nobody, connect_timeout=1.0)) as d:
            with pytest.raises(ConnectError) as err:
                d.get_static_routes()
            assert str(err.value).startswith("r9: ") and nobody in str(err.value)


def test_rejected_config_line_stops_the_change_and_leaves_routes(lab: Lab, lab_home: None) -> None:
    # FRR has no IOS revert timer: the very first line is refused with '%'.
    with make_router_driver("cisco_ios", spec(lab, "r1"), revert_seconds=300) as d:
        with pytest.raises(CommandRejected) as err:
            d.move([RouteMove(A, WEB1, WEB2)])
        assert "configure terminal revert timer 5" in str(err.value)
        assert d.fib_next_hops(A) == {WEB1}
        # The session is usable again after the refusal (it left config mode).
        assert (A, WEB1) in {(r.prefix, r.next_hop) for r in d.get_static_routes()}
    # Linux refuses a next hop it cannot reach; exit status, not output, decides.
    with make_router_driver("linux", spec(lab, "r2")) as d:
        with pytest.raises(CommandRejected) as err:
            d.move([RouteMove(D, WEB1, IPv4Address("198.51.100.250"))])
        assert str(err.value).startswith("r2: rejected 'ip route replace 198.51.100.96/27 via 198.51.100.250")
        assert d.fib_next_hops(D) == {WEB1}


def test_a_command_that_times_out_is_named_and_changes_nothing(lab: Lab) -> None:
    zebra = [p for p in namespace_pids(lab, "r1") if comm(p) == "zebra"]
    assert zebra, "zebra must run in r1"
    with make_router_driver("frr", spec(lab, "r1", command_timeout=2.0)) as d:
        d.get_static_routes()  # session up before the router hangs
        for pid in zebra:
            os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(CommandTimeout) as err:
                d.fib_next_hops(A)
            assert str(err.value).startswith("r1: ")
        finally:
            for pid in zebra:
                os.kill(pid, signal.SIGCONT)
    with make_router_driver("frr", spec(lab, "r1")) as d:
        assert d.fib_next_hops(A) == {WEB1}


def test_a_dead_session_is_reconnected_once_for_reads(lab: Lab) -> None:
    with make_router_driver("linux", spec(lab, "r2")) as d:
        before = d.get_static_routes()
        # Kill r2's per-connection sshd processes (children of an sshd); the listener stays.
        sessions = ssh_session_pids(lab, "r2")
        assert sessions, "our session must have an sshd process on r2"
        for pid in sessions:
            os.kill(pid, signal.SIGTERM)
        assert d.get_static_routes() == before
