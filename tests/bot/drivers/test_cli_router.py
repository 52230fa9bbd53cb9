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
from bot.drivers.cli_router import CliRouterDriver
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

    def configure(self, lines: Sequence[str], transcript: Transcript, *, enter: str = "configure terminal",
                  leave: str = "end") -> None:
        self.events.append(enter)
        transcript.add(enter, "", 0.0)
        for line in lines:
            self.events.append(line)
            transcript.add(line, "", 0.0)
            words = line.split()
            remove = words[0] == "no"
            if remove:
                words = words[1:]
            if "/" in words[2]:
                net, nh = IPv4Network(words[2]), IPv4Address(words[3])
            else:
                net, nh = IPv4Network(f"{words[2]}/{words[3]}"), IPv4Address(words[4])
            (self.routes.discard if remove else self.routes.add)((net, nh))
        self.events.append(leave)
        transcript.add(leave, "", 0.0)

    def show(self, command: str, transcript: Transcript | None = None) -> str:
        # The only reads that go through the session here: FRR's checks before it saves.
        assert command in ("show running-config staticd", "show daemons"), command
        return " zebra staticd" if command == "show daemons" else ""

    def exec_line(self, command: str, transcript: Transcript, expect: str | None = None,
                  warnings: str | None = None) -> str:
        self.events.append(command)
        transcript.add(command, "", 0.0)
        return ""

    def close(self) -> None:
        pass


def driver_with(cls: type[CliRouterDriver], session: RecordingSession, **kw: int) -> CliRouterDriver:
    d = cls(SPEC, **kw)  # type: ignore[arg-type]

    def routes() -> list[StaticRoute]:
        return [StaticRoute(p, nh) for p, nh in sorted(session.routes)]

    def fib(prefix: IPv4Network) -> set[IPv4Address]:
        session.events.append(f"fib? {prefix}")
        return {nh for p, nh in session.routes if p == prefix} if session.install else {WEB1}

    d.get_static_routes = routes  # type: ignore[method-assign]
    d.configured = lambda: set(session.routes)  # type: ignore[method-assign]
    d.fib_next_hops = fib  # type: ignore[method-assign]
    d.fib_next_hops_many = lambda prefixes: {p: fib(p) for p in prefixes}  # type: ignore[method-assign]
    d.cli = session  # type: ignore[assignment]
    return d


def sent(events: list[str]) -> list[str]:
    return [e for e in events if not e.startswith("fib? ")]


def test_frr_adds_new_confirms_then_removes_old_for_many_prefixes_in_one_pass() -> None:
    s = RecordingSession({(A, WEB1), (B, WEB2)})
    d = driver_with(FrrDriver, s)
    d.load([RouteMove(A, WEB1, WEB2), RouteMove(B, WEB2, WEB3)])
    d.commit(confirm_timeout=1)
    assert s.events == [
        "configure terminal",
        "ip route 198.51.100.32/27 192.0.2.3",
        "ip route 198.51.100.64/27 192.0.2.4",
        "end",
        "fib? 198.51.100.32/27",
        "fib? 198.51.100.64/27",
        "configure terminal",
        "no ip route 198.51.100.32/27 192.0.2.2",
        "no ip route 198.51.100.64/27 192.0.2.3",
        "end",
    ]
    assert s.routes == {(A, WEB2), (B, WEB3)}
    assert not d.has_pending_commit()


@pytest.mark.parametrize(("cls", "revert"), [(FrrDriver, None), (CiscoIosDriver, None), (CiscoIosDriver, 300)])
def test_what_is_sent_is_byte_for_byte_what_the_plan_shows(cls: type[CliRouterDriver], revert: int | None) -> None:
    moves = [RouteMove(A, WEB1, WEB2), RouteMove(B, WEB2, WEB3)]
    s = RecordingSession({(A, WEB1), (B, WEB2)})
    d = driver_with(cls, s, **({} if revert is None else {"revert_seconds": revert}))
    d.load(moves)
    assert d.compare() == cls.change_lines(moves, revert)
    transcript = d.commit(confirm_timeout=1)
    transcript.exchanges += d.confirm().exchanges
    transcript.exchanges += d.save_config().exchanges
    shown = cls.change_lines(moves, revert) + cls.confirm_lines(revert) + cls.save_lines()
    assert [e.command for e in transcript.exchanges] == sent(s.events) == shown


def test_ios_writes_mask_form_and_arms_revert_on_the_first_block_then_confirms() -> None:
    s = RecordingSession({(A, WEB1)})
    d = driver_with(CiscoIosDriver, s, revert_seconds=300)
    d.load([RouteMove(A, WEB1, WEB2)])
    d.commit(confirm_timeout=1)
    assert sent(s.events) == [
        "configure terminal revert timer 5", "ip route 198.51.100.32 255.255.255.224 192.0.2.3", "end",
        "configure terminal", "no ip route 198.51.100.32 255.255.255.224 192.0.2.2", "end",
    ]
    assert d.has_pending_commit()
    d.confirm()
    assert s.events[-1] == "configure confirm" and not d.has_pending_commit()
    d.confirm()  # nothing pending: nothing sent
    assert s.events[-1] == "configure confirm" and s.events.count("configure confirm") == 1


def test_ios_rollback_of_a_pending_commit_reverts_on_the_router_now_not_later() -> None:
    s = RecordingSession({(A, WEB1)})
    d = driver_with(CiscoIosDriver, s, revert_seconds=300)
    d.load([RouteMove(A, WEB1, WEB2)])
    d.commit(confirm_timeout=1)
    s.routes = {(A, WEB1)}  # what `configure revert now` does on the router: the archived config back
    d.rollback(confirm_timeout=1)
    assert "configure revert now" in s.events and "configure confirm" not in s.events
    assert not d.has_pending_commit()
    assert s.routes == {(A, WEB1)}


def test_old_route_is_kept_when_the_new_hop_never_reaches_the_fib() -> None:
    s = RecordingSession({(A, WEB1)}, install=False)
    d = driver_with(FrrDriver, s)
    d.load([RouteMove(A, WEB1, WEB2)])
    with pytest.raises(VerifyTimeout):
        d.commit(confirm_timeout=0.2)
    assert (A, WEB1) in s.routes
    assert not any(e.startswith("no ") for e in s.events)


def test_rollback_of_a_half_done_move_removes_only_the_new_route() -> None:
    """After the new hop never showed in the FIB, both routes are configured: the rollback removes the new one."""
    s = RecordingSession({(A, WEB1)}, install=False)
    d = driver_with(FrrDriver, s)
    d.load([RouteMove(A, WEB1, WEB2)])
    with pytest.raises(VerifyTimeout):
        d.commit(confirm_timeout=0.2)
    s.install, s.events = True, []
    d.rollback(confirm_timeout=1)
    assert s.routes == {(A, WEB1)}
    assert sent(s.events) == ["configure terminal", "no ip route 198.51.100.32/27 192.0.2.3", "end"]


def test_a_rollback_of_a_new_route_removes_it() -> None:
    s = RecordingSession(set())
    d = driver_with(FrrDriver, s)
    d.load([RouteMove(A, None, WEB2)])
    d.commit(confirm_timeout=1)
    assert s.routes == {(A, WEB2)}
    d.rollback(confirm_timeout=1)
    assert s.routes == set()


def test_compare_against_the_live_config_leaves_out_what_is_already_so() -> None:
    s = RecordingSession({(A, WEB2)})
    d = driver_with(FrrDriver, s)
    d.load([RouteMove(A, WEB1, WEB2)])
    assert d.compare() == []  # already done: nothing to send, and the plan's lines differ
    assert FrrDriver.change_lines([RouteMove(A, WEB1, WEB2)]) != []
    d.commit(confirm_timeout=1)
    assert s.routes == {(A, WEB2)}
    assert not any(e.startswith(("ip route", "no ip route")) for e in s.events)


def test_route_lines_refuse_text() -> None:
    with pytest.raises(TypeError):
        FrrDriver.route_line(A, "eth0")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        CiscoIosDriver.route_line("198.51.100.32/27", WEB1)  # type: ignore[arg-type]


def test_ios_revert_timer_is_bounded() -> None:
    with pytest.raises(DriverError, match="whole number of minutes from 1m to 120m"):
        CiscoIosDriver(SPEC, revert_seconds=30)
    with pytest.raises(DriverError, match="no device-side revert"):
        FrrDriver(SPEC, revert_seconds=300)
