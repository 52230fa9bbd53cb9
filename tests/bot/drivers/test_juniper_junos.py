"""The Junos driver's order, lines and reads, over a recording session (no Junos here).

What is checked is the driver's own logic: which blocks it sends in which order, that the
transcript is byte for byte the plan, that a cancel is sent only when the device says a
commit confirmed is pending, and that its reads go through the Junos parsers.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from support.blocks import RecordingBlocks, sent, wired

from bot.drivers.base import DeviceSpec, RouteMove
from bot.drivers.errors import DriverError, VerifyTimeout
from bot.drivers.juniper_junos import JunosDriver

A = IPv4Network("198.51.100.32/27")
B = IPv4Network("198.51.100.48/28")
WEB1, WEB2, WEB3 = (IPv4Address(f"192.0.2.{n}") for n in (2, 3, 4))
SPEC = DeviceSpec(name="mx1", address="198.18.7.12", username="ops", known_hosts=Path("/nonexistent"))
DATA = Path(__file__).parent / "parsers" / "data" / "junos"
SYSTEM_COMMIT = "show system commit"
PENDING = ("0   2024-05-02 10:41:07 UTC by ops via cli commit confirmed, rollback in 5mins\n"
           "1   2024-05-02 10:40:51 UTC by ops via cli commit confirmed, rollback in 5mins\n"
           "2   2024-05-01 09:12:30 UTC by ops via cli\n")
CONFIRMED = "0   2024-05-02 10:43:00 UTC by ops via cli\n1   2024-05-02 10:41:07 UTC by ops via cli\n"


def driver_with(session: RecordingBlocks, revert: int | None = None) -> JunosDriver:
    d = wired(JunosDriver(SPEC, revert_seconds=revert), session)
    # The make-before-break wait reads the active route: here, the same table.
    d.usable_next_hops = session.fib_next_hops  # type: ignore[method-assign]
    return d


def test_adds_commit_wait_then_removes_commit_both_confirmed_when_armed() -> None:
    s = RecordingBlocks({(A, WEB1), (B, WEB2)})
    d = driver_with(s, revert=300)
    d.load([RouteMove(A, WEB1, WEB2), RouteMove(B, WEB2, WEB3)])
    d.commit(confirm_timeout=1)
    assert s.events == [
        "configure exclusive",
        "set routing-options static route 198.51.100.32/27 next-hop 192.0.2.3",
        "set routing-options static route 198.51.100.48/28 next-hop 192.0.2.4",
        "commit confirmed 5",
        "exit configuration-mode",
        "fib? 198.51.100.32/27",
        "fib? 198.51.100.48/28",
        "configure exclusive",
        "delete routing-options static route 198.51.100.32/27 next-hop 192.0.2.2",
        "delete routing-options static route 198.51.100.48/28 next-hop 192.0.2.3",
        # Still confirmed: a plain commit here would confirm the first before anything is verified.
        "commit confirmed 5",
        "exit configuration-mode",
    ]
    assert s.routes == {(A, WEB2), (B, WEB3)}
    assert d.has_pending_commit()
    d.confirm()
    assert s.events[-3:] == ["configure exclusive", "commit", "exit configuration-mode"]
    assert not d.has_pending_commit()


def test_without_a_revert_delay_each_block_commits_plainly_and_nothing_is_pending() -> None:
    s = RecordingBlocks({(A, WEB1)})
    d = driver_with(s)
    d.load([RouteMove(A, WEB1, WEB2)])
    d.commit(confirm_timeout=1)
    assert sent(s.events) == [
        "configure exclusive", "set routing-options static route 198.51.100.32/27 next-hop 192.0.2.3",
        "commit", "exit configuration-mode",
        "configure exclusive", "delete routing-options static route 198.51.100.32/27 next-hop 192.0.2.2",
        "commit", "exit configuration-mode",
    ]
    assert not d.has_pending_commit()
    assert d.confirm().exchanges == []


@pytest.mark.parametrize("revert", [None, 60, 300])
def test_what_is_sent_is_byte_for_byte_what_the_plan_shows(revert: int | None) -> None:
    moves = [RouteMove(A, WEB1, WEB2), RouteMove(B, WEB2, WEB3)]
    s = RecordingBlocks({(A, WEB1), (B, WEB2)})
    d = driver_with(s, revert)
    d.load(moves)
    assert d.compare() == JunosDriver.change_lines(moves, revert)
    transcript = d.commit(confirm_timeout=1)
    transcript.exchanges += d.confirm().exchanges
    shown = JunosDriver.change_lines(moves, revert) + JunosDriver.confirm_lines(revert) + JunosDriver.save_lines()
    assert [e.command for e in transcript.exchanges] == sent(s.events) == shown
    assert JunosDriver.save_lines() == [] and not JunosDriver.saves


def test_rollback_of_an_armed_commit_cancels_on_the_router_then_restores() -> None:
    s = RecordingBlocks({(A, WEB1)}, {SYSTEM_COMMIT: PENDING})
    d = driver_with(s, revert=300)
    d.load([RouteMove(A, WEB1, WEB2)])
    d.commit(confirm_timeout=1)
    s.events = []
    # `rollback 1` + `commit` after two confirmed commits: the configuration between them comes back.
    s.routes = {(A, WEB1), (A, WEB2)}
    d.rollback(confirm_timeout=1)
    assert sent(s.events) == [
        "configure exclusive", "rollback 1", "commit", "exit configuration-mode",
        # What still differs is put back, never itself under a timer.
        "configure exclusive", "delete routing-options static route 198.51.100.32/27 next-hop 192.0.2.3",
        "commit", "exit configuration-mode",
    ]
    assert s.events[0] == f"show {SYSTEM_COMMIT}"  # asked before rollback 1 was sent
    assert not d.has_pending_commit()
    assert s.routes == {(A, WEB1)}


def test_no_rollback_1_when_the_router_has_nothing_pending() -> None:
    """`rollback 1` + `commit` is never refused: sent with nothing pending it would undo the
    last commit, whoever made it. A refused set line leaves the driver unsure, so it asks."""
    s = RecordingBlocks({(A, WEB1)}, {SYSTEM_COMMIT: CONFIRMED})
    s.refuse.add("set routing-options static route 198.51.100.32/27 next-hop 192.0.2.3")
    d = driver_with(s, revert=300)
    d.load([RouteMove(A, WEB1, WEB2)])
    with pytest.raises(DriverError):
        d.commit(confirm_timeout=1)
    assert d.has_pending_commit()  # the base cannot tell whether the arming took
    s.events = []
    d.rollback(confirm_timeout=1)
    assert "rollback 1" not in s.events and s.events[0] == f"show {SYSTEM_COMMIT}"
    assert not d.has_pending_commit() and s.routes == {(A, WEB1)}


def test_the_old_next_hop_stays_when_the_new_one_never_becomes_usable() -> None:
    s = RecordingBlocks({(A, WEB1)})
    d = driver_with(s)
    d.usable_next_hops = lambda prefix: {WEB1}  # type: ignore[method-assign]
    d.load([RouteMove(A, WEB1, WEB2)])
    with pytest.raises(VerifyTimeout):
        d.commit(confirm_timeout=0.2)
    assert not any(e.startswith("delete ") for e in s.events)


def test_the_make_before_break_wait_takes_a_resolved_next_hop_junos_does_not_forward_over() -> None:
    # Mid-move capture: both next hops on the active route, Junos forwarding over the old one.
    s = RecordingBlocks(set(), {"show route 198.51.100.48/28 exact table inet.0 | display json":
                                (DATA / "route_two_next_hops.json").read_text()})
    d = JunosDriver(SPEC)
    d.cli = s  # type: ignore[assignment]
    assert d.fib_next_hops(B) == {WEB1}
    assert d.usable_next_hops(B) == {WEB1, WEB2}
    assert d.wait_for_fib(B, WEB2, exact=False, timeout=0) == {WEB1, WEB2}
    with pytest.raises(VerifyTimeout):
        d.wait_for_fib(B, WEB2, timeout=0)  # the exact verification reads what forwards


def test_a_make_before_break_wait_that_times_out_names_the_active_routes_next_hops() -> None:
    s = RecordingBlocks(set(), {"show route 198.51.100.48/28 exact table inet.0 | display json":
                                (DATA / "route_two_next_hops.json").read_text()})
    d = JunosDriver(SPEC)
    d.cli = s  # type: ignore[assignment]
    with pytest.raises(VerifyTimeout) as e:
        d.wait_for_fib(B, {WEB2, WEB3}, exact=False, timeout=0)
    assert str(e.value) == ("mx1: 198.51.100.48/28's active route has next hops 192.0.2.2, 192.0.2.3 after 0s "
                            "(expected 192.0.2.3, 192.0.2.4 among them)")
    with pytest.raises(VerifyTimeout) as e:
        d.wait_for_fib(B, WEB2, timeout=0)
    assert str(e.value) == "mx1: 198.51.100.48/28 still points at 192.0.2.2 after 0s (expected 192.0.2.3)"


def test_reads_go_through_the_junos_parsers() -> None:
    s = RecordingBlocks(set(), {
        "show route protocol static table inet.0 | display json":
            (DATA / "show_route_protocol_static.json").read_text(),
        "show route 198.51.100.32/27 exact table inet.0 | display json": (DATA / "route_single.json").read_text(),
        "show configuration routing-options static | display set":
            "set routing-options static route 0.0.0.0/0 next-hop 203.0.113.1\n"
            "set routing-options static route 198.51.100.32/27 next-hop 192.0.2.2\n"
            "set routing-options static route 198.51.100.48/28 next-hop 192.0.2.2\n"
            "set routing-options static route 198.51.100.48/28 next-hop 192.0.2.3\n"
            "set routing-options static route 198.51.100.64/27 next-hop 192.0.2.3\n"
            "set routing-options static route 198.51.100.64/27 preference 200\n"
            "set routing-options static route 198.51.100.224/27 discard\n"
            "\n{master:0}\n",
    })
    d = JunosDriver(SPEC)
    d.cli = s  # type: ignore[assignment]
    routes = d.get_static_routes()
    assert {(r.prefix, r.next_hop) for r in routes if r.selected} >= {(A, WEB1), (B, WEB1), (B, WEB2)}
    assert all(r.protocol == "static" for r in routes)
    assert d.fib_next_hops(A) == {WEB1}
    assert d.configured() == {
        (IPv4Network("0.0.0.0/0"), IPv4Address("203.0.113.1")), (A, WEB1), (B, WEB1), (B, WEB2),
        (IPv4Network("198.51.100.64/27"), WEB2),
    }


def test_the_revert_delay_is_whole_minutes_junos_takes() -> None:
    with pytest.raises(DriverError, match="whole number of minutes from 1m to 65535m"):
        JunosDriver(SPEC, revert_seconds=90)
    with pytest.raises(DriverError, match="whole number of minutes"):
        JunosDriver(SPEC, revert_seconds=65536 * 60)
    assert JunosDriver.change_lines([RouteMove(A, WEB1, WEB2)], 60)[2] == "commit confirmed 1"
