"""The host verifier's reads, over a scripted exec session: what is asked, and how answers are judged.

The lab tests (test_drivers_lab.py) prove the same reads against real hosts over real SSH.
"""

from __future__ import annotations

import json
from ipaddress import IPv4Address
from pathlib import Path

from bot.drivers.base import DeviceSpec
from bot.drivers.host import HostVerifier
from bot.drivers.ssh import CommandResult

A, B = IPv4Address("198.51.100.33"), IPv4Address("198.51.100.65")
SPEC = DeviceSpec(name="web2", address="192.0.2.3", username="ops", key_file=Path("/k"), known_hosts=Path("/kh"))


def addr(*bound: IPv4Address) -> str:
    infos = [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "label": "lo"}]
    infos += [{"family": "inet", "local": str(v), "prefixlen": 32, "label": f"lo:{n}"} for n, v in enumerate(bound, 1)]
    return json.dumps([{"ifindex": 1, "ifname": "lo", "addr_info": infos}])


def route(vip: IPv4Address, kind: str = "local") -> str:
    return json.dumps([{"type": kind, "dst": str(vip), "dev": "lo" if kind == "local" else "eth0"}])


class Script:
    """An exec session answering from a table; a command not in it fails as an unknown command would."""

    def __init__(self, answers: dict[str, tuple[int, str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def run(self, command: str, *, timeout: float | None = None, retry: bool = True) -> CommandResult:
        self.asked.append(command)
        status, out = self.answers.get(command, (127, "sh: not allowed"))
        return CommandResult(command, status, out if status == 0 else "", "" if status == 0 else out, 0.001)

    def close(self) -> None:
        pass


def verifier(script: Script) -> HostVerifier:
    v = HostVerifier(SPEC)
    v.ssh = script  # type: ignore[assignment]
    return v


ONE = f"ip -j -4 addr show dev lo && ip -j route get {A} && ip -j route get {B}"


def test_the_loopback_and_every_vips_route_are_read_in_one_exchange() -> None:
    script = Script({ONE: (0, "\n".join([addr(A), route(A), route(B, "unicast")]) + "\n")})
    check = verifier(script).check_vips([A, B], arp=False)
    assert check.present == (A,) and check.missing == (B,)  # B is not on lo and routes away
    assert script.asked == [ONE]


def test_a_vip_the_kernel_routes_elsewhere_is_missing_though_bound() -> None:
    script = Script({ONE: (0, "\n".join([addr(A, B), route(A), route(B, "unicast")]))})
    assert verifier(script).check_vips([A, B], arp=False).missing == (B,)


def test_a_host_that_takes_one_command_at_a_time_is_read_one_by_one_from_then_on() -> None:
    single = {"ip -j -4 addr show dev lo": (0, addr(A, B)), f"ip -j route get {A}": (0, route(A)),
              f"ip -j route get {B}": (0, route(B))}
    script = Script(single)  # the one exchange is refused, like a restricted shell would
    v = verifier(script)
    assert v.check_vips([A, B], arp=False).ok
    assert script.asked[0] == ONE and ONE not in script.asked[1:]
    script.asked.clear()
    assert v.check_vips([A, B], arp=False).ok
    assert ONE not in script.asked


def test_output_that_is_not_one_line_per_command_is_never_judged_but_read_again_one_by_one() -> None:
    answers = {ONE: (0, addr(A, B) + route(A) + route(B)),  # all on one line: not trusted
               "ip -j -4 addr show dev lo": (0, addr(A)), f"ip -j route get {A}": (0, route(A))}
    script = Script(answers)
    check = verifier(script).check_vips([A, B], arp=False)
    assert check.present == (A,) and check.missing == (B,)
