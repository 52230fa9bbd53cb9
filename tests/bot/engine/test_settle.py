"""The verdict on a change found in flight, one row per way a router can be found."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from bot.drivers.base import RouteMove
from bot.engine.settle import judge, prefix_state

A = IPv4Network("198.51.100.32/27")
B = IPv4Network("198.51.100.64/27")
OLD, NEW, OTHER = IPv4Address("192.0.2.2"), IPv4Address("192.0.2.3"), IPv4Address("192.0.2.9")
MOVE_A = RouteMove(A, OLD, NEW)
FRESH_B = RouteMove(B, None, NEW)  # a route that did not exist before the change


@pytest.mark.parametrize(("move", "live", "state"), [
    (MOVE_A, {OLD}, "old"),
    (MOVE_A, {NEW}, "new"),
    (MOVE_A, {OLD, NEW}, "both"),
    (MOVE_A, set(), "other"),
    (MOVE_A, {OTHER}, "other"),
    (MOVE_A, {OLD, NEW, OTHER}, "other"),
    (FRESH_B, set(), "old"),
    (FRESH_B, {NEW}, "new"),
    (FRESH_B, {NEW, OTHER}, "other"),
])
def test_prefix_state(move: RouteMove, live: set[IPv4Address], state: str) -> None:
    assert prefix_state(move, live) == state


@pytest.mark.parametrize(("status", "live_a", "live_b", "pending", "verdict"), [
    ("applying", {NEW}, {NEW}, False, "done"),
    ("verifying", {NEW}, {NEW}, False, "done"),
    ("applying", {OLD}, set(), False, "rolled_back"),
    ("applying", {OLD, NEW}, set(), False, "half_done"),  # cut between the add and the remove
    ("applying", {NEW}, set(), False, "half_done"),  # one prefix moved, the other not yet
    ("verifying", {NEW}, {NEW}, True, "half_done"),  # the router would undo it by itself later
    ("applying", {OLD}, set(), True, "half_done"),
    ("applying", {OTHER}, {NEW}, False, "unexplained"),
    ("needs_human", {OLD, NEW, OTHER}, set(), False, "unexplained"),
    ("needs_human", {NEW}, {NEW}, False, "done"),  # a person finished it by hand
    ("planned", {OTHER}, set(), False, "failed"),  # nothing of it was ever sent
])
def test_judge(status: str, live_a: set[IPv4Address], live_b: set[IPv4Address], pending: bool,
               verdict: str) -> None:
    got = judge(status, (MOVE_A, FRESH_B), {A: live_a, B: live_b}, pending=pending)
    assert got.verdict == verdict
    assert got.text


def test_an_unexplained_router_is_named_with_what_the_change_expected() -> None:
    got = judge("applying", (MOVE_A,), {A: {OTHER}})
    assert got.text == ("the router shows 192.0.2.9 for 198.51.100.32/27, which no lasthop change explains "
                        "(this one expects 192.0.2.2 or 192.0.2.3)")
