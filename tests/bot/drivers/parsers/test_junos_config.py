"""Junos `display set` static routes and `show system commit` pending state (hand-written, Junos layout)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from bot.drivers.errors import ParseError
from bot.drivers.parsers.junos_config import commit_confirmed_pending, parse_static_set

A = IPv4Network("198.51.100.32/27")


def test_one_row_per_next_hop_and_only_address_next_hops() -> None:
    text = ("set routing-options static route 198.51.100.32/27 next-hop 192.0.2.2\n"
            "set routing-options static route 198.51.100.32/27 next-hop 192.0.2.3\n"
            "set routing-options static route 198.51.100.32/27 preference 200\n"
            "set routing-options static route 198.51.100.96/27 next-hop ge-0/0/0.0\n"
            "set routing-options static route 198.51.100.224/27 discard\n"
            "set routing-options static route 198.51.100.64/27 qualified-next-hop 192.0.2.4 preference 7\n")
    assert parse_static_set("mx1", text) == {(A, IPv4Address("192.0.2.2")), (A, IPv4Address("192.0.2.3"))}
    assert parse_static_set("mx1", "") == set()


@pytest.mark.parametrize("text", [
    "set routing-options static route 198.51.100.32/33 next-hop 192.0.2.2\n",
    "set routing-options static route 198.51.100.32/27 next-hop 192.0.2.2 extra\n",
    "error: syntax error: display\n",
])
def test_bad_configuration_output_is_refused(text: str) -> None:
    with pytest.raises(ParseError):
        parse_static_set("mx1", text)


def test_only_the_latest_commit_being_unconfirmed_counts() -> None:
    pending = "0   2024-05-02 10:41:07 UTC by ops via cli commit confirmed, rollback in 4mins\n"
    confirmed_since = ("0   2024-05-02 10:42:00 UTC by ana via cli\n"
                       "1   2024-05-02 10:41:07 UTC by ops via cli commit confirmed, rollback in 4mins\n")
    assert commit_confirmed_pending("mx1", pending + "{master:0}\n")
    assert not commit_confirmed_pending("mx1", confirmed_since)
    with pytest.raises(ParseError):
        commit_confirmed_pending("mx1", "")
    with pytest.raises(ParseError):
        commit_confirmed_pending("mx1", "error: permission denied\n")
