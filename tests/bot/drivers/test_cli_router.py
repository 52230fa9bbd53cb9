"""The order of a make-before-break change on a Cisco-like CLI, with a recording session.

A fake session is enough here: this checks pure ordering logic. The lab tests
prove the same path against a real FRR router over SSH.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from bot.drivers.base import DeviceSpec, RouteMove, StaticRoute, Transcript
from bot.drivers.cisco_ios import CiscoIosDriver
from bot.drivers.errors import DriverError, VerifyTimeout
from bot.drivers.frr import FrrDriver

A = IPv4Network("198.51.100.32/27")
B = IPv4Network("198.51.100.64/27")
WEB1, WEB2, WEB3 = (IPv4Address(f"192.0.2.{n}") for n in (2, 3, 4))
SPEC = DeviceSpec(name="r1", address="198.18.7.11", username="ops", known_hosts=Path("/nonexistent"))


class RecordingSession:
    """Holds a route table; config lines change it; events are logged in order."""

    def __init__(self, routes: set[tuple[IPv4Network, IPv4Address]], install: bool = True) -> None:
        self.routes = set(routes)
        self.install = install
        self.events: list[str] = []

    def configure(self, lines: Sequence[str], transcript: Transcript, *, enter: str = "configure terminal") -> None:
        self.events.append(enter)
        for line in lines:
            self.events.append(line)
            words = line.split()
            remove = words[0] == "no"
            if remove:
                words = words[1:]
            if "/" in words[2]:
                net, nh = IPv4Network(words[2]), IPv4Address(words[3])
            else:
                net, nh = IPv4Network(f"{words[2]}/{words[3]}"), IPv4Address(words[4])
            (self.routes.discard if remove else self.routes.add)((net, nh))

    def close(self) -> None:
        pass


def driver_with(cls: type, session: RecordingSession) -> FrrDriver | CiscoIosDriver:
    d = cls(SPEC)

    def routes() -> list[StaticRoute]:
        return [StaticRoute(p, nh) for p, nh in sorted(session.routes)]

    def fib(prefix: IPv4Network) -> set[IPv4Address]:
        session.events.append(f"fib? {prefix}")
        return {nh for p, nh in session.routes if p == prefix} if session.install else {WEB1}

    d.get_static_routes = routes  # type: ignore[method-assign]
    d.configured_routes = lambda: set(session.routes)  # type: ignore[method-assign]
    d.fib_next_hops = fib  # type: ignore[method-assign]
    d.cli = session  # type: ignore[assignment]
    return d


def test_frr_adds_new_confirms_then_removes_old_for_many_prefixes_in_one_pass() -> None:
    s = RecordingSession({(A, WEB1), (B, WEB2)})
    d = driver_with(FrrDriver, s)
    d.move([RouteMove(A, WEB1, WEB2), RouteMove(B, WEB2, WEB3)], confirm_timeout=1)
    assert s.events == [
        "configure terminal",
        "ip route 198.51.100.32/27 192.0.2.3",
        "ip route 198.51.100.64/27 192.0.2.4",
        "fib? 198.51.100.32/27",
        "fib? 198.51.100.64/27",
        "configure terminal",
        "no ip route 198.51.100.32/27 192.0.2.2",
        "no ip route 198.51.100.64/27 192.0.2.3",
    ]
    assert s.routes == {(A, WEB2), (B, WEB3)}


def test_ios_writes_mask_form_and_arms_revert_on_first_configure() -> None:
    s = RecordingSession({(A, WEB1)})
    d = driver_with(CiscoIosDriver, s)
    d.supports_revert = True
    d.move([RouteMove(A, WEB1, WEB2)], revert_minutes=5, confirm_timeout=1)
    assert s.events[:2] == ["configure terminal revert timer 5", "ip route 198.51.100.32 255.255.255.224 192.0.2.3"]
    assert s.events[-2:] == ["configure terminal", "no ip route 198.51.100.32 255.255.255.224 192.0.2.2"]


def test_old_route_is_kept_when_the_new_hop_never_reaches_the_fib() -> None:
    s = RecordingSession({(A, WEB1)}, install=False)
    d = driver_with(FrrDriver, s)
    with pytest.raises(VerifyTimeout):
        d.move([RouteMove(A, WEB1, WEB2)], confirm_timeout=0.2)
    assert (A, WEB1) in s.routes
    assert not any(e.startswith("no ") for e in s.events)


def test_reverse_of_a_half_done_move_is_clean() -> None:
    """After a failure left both routes (ECMP), the reverse move only removes the new one."""
    s = RecordingSession({(A, WEB1), (A, WEB2)})
    d = driver_with(FrrDriver, s)
    d.move([RouteMove(A, WEB1, WEB2).reversed()], confirm_timeout=1)
    assert s.routes == {(A, WEB1)}
    assert "ip route 198.51.100.32/27 192.0.2.2" not in s.events  # already there: not re-added


def test_repeating_a_finished_move_changes_nothing() -> None:
    s = RecordingSession({(A, WEB2)})
    d = driver_with(FrrDriver, s)
    d.move([RouteMove(A, WEB1, WEB2)], confirm_timeout=1)
    assert s.routes == {(A, WEB2)}
    assert not any(e.startswith(("ip route", "no ip route")) for e in s.events)


def test_route_lines_refuse_text() -> None:
    with pytest.raises(TypeError):
        FrrDriver(SPEC).route_line(A, "eth0")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        CiscoIosDriver(SPEC).route_line("198.51.100.32/27", WEB1)  # type: ignore[arg-type]


def test_ios_revert_timer_is_bounded() -> None:
    s = RecordingSession({(A, WEB1)})
    d = driver_with(CiscoIosDriver, s)
    d.supports_revert = True
    with pytest.raises(DriverError, match="1-120 minutes"):
        d.move([RouteMove(A, WEB1, WEB2)], revert_minutes=0)
    assert s.events == []
