"""FRR's replies to a configuration line, judged by the real CliSession, on replies captured from FRR 8.4.

The captures (tests/bot/drivers/parsers/data/frr/config_*.txt, configure_*.txt) are what netmiko
returned on the lab's r1: a line staticd refused (zebra started with an ECMP limit of one), and
lines sent while staticd was down, in a session opened before it died and in one opened after.
vtysh refuses those without a `%`: `staticd is not running`, and the line is dropped.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from bot.drivers.base import DeviceSpec, RouteMove, Transcript
from bot.drivers.cisco_ios import CiscoIosDriver
from bot.drivers.cli_router import CliRouterDriver
from bot.drivers.errors import CommandRejected
from bot.drivers.frr import FrrDriver

DATA = Path(__file__).parent / "parsers" / "data" / "frr"
SPEC = DeviceSpec(name="r1", address="198.18.7.11", username="ops", known_hosts=Path("/nonexistent"))
MOVE = RouteMove(IPv4Network("198.51.100.32/27"), IPv4Address("198.51.100.2"), IPv4Address("198.51.100.3"))
PROMPT_OK = "\nld-r1(config)# "


def capture(name: str) -> str:
    return (DATA / name).read_text()


class ConfigReplay:
    """A netmiko connection at vtysh's CLI: fixed replies to entering and to each line, each
    whole at the first read after its line was written."""

    base_prompt = "ld-r1"

    def __init__(self, *, enter: str = f" configure terminal{PROMPT_OK}", line: str = "") -> None:
        self.enter, self.line = enter, line
        self.sent: list[str] = []
        self.unread = ""

    def write_channel(self, data: str) -> None:
        last = data.rstrip("\n")
        self.sent.append(last)
        if last.startswith("configure"):
            self.unread = self.enter
        elif last == "end":
            self.unread = " end\nld-r1# "
        elif last.startswith("show running-config"):
            self.unread = f"{last}\nip route 198.51.100.32/27 198.51.100.2\nld-r1# "  # the old route only
        else:
            self.unread = self.line or f" {last}{PROMPT_OK}"

    def read_channel(self) -> str:
        out, self.unread = self.unread, ""
        return out

    def disconnect(self) -> None:
        pass


def driver_with(cls: type[CliRouterDriver], conn: ConfigReplay) -> CliRouterDriver:
    d = cls(SPEC)
    d.cli._conn = conn  # the session's own connection slot: nothing else is faked
    return d


@pytest.mark.parametrize("name", ["config_line_staticd_not_running.txt", "config_line_staticd_lost.txt"])
def test_a_line_vtysh_drops_because_staticd_is_down_is_a_refusal(name: str) -> None:
    conn = ConfigReplay(line=capture(name))
    d = driver_with(FrrDriver, conn)
    d.load([MOVE])
    with pytest.raises(CommandRejected, match="staticd is not running") as e:
        d.commit()
    assert e.value.command == "ip route 198.51.100.32/27 198.51.100.3"
    assert conn.sent[-1] == "end"  # configuration mode is left; nothing after the refused line is sent
    assert "no ip route 198.51.100.32/27 198.51.100.2" not in conn.sent


def test_a_line_staticd_refuses_names_frrs_reason() -> None:
    d = driver_with(FrrDriver, ConfigReplay(line=capture("config_line_ecmp_limit.txt")))
    d.load([MOVE])
    with pytest.raises(CommandRejected, match="Route cannot have more than 1 ECMP nexthops"):
        d.commit()


def test_entering_configuration_while_staticd_was_lost_is_not_yet_a_refusal() -> None:
    # Only a warning: vtysh enters configuration mode; the line that needs staticd is what it drops.
    conn = ConfigReplay(enter=capture("configure_terminal_staticd_lost.txt"),
                        line=capture("config_line_staticd_lost.txt"))
    d = driver_with(FrrDriver, conn)
    d.load([MOVE])
    with pytest.raises(CommandRejected) as e:
        d.commit()
    assert e.value.command == "ip route 198.51.100.32/27 198.51.100.3"


def test_a_line_that_vtysh_takes_is_not_a_refusal() -> None:
    conn = ConfigReplay()
    d = driver_with(FrrDriver, conn)
    transcript = Transcript("r1")
    d.cli.configure(["ip route 198.51.100.32/27 198.51.100.3"], transcript)
    assert conn.sent == ["configure terminal", "ip route 198.51.100.32/27 198.51.100.3", "end"]
    assert [x.command for x in transcript.exchanges] == conn.sent


def test_ios_keeps_to_its_own_refusals() -> None:
    # Words that are vtysh's alone mean nothing special on IOS: only `%` refuses there.
    conn = ConfigReplay(line=f" ip route 198.51.100.32 255.255.255.224 198.51.100.3\nntp is not running{PROMPT_OK}")
    d = driver_with(CiscoIosDriver, conn)
    d.cli.configure(["ip route 198.51.100.32 255.255.255.224 198.51.100.3"], Transcript("r1"))
    assert conn.sent[-1] == "end"

