"""Junos command rendering: exact lines, and nothing but typed values gets in."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

import pytest

from bot.drivers import junos_commands as jc
from bot.drivers.base import RouteMove

P32 = IPv4Network("198.51.100.32/27")
P64 = IPv4Network("198.51.100.64/27")
A2 = IPv4Address("198.51.100.2")
A3 = IPv4Address("198.51.100.3")


def test_route_set_and_delete_lines() -> None:
    assert jc.route_set(P32, A3) == "set routing-options static route 198.51.100.32/27 next-hop 198.51.100.3"
    assert jc.route_delete(P32, A2) == "delete routing-options static route 198.51.100.32/27 next-hop 198.51.100.2"


def test_host_and_default_routes_keep_their_length() -> None:
    assert jc.route_set(IPv4Network("203.0.113.7/32"), A3) == (
        "set routing-options static route 203.0.113.7/32 next-hop 198.51.100.3")
    assert jc.route_set(IPv4Network("0.0.0.0/0"), A3) == (
        "set routing-options static route 0.0.0.0/0 next-hop 198.51.100.3")


@pytest.mark.parametrize(
    ("prefix", "next_hop"),
    [
        ("198.51.100.32/27", A3),
        (P32, "198.51.100.3"),
        (P32, "198.51.100.3; delete routing-options"),
        (P32, "ge-0/0/0.0"),
        (P32, int(A3)),
        (IPv6Network("2001:db8::/32"), A3),
        (P32, IPv6Address("2001:db8::1")),
        (None, A3),
    ],
)
def test_only_ipv4_objects_reach_a_line(prefix: Any, next_hop: Any) -> None:
    with pytest.raises(TypeError, match=r"^Junos route lines take an IPv4Network and an IPv4Address$"):
        jc.route_set(prefix, next_hop)
    with pytest.raises(TypeError, match=r"^Junos route lines take an IPv4Network and an IPv4Address$"):
        jc.route_delete(prefix, next_hop)


@pytest.mark.parametrize(("minutes", "line"), [(1, "commit confirmed 1"), (5, "commit confirmed 5"),
                                               (65535, "commit confirmed 65535")])
def test_commit_confirmed(minutes: int, line: str) -> None:
    assert jc.commit_confirmed(minutes) == line


@pytest.mark.parametrize("minutes", [0, -1, 65536, 10**9])
def test_commit_confirmed_range(minutes: int) -> None:
    with pytest.raises(ValueError, match=r"1\.\.65535 minutes"):
        jc.commit_confirmed(minutes)


@pytest.mark.parametrize("minutes", [True, 5.0, "5", "5; rollback", None])
def test_commit_confirmed_takes_an_int(minutes: Any) -> None:
    with pytest.raises(TypeError):
        jc.commit_confirmed(minutes)


def test_commit_and_cancel_lines() -> None:
    assert jc.COMMIT == "commit"
    assert jc.ROLLBACK == "rollback 1"
    # rollback 1 only edits the candidate; the commit after it is what cancels.
    assert jc.CANCEL_CONFIRMED == ("rollback 1", "commit")


def test_change_lines_adds_all_then_removes_old_next_hops() -> None:
    moves = [
        RouteMove(P32, A2, A3),
        RouteMove(P64, None, A2),                       # new route: nothing to remove
        RouteMove(IPv4Network("203.0.113.0/28"), A3, A3),  # no-op: nothing to remove
        RouteMove(IPv4Network("198.18.0.0/15"), A3, A2),
    ]
    assert jc.change_lines(moves) == [
        "set routing-options static route 198.51.100.32/27 next-hop 198.51.100.3",
        "set routing-options static route 198.51.100.64/27 next-hop 198.51.100.2",
        "set routing-options static route 203.0.113.0/28 next-hop 198.51.100.3",
        "set routing-options static route 198.18.0.0/15 next-hop 198.51.100.2",
        "delete routing-options static route 198.51.100.32/27 next-hop 198.51.100.2",
        "delete routing-options static route 198.18.0.0/15 next-hop 198.51.100.3",
    ]


def test_change_lines_is_deterministic_and_keeps_caller_order() -> None:
    forward = [RouteMove(P64, A2, A3), RouteMove(P32, A2, A3)]
    first = jc.change_lines(forward)
    assert first == jc.change_lines(list(forward))
    assert "\n".join(first).encode() == (
        b"set routing-options static route 198.51.100.64/27 next-hop 198.51.100.3\n"
        b"set routing-options static route 198.51.100.32/27 next-hop 198.51.100.3\n"
        b"delete routing-options static route 198.51.100.64/27 next-hop 198.51.100.2\n"
        b"delete routing-options static route 198.51.100.32/27 next-hop 198.51.100.2"
    )
    assert jc.change_lines(forward[::-1]) != first


def test_change_lines_of_nothing_is_nothing() -> None:
    assert jc.change_lines([]) == []


def test_change_lines_refuses_anything_but_route_moves() -> None:
    with pytest.raises(TypeError, match="RouteMove"):
        jc.change_lines([(P32, A2, A3)])  # type: ignore[list-item]


def test_a_forged_route_move_still_cannot_inject() -> None:
    move = RouteMove(P32, A2, A3)
    object.__setattr__(move, "new", "198.51.100.3 next-hop 192.0.2.66")
    with pytest.raises(TypeError):
        jc.change_lines([move])
