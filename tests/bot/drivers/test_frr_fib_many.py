"""FRR's FIB read for many prefixes at once gives what one read per prefix gives.

`fib_next_hops_many` reads the prefixes of one /24 with `show ip route COVER longer-prefixes json`,
an object of prefix -> route entries in the very form `show ip route P json` gives for each P
(zebra prints both with the same per-route code; the lab test in test_drivers_lab.py compares the
two on a live r1). Here a connection answers the per-prefix reads with the captures of FRR 8.4
and the covering read with those same captures joined, through the real CliSession: kernel routes
that win, losing statics, ECMP, recursive, inactive, absent.
"""

from __future__ import annotations

import json
import re
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest

from bot.drivers.base import DeviceSpec
from bot.drivers.frr import FrrDriver, covers

DATA = Path(__file__).parent / "parsers" / "data" / "frr"
SPEC = DeviceSpec(name="r1", address="198.18.7.11", username="ops", known_hosts=Path("/nonexistent"))
CAPTURES = ["route_single.json", "route_ecmp.json", "route_ecmp_one_inactive.json", "route_inactive.json",
            "route_kernel_wins.json", "route_lower_distance_wins.json", "route_recursive.json",
            "route_blackhole.json", "route_interface_only.json", "route_host32.json"]
ABSENT = IPv4Network("198.51.100.240/28")


def net(text: str) -> IPv4Network:
    return IPv4Network(text)


class RouteReplay:
    """vtysh's reads from captures: one prefix's route, or every captured route within a cover."""

    base_prompt = "ld-r1"

    def __init__(self) -> None:
        self.routes: dict[str, list[Any]] = {}
        for name in CAPTURES:
            self.routes.update(json.loads((DATA / name).read_text()))
        self.sent: list[str] = []
        self.unread = ""

    def write_channel(self, data: str) -> None:
        command = data.rstrip("\n")
        self.sent.append(command)
        m = re.fullmatch(r"show ip route (\S+)( longer-prefixes)? json", command)
        assert m, command
        asked = net(m[1])
        doc = {p: r for p, r in self.routes.items() if (net(p).subnet_of(asked) if m[2] else net(p) == asked)}
        self.unread = f"{command}\n{json.dumps(doc, indent=2)}\nld-r1# "

    def read_channel(self) -> str:
        out, self.unread = self.unread, ""
        return out

    def disconnect(self) -> None:
        pass


@pytest.fixture
def frr() -> tuple[FrrDriver, RouteReplay]:
    d = FrrDriver(SPEC)
    conn = RouteReplay()
    d.cli._conn = conn  # the session's own connection slot: nothing else is faked
    return d, conn


def test_many_prefixes_of_one_24_are_one_read_with_each_prefixs_own_answer(frr: tuple[FrrDriver, RouteReplay]) -> None:
    d, conn = frr
    prefixes = [net(p) for p in conn.routes] + [ABSENT]
    one = {p: d.fib_next_hops(p) for p in prefixes}
    assert one[net("198.51.100.160/27")] == {IPv4Address("192.0.2.3")}  # the kernel route that wins
    assert one[net("198.51.100.64/27")] == {IPv4Address("192.0.2.2"), IPv4Address("192.0.2.3")}
    assert one[ABSENT] == set()
    conn.sent.clear()
    assert d.fib_next_hops_many(prefixes) == one
    assert conn.sent == ["show ip route 198.51.100.0/24 longer-prefixes json"]


def test_the_cover_is_the_smallest_that_holds_them_and_the_answer_keeps_the_asked_order(
        frr: tuple[FrrDriver, RouteReplay]) -> None:
    d, conn = frr
    asked = [net("198.51.100.160/27"), net("198.51.100.128/27")]
    assert list(d.fib_next_hops_many(asked)) == asked
    assert conn.sent == ["show ip route 198.51.100.128/26 longer-prefixes json"]


def test_a_prefix_alone_in_its_24_or_shorter_than_24_is_read_on_its_own() -> None:
    wide, lone = net("198.18.0.0/16"), net("203.0.113.0/28")
    a, b = net("198.51.100.32/27"), net("198.51.100.64/27")
    assert covers([wide, a, lone, b, a]) == [(None, [wide]), (net("198.51.100.0/25"), [a, b]), (None, [lone])]
    assert covers([]) == []
