"""EOS command rendering: exact lines, safe session names, and nothing but typed values gets in."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address
from typing import Any

import pytest

from bot.drivers import eos_commands as ec
from bot.drivers.base import RouteMove

P32 = IPv4Network("198.51.100.32/27")
P64 = IPv4Network("198.51.100.64/27")
A2 = IPv4Address("198.51.100.2")
A3 = IPv4Address("198.51.100.3")


def test_route_lines() -> None:
    assert ec.route_line(P32, A3) == "ip route 198.51.100.32/27 198.51.100.3"
    assert ec.no_route_line(P32, A2) == "no ip route 198.51.100.32/27 198.51.100.2"
    assert ec.route_line(IPv4Network("203.0.113.7/32"), A3) == "ip route 203.0.113.7/32 198.51.100.3"


@pytest.mark.parametrize(
    ("prefix", "next_hop"),
    [
        ("198.51.100.32/27", A3),
        (P32, "198.51.100.3"),
        (P32, "Ethernet1"),
        (P32, "198.51.100.3\nusername x secret y"),
        (P32, IPv6Address("2001:db8::1")),
        (P32, int(A3)),
    ],
)
def test_only_ipv4_objects_reach_a_line(prefix: Any, next_hop: Any) -> None:
    with pytest.raises(TypeError, match=r"^route_line takes an IPv4Network and an IPv4Address$"):
        ec.route_line(prefix, next_hop)
    with pytest.raises(TypeError, match=r"^route_line takes an IPv4Network and an IPv4Address$"):
        ec.no_route_line(prefix, next_hop)


@pytest.mark.parametrize(
    ("change_id", "name"),
    [
        ("42", "lasthop-42"),
        ("chg_2024-06-11", "lasthop-chg_2024-06-11"),
        ("a" * 40, "lasthop-" + "a" * 40),
    ],
)
def test_safe_short_ids_are_kept_readable(change_id: str, name: str) -> None:
    assert ec.session_name(change_id) == name


@pytest.mark.parametrize(
    "change_id",
    ["web vip/1", "x; configure terminal", "a\nb", "évier", "a" * 41, "a" * 500, "   ", "!!!"],
)
def test_unsafe_or_long_ids_become_safe_bounded_names(change_id: str) -> None:
    name = ec.session_name(change_id)
    assert ec.SESSION_NAME.match(name), name
    assert len(name) <= ec.MAX_SESSION_NAME
    assert name.startswith("lasthop-")
    assert name == ec.session_name(change_id)


def test_ids_that_clean_up_alike_get_different_names() -> None:
    names = {ec.session_name(i) for i in ["a b", "a/b", "a-b", "a  b", "a" * 60, "a" * 61]}
    assert len(names) == 6


@pytest.mark.parametrize(("change_id", "error"), [("", ValueError), (None, TypeError), (42, TypeError)])
def test_session_name_needs_a_string_id(change_id: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        ec.session_name(change_id)


def test_session_lines() -> None:
    name = ec.session_name("42")
    assert ec.configure_session(name) == "configure session lasthop-42"
    assert ec.ABORT == "abort"
    assert ec.confirm_pending(name) == "configure session lasthop-42 commit"
    assert ec.abort_pending(name) == "configure session lasthop-42 abort"


@pytest.mark.parametrize("name", ["", "a b", "x\nconfigure terminal", "a" * 49, None, 7])
def test_session_lines_refuse_unsafe_names(name: Any) -> None:
    for render in (ec.configure_session, ec.confirm_pending, ec.abort_pending):
        with pytest.raises(ValueError, match="not a safe configure-session name"):
            render(name)


@pytest.mark.parametrize(
    ("seconds", "line"),
    [
        (1, "commit timer 00:00:01"),
        (300, "commit timer 00:05:00"),
        (3661, "commit timer 01:01:01"),
        (86399, "commit timer 23:59:59"),
    ],
)
def test_commit_timer(seconds: int, line: str) -> None:
    assert ec.commit_timer(seconds) == line


@pytest.mark.parametrize("seconds", [0, -5, 86400, 10**7])
def test_commit_timer_range(seconds: int) -> None:
    with pytest.raises(ValueError, match=r"1\.\.86399 seconds"):
        ec.commit_timer(seconds)


@pytest.mark.parametrize("seconds", [True, 300.0, "300", None])
def test_commit_timer_takes_an_int(seconds: Any) -> None:
    with pytest.raises(TypeError):
        ec.commit_timer(seconds)


def test_change_lines_adds_all_then_removes_old_next_hops() -> None:
    moves = [
        RouteMove(P32, A2, A3),
        RouteMove(P64, None, A2),
        RouteMove(IPv4Network("203.0.113.0/28"), A3, A3),
        RouteMove(IPv4Network("198.18.0.0/15"), A3, A2),
    ]
    assert "\n".join(ec.change_lines(moves)).encode() == (
        b"ip route 198.51.100.32/27 198.51.100.3\n"
        b"ip route 198.51.100.64/27 198.51.100.2\n"
        b"ip route 203.0.113.0/28 198.51.100.3\n"
        b"ip route 198.18.0.0/15 198.51.100.2\n"
        b"no ip route 198.51.100.32/27 198.51.100.2\n"
        b"no ip route 198.18.0.0/15 198.51.100.3"
    )


def test_change_lines_is_deterministic_and_keeps_caller_order() -> None:
    moves = [RouteMove(P64, A2, A3), RouteMove(P32, A2, A3)]
    assert ec.change_lines(moves) == ec.change_lines(tuple(moves))
    assert ec.change_lines(moves)[:2] == [
        "ip route 198.51.100.64/27 198.51.100.3",
        "ip route 198.51.100.32/27 198.51.100.3",
    ]
    assert ec.change_lines(moves[::-1]) != ec.change_lines(moves)
    assert ec.change_lines([]) == []


def test_change_lines_refuses_anything_but_route_moves() -> None:
    with pytest.raises(TypeError, match="RouteMove"):
        ec.change_lines(["ip route 198.51.100.32/27 198.51.100.3"])  # type: ignore[list-item]


def test_a_forged_route_move_still_cannot_inject() -> None:
    move = RouteMove(P32, A2, A3)
    object.__setattr__(move, "old", "198.51.100.2\nno ip routing")
    with pytest.raises(TypeError):
        ec.change_lines([move])
