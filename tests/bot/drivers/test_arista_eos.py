"""The EOS driver's order, lines and reads, over a recording session (no EOS here)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from support.blocks import RecordingBlocks, sent, wired

from bot.drivers.arista_eos import EosDriver
from bot.drivers.base import DeviceSpec, RouteMove
from bot.drivers.errors import DriverError

A = IPv4Network("198.51.100.32/27")
B = IPv4Network("198.51.100.48/28")
WEB1, WEB2, WEB3 = (IPv4Address(f"192.0.2.{n}") for n in (2, 3, 4))
SPEC = DeviceSpec(name="sw1", address="198.18.7.13", username="ops", known_hosts=Path("/nonexistent"))
DATA = Path(__file__).parent / "parsers" / "data" / "eos"


def driver_with(session: RecordingBlocks, revert: int | None = None) -> EosDriver:
    return wired(EosDriver(SPEC, revert_seconds=revert), session)


def test_adds_commit_wait_then_removes_under_the_timer() -> None:
    s = RecordingBlocks({(A, WEB1), (B, WEB2)})
    d = driver_with(s, revert=300)
    d.load([RouteMove(A, WEB1, WEB2), RouteMove(B, WEB2, WEB3)])
    d.commit(confirm_timeout=1)
    assert s.events == [
        "configure session lasthop-add",
        "ip route 198.51.100.32/27 192.0.2.3",
        "ip route 198.51.100.48/28 192.0.2.4",
        "commit",
        "fib? 198.51.100.32/27",
        "fib? 198.51.100.48/28",
        "configure session lasthop-change",
        "no ip route 198.51.100.32/27 192.0.2.2",
        "no ip route 198.51.100.48/28 192.0.2.3",
        "commit timer 00:05:00",
    ]
    assert s.routes == {(A, WEB2), (B, WEB3)}
    assert d.has_pending_commit()
    d.confirm()
    assert s.events[-1] == "configure session lasthop-change commit" and not d.has_pending_commit()


def test_a_new_route_arms_its_only_session() -> None:
    s = RecordingBlocks(set())
    d = driver_with(s, revert=90)
    d.load([RouteMove(A, None, WEB2)])
    d.commit(confirm_timeout=1)
    assert sent(s.events) == ["configure session lasthop-change", "ip route 198.51.100.32/27 192.0.2.3",
                              "commit timer 00:01:30"]
    assert d.has_pending_commit()


@pytest.mark.parametrize("revert", [None, 1, 300, 86399])
def test_what_is_sent_is_byte_for_byte_what_the_plan_shows(revert: int | None) -> None:
    moves = [RouteMove(A, WEB1, WEB2), RouteMove(B, WEB2, WEB3)]
    s = RecordingBlocks({(A, WEB1), (B, WEB2)})
    d = driver_with(s, revert)
    d.load(moves)
    assert d.compare() == EosDriver.change_lines(moves, revert)
    transcript = d.commit(confirm_timeout=1)
    transcript.exchanges += d.confirm().exchanges
    transcript.exchanges += d.save_config().exchanges
    shown = EosDriver.change_lines(moves, revert) + EosDriver.confirm_lines(revert) + EosDriver.save_lines()
    assert [e.command for e in transcript.exchanges] == sent(s.events) == shown
    assert shown[-1] == "write memory"


def test_rollback_of_an_armed_commit_aborts_the_session_then_restores() -> None:
    s = RecordingBlocks({(A, WEB1)})
    d = driver_with(s, revert=300)
    d.load([RouteMove(A, WEB1, WEB2)])
    d.commit(confirm_timeout=1)
    s.events = []
    s.routes = {(A, WEB1), (A, WEB2)}  # what the abort does: the removal undone, the add (committed plainly) stays
    d.rollback(confirm_timeout=1)
    assert sent(s.events) == [
        "configure session lasthop-change abort",
        "configure session lasthop-change", "no ip route 198.51.100.32/27 192.0.2.3", "commit",
    ]
    assert not d.has_pending_commit()
    assert s.routes == {(A, WEB1)}


def test_an_abort_the_router_refuses_does_not_stop_the_rollback() -> None:
    s = RecordingBlocks({(A, WEB1)})
    s.refuse |= {"no ip route 198.51.100.32/27 192.0.2.2", "configure session lasthop-change abort"}
    d = driver_with(s, revert=300)
    d.load([RouteMove(A, WEB1, WEB2)])
    with pytest.raises(DriverError):
        d.commit(confirm_timeout=1)
    s.refuse.clear()
    s.refuse.add("configure session lasthop-change abort")  # EOS: that session is not pending
    d.rollback(confirm_timeout=1)
    assert not d.has_pending_commit() and s.routes == {(A, WEB1)}


def test_reads_go_through_the_eos_parsers() -> None:
    s = RecordingBlocks(set(), {
        "show ip route static | json": (DATA / "show_ip_route_static.json").read_text(),
        "show ip route 198.51.100.32/27 | json": (DATA / "route_single.json").read_text(),
        "show ip route 198.51.100.80/28 | json": (DATA / "show_ip_route_static.json").read_text(),
        "show running-config | include ^ip route":
            "ip route 0.0.0.0/0 203.0.113.1\n"
            "ip route 198.51.100.32/27 192.0.2.2\n"
            "ip route 198.51.100.64/27 192.0.2.3 200\n"  # floating: EOS's table does not list it
            "ip route vrf MGMT 0.0.0.0/0 198.18.0.1\n"
            "ip route 198.51.100.224/27 Null0\n",
    })
    d = EosDriver(SPEC)
    d.cli = s  # type: ignore[assignment]
    assert (A, WEB1) in {(r.prefix, r.next_hop) for r in d.get_static_routes()}
    assert d.fib_next_hops(A) == {WEB1}
    assert d.fib_next_hops(IPv4Network("198.51.100.80/28")) == set()  # in the RIB, not yet in hardware
    assert d.configured() == {(IPv4Network("0.0.0.0/0"), IPv4Address("203.0.113.1")), (A, WEB1),
                              (IPv4Network("198.51.100.64/27"), WEB2)}


def test_the_commit_timer_is_under_a_day() -> None:
    with pytest.raises(DriverError, match="whole number of seconds from 1s to 86399s"):
        EosDriver(SPEC, revert_seconds=86400)
