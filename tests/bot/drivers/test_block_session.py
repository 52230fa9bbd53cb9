"""How the Junos and EOS drivers set up their block session, through the real BlockSession.

A fake netmiko connection answers each line, so what is checked is the wiring each driver
gives its session: the netmiko device type, what counts as a refusal, what a line's reply
must contain, and the lines that abandon a half-made candidate.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest

from bot.drivers.arista_eos import EosDriver
from bot.drivers.base import DeviceSpec, RouteMove, RouterDriver
from bot.drivers.errors import CommandRejected
from bot.drivers.juniper_junos import JunosDriver

A = IPv4Network("198.51.100.32/27")
WEB1, WEB2 = IPv4Address("192.0.2.2"), IPv4Address("192.0.2.3")
SPEC = DeviceSpec(name="r1", address="198.18.7.14", username="ops", known_hosts=Path("/nonexistent"))
JUNOS_SET = "set routing-options static route 198.51.100.32/27 next-hop 192.0.2.3"
EOS_ADD = "ip route 198.51.100.32/27 192.0.2.3"


class LineConnection:
    """netmiko's connection as BlockSession uses it: a reply per line ("" otherwise), all recorded."""

    def __init__(self, replies: dict[str, str]) -> None:
        self.replies = replies
        self.sent: list[str] = []

    def send_command(self, line: str, **_: Any) -> str:
        self.sent.append(line)
        return self.replies.get(line, "")

    def disconnect(self) -> None:
        pass


def adding(driver: type[JunosDriver | EosDriver], replies: dict[str, str]) -> tuple[RouterDriver, LineConnection]:
    """`driver` over `replies`, loaded with a new route whose next hop is already forwarding."""
    d = driver(SPEC)
    conn = LineConnection(replies)
    d.cli._conn = conn  # the session's own connection slot: nothing else of it is faked
    d.configured = lambda: set()  # type: ignore[method-assign]
    d.fib_next_hops = lambda prefix: {WEB2}  # type: ignore[method-assign]
    if isinstance(d, JunosDriver):  # its make-before-break wait reads the active route instead
        d.usable_next_hops = lambda prefix: {WEB2}  # type: ignore[method-assign]
    d.load([RouteMove(A, None, WEB2)])
    return d, conn


@pytest.mark.parametrize("driver", [JunosDriver, EosDriver])
def test_the_session_speaks_the_drivers_netmiko_device_type(driver: type[JunosDriver | EosDriver]) -> None:
    assert driver(SPEC).cli.device_type == driver.kind


@pytest.mark.parametrize(("driver", "refused", "reply", "sent"), [
    (JunosDriver, JUNOS_SET, "\nerror: syntax error\n", ["configure exclusive", JUNOS_SET, "rollback 0",
                                                         "exit configuration-mode"]),
    (EosDriver, EOS_ADD, "% Invalid input", ["configure session lasthop-change", EOS_ADD, "abort"]),
])
def test_a_refused_line_abandons_the_candidate_the_vendors_way(
        driver: type[JunosDriver | EosDriver], refused: str, reply: str, sent: list[str]) -> None:
    d, conn = adding(driver, {refused: reply, "commit": "commit complete"})
    with pytest.raises(CommandRejected) as e:
        d.commit(confirm_timeout=0)
    assert e.value.command == refused
    assert conn.sent == sent


def test_a_junos_commit_that_does_not_say_commit_complete_is_refused_and_abandoned() -> None:
    d, conn = adding(JunosDriver, {})
    with pytest.raises(CommandRejected) as e:
        d.commit(confirm_timeout=0)
    assert e.value.command == "commit"
    assert conn.sent == ["configure exclusive", JUNOS_SET, "commit", "rollback 0", "exit configuration-mode"]
    d, conn = adding(JunosDriver, {"commit": "commit complete"})
    d.commit(confirm_timeout=0)
    assert conn.sent == ["configure exclusive", JUNOS_SET, "commit", "exit configuration-mode"]


def test_an_eos_session_commit_needs_no_particular_reply() -> None:
    d, conn = adding(EosDriver, {})
    d.commit(confirm_timeout=0)
    assert conn.sent == ["configure session lasthop-change", EOS_ADD, "commit"]
