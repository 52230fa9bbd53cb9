from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from bot.drivers.errors import ParseError
from bot.drivers.parsers.static_config import parse_static_config

FRR_RUNNING = """\
Building configuration...

Current configuration:
!
frr version 8.4.4
frr defaults traditional
hostname lh-r1
!
ip route 198.51.100.32/27 192.0.2.2
ip route 198.51.100.64/27 192.0.2.3 5
ip route 198.51.100.200/32 eth0
ip route 198.51.100.160/27 blackhole
ip route 198.51.100.224/27 192.0.2.99
!
end
"""

IOS_RUNNING = """\
ip route 0.0.0.0 0.0.0.0 203.0.113.1
ip route 198.51.100.32 255.255.255.224 192.0.2.2 name www-a
ip route 198.51.100.200 255.255.255.255 192.0.2.4 10
ip route 198.51.100.96 255.255.255.224 Null0
"""


def test_frr_running_config_lines() -> None:
    assert parse_static_config("r1", FRR_RUNNING) == {
        (IPv4Network("198.51.100.32/27"), IPv4Address("192.0.2.2")),
        (IPv4Network("198.51.100.64/27"), IPv4Address("192.0.2.3")),
        # unresolvable next hop: in the config though absent from every routing table
        (IPv4Network("198.51.100.224/27"), IPv4Address("192.0.2.99")),
    }


def test_ios_mask_form_with_name_and_distance() -> None:
    assert parse_static_config("edge", IOS_RUNNING) == {
        (IPv4Network("0.0.0.0/0"), IPv4Address("203.0.113.1")),
        (IPv4Network("198.51.100.32/27"), IPv4Address("192.0.2.2")),
        (IPv4Network("198.51.100.200/32"), IPv4Address("192.0.2.4")),
    }


def test_empty_config_has_no_routes() -> None:
    assert parse_static_config("r1", "Building configuration...\n!\nend\n") == set()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("ip route 198.51.100.33/27 192.0.2.2\n", "bad prefix"),
        ("ip route 198.51.100.32/40 192.0.2.2\n", "bad prefix"),
        ("ip route garbage\n", "unreadable static route line"),
        ("% Unknown command: show running-config staticd\n", "device replied with an error"),
    ],
)
def test_malformed_config_is_a_parse_error_naming_the_device(text: str, words: str) -> None:
    with pytest.raises(ParseError, match=f"^r1: {words}"):
        parse_static_config("r1", text)
