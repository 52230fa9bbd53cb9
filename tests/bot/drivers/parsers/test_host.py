"""Web-host parsers: loopback addresses (three tools), `ip route get`, sysctl.

`ip` and new-style `ifconfig` outputs were captured in a throwaway netns
(iproute2 6.1, net-tools 2.10); the old net-tools format is written by hand.
"""

from __future__ import annotations

import json
import random
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from bot.drivers.errors import ParseError
from bot.drivers.parsers.host import (
    LoopbackAddress,
    RouteGet,
    parse_ifconfig,
    parse_ip_addr_json,
    parse_ip_o_addr,
    parse_route_get_json,
    parse_sysctl,
)

DATA = Path(__file__).parent / "data" / "host"


def read(name: str) -> str:
    return (DATA / name).read_text()


def lo(address: str, prefixlen: int = 32, label: str = "lo") -> LoopbackAddress:
    return LoopbackAddress(IPv4Address(address), prefixlen, label)


LOOPBACK = lo("127.0.0.1", 8)
VIP_1 = lo("198.51.100.33", label="lo:1")
VIP_2 = lo("198.51.100.65", label="lo:2")
# Added without a label: `ip` shows it, `ifconfig` cannot.
VIP_UNLABELLED = lo("198.51.100.97")
FROM_IP = [LOOPBACK, VIP_1, VIP_2, VIP_UNLABELLED]


@pytest.mark.parametrize(
    ("capture", "expected"),
    [
        ("ip_addr_show_lo.json", FROM_IP),
        # All interfaces: only lo's addresses count.
        ("ip_addr_show_all.json", FROM_IP),
    ],
)
def test_ip_addr_json(capture: str, expected: list[LoopbackAddress]) -> None:
    assert parse_ip_addr_json("web-1", read(capture)) == expected


@pytest.mark.parametrize("capture", ["ip_o_4_addr_show_lo.txt", "ip_o_addr_show_lo_with_inet6.txt"])
def test_ip_o_addr(capture: str) -> None:
    assert parse_ip_o_addr("web-1", read(capture)) == FROM_IP


@pytest.mark.parametrize(
    ("capture", "expected"),
    [
        ("ifconfig_a_newtools.txt", [LOOPBACK, VIP_1, VIP_2]),
        ("ifconfig_lo1_newtools.txt", [VIP_1]),
        ("ifconfig_a_oldtools.txt", [LOOPBACK, VIP_1, VIP_2]),
        ("ifconfig_lo1_oldtools.txt", [VIP_1]),
    ],
)
def test_ifconfig(capture: str, expected: list[LoopbackAddress]) -> None:
    assert parse_ifconfig("web-1", read(capture)) == expected


def test_all_three_tools_agree_on_labelled_addresses() -> None:
    by_json = set(parse_ip_addr_json("web-1", read("ip_addr_show_lo.json")))
    by_oneline = set(parse_ip_o_addr("web-1", read("ip_o_4_addr_show_lo.txt")))
    by_ifconfig = set(parse_ifconfig("web-1", read("ifconfig_a_newtools.txt")))
    assert by_json == by_oneline
    assert by_json - by_ifconfig == {VIP_UNLABELLED}


def test_old_iproute2_empty_objects_are_skipped() -> None:
    """iproute2 4.x/5.x printed `{}` for interfaces and addresses a filter removed."""
    doc = json.loads(read("ip_addr_show_lo.json"))
    doc[0]["addr_info"].insert(0, {})
    text = json.dumps([{}, *doc, {}])
    assert parse_ip_addr_json("web-1", text) == FROM_IP


def test_ip_o_addr_without_the_continuation_part() -> None:
    text = "1: lo    inet 198.51.100.33/32 scope global lo:1\n1: lo    inet 127.0.0.1/8 scope host lo\n"
    assert parse_ip_o_addr("web-1", text) == [VIP_1, LOOPBACK]


def test_ip_o_addr_empty_is_no_addresses() -> None:
    assert parse_ip_o_addr("web-1", "") == []


def test_ifconfig_ignores_other_interfaces_and_takes_masks() -> None:
    text = (
        "lo:web: flags=73<UP,LOOPBACK,RUNNING>  mtu 65536\n"
        "        inet 198.51.100.40  netmask 255.255.255.248\n"
        "lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> mtu 16384\n"
        "        inet 198.51.100.41 netmask 255.255.255.255\n"
    )
    assert parse_ifconfig("web-1", text) == [lo("198.51.100.40", 29, "lo:web")]


@pytest.mark.parametrize(
    ("function", "text", "message"),
    [
        (parse_ip_addr_json, read("ip_addr_show_nosuchdev.txt"),
         r"device replied with an error: 'Device \"lo0\" does not exist\.'"),
        (parse_ip_addr_json, read("bad_ip_addr_truncated.json"), r"ip addr output is not valid JSON"),
        (parse_ip_addr_json, 'Option "-j" is unknown, try "ip -help".',
         r"device replied with an error: 'Option \"-j\" is unknown"),
        (parse_ip_addr_json, "", r"empty output"),
        (parse_ip_addr_json, '{"ifname": "lo"}', r"ip addr JSON is a dict, not a list of interfaces"),
        (parse_ip_addr_json, '[{"ifname": "lo", "addr_info": {}}]', r"lo addr_info is not a list"),
        (parse_ip_addr_json, '[{"ifindex": 1}]', r"interface 0 ifname is not a string"),
        (parse_ip_addr_json, '[{"ifname": "lo", "addr_info": [{"family": "inet", "local": "198.51.100.300",'
                             ' "prefixlen": 32, "label": "lo:1"}]}]',
         r"lo address 0 local is not an IPv4 address: '198\.51\.100\.300'"),
        (parse_ip_addr_json, '[{"ifname": "lo", "addr_info": [{"family": "inet", "local": "198.51.100.33",'
                             ' "prefixlen": 33, "label": "lo:1"}]}]',
         r"lo address 0 prefixlen is not an integer in 0\.\.32"),
        (parse_ip_addr_json, '[{"ifname": "lo", "addr_info": [{"family": "inet", "local": "198.51.100.33",'
                             ' "prefixlen": 32, "label": "eth0"}]}]',
         r"label 'eth0' is not a loopback label"),
        (parse_ip_addr_json, '[{"ifname": "lo", "addr_info": [{"family": "mpls"}]}]', r"unknown family"),
        (parse_ip_o_addr, "1: lo    inet 198.51.100.300/32 scope global lo:1\\       valid_lft forever",
         r"line 1: address is not an IPv4 address: '198\.51\.100\.300'"),
        (parse_ip_o_addr, "1: lo    inet 198.51.100.33 peer 198.51.100.34/32 scope global lo:1\\",
         r"line 1: no address/length after inet"),
        (parse_ip_o_addr, "1: lo    inet 198.51.100.33/40 scope global lo:1\\",
         r"line 1: prefix length is not an integer in 0\.\.32"),
        (parse_ip_o_addr, "1: lo    inet 198.51.100.33/32 \\   valid_lft forever", r"line 1: no label"),
        (parse_ip_o_addr, "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN",
         r"line 1: not an `ip -o addr` line"),
        (parse_ip_o_addr, "Device \"lo\" does not exist.", r"device replied with an error"),
        (parse_ifconfig, read("bad_ifconfig_noncontiguous_mask.txt"),
         r"line 2: netmask is not a contiguous netmask: '255\.255\.0\.255'"),
        (parse_ifconfig, read("bad_ifconfig_no_such_alias.txt"),
         r"device replied with an error: 'lo:5: error fetching interface information"),
        (parse_ifconfig, "bash: ifconfig: command not found", r"device replied with an error"),
        (parse_ifconfig, "", r"empty ifconfig output"),
        (parse_ifconfig, "          inet addr:198.51.100.33  Mask:255.255.255.255",
         r"line 1: indented line before any interface"),
        (parse_ifconfig, "lo:1      Link encap:Local Loopback\n          inet addr:198.51.100.33",
         r"line 2: unrecognised inet line"),
        (parse_ifconfig, "lo:1: flags=73<UP,LOOPBACK,RUNNING>  mtu 65536\n"
                         "        inet 198.51.100.333  netmask 255.255.255.255",
         r"line 2: address is not an IPv4 address: '198\.51\.100\.333'"),
        (parse_ifconfig, "Link encap:Local Loopback", r"line 1: not an ifconfig interface line"),
    ],
)
def test_malformed_loopback_listings(function: object, text: str, message: str) -> None:
    assert callable(function)
    with pytest.raises(ParseError, match=r"^web-1: .*" + message):
        function("web-1", text)


@pytest.mark.parametrize(
    ("capture", "expected", "local"),
    [
        ("route_get_local.json", RouteGet(IPv4Address("198.51.100.33"), "local", "lo"), True),
        ("route_get_loopback.json", RouteGet(IPv4Address("127.0.0.1"), "local", "lo"), True),
        # iproute2 leaves `type` out for unicast.
        ("route_get_remote.json", RouteGet(IPv4Address("198.51.100.34"), "unicast", "eth0"), False),
    ],
)
def test_route_get(capture: str, expected: RouteGet, local: bool) -> None:
    got = parse_route_get_json("web-1", read(capture))
    assert got == expected
    assert got.is_local is local


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # A VIP covered by a blackhole route: the kernel refuses the lookup.
        (read("route_get_blackhole.txt"),
         r"device replied with an error: 'RTNETLINK answers: Invalid argument'"),
        (read("route_get_unreachable.txt"), r"'RTNETLINK answers: Network is unreachable'"),
        ("[]", r"not a list of exactly one route"),
        (json.dumps(json.loads(read("route_get_local.json")) * 2), r"not a list of exactly one route"),
        ('["local"]', r"route get result is not an object"),
        ('[{"type": "local", "dev": "lo"}]', r"route get dst is not a string"),
        ('[{"type": "local", "dst": "198.51.100.300", "dev": "lo"}]',
         r"route get dst is not an IPv4 address: '198\.51\.100\.300'"),
        ('[{"type": 2, "dst": "198.51.100.33", "dev": "lo"}]', r"route get type is not a string"),
        ('[{"type": "local", "dst": "198.51.100.33", "dev": ["lo"]}]', r"route get dev is not a string"),
        ('[{"type": "local", "dst": "198.51.', r"ip route get output is not valid JSON"),
    ],
)
def test_malformed_route_get(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=r"^web-1: .*" + message):
        parse_route_get_json("web-1", text)


def test_route_get_without_dev() -> None:
    got = parse_route_get_json("web-1", '[{"type": "unreachable", "dst": "198.51.100.33", "flags": []}]')
    assert got == RouteGet(IPv4Address("198.51.100.33"), "unreachable", None)
    assert not got.is_local


def test_sysctl() -> None:
    assert parse_sysctl("web-1", read("sysctl_arp.txt")) == {
        "net.ipv4.conf.all.arp_ignore": "1",
        "net.ipv4.conf.all.arp_announce": "2",
        "net.ipv4.conf.lo.arp_ignore": "1",
        "net.ipv4.conf.lo.arp_announce": "2",
    }


def test_sysctl_values_with_inner_whitespace_and_odd_names() -> None:
    text = (
        "net.ipv4.ip_local_port_range = 32768\t60999\n"
        "net.ipv4.conf.eth0/100.arp_ignore = 1\n"
        "kernel.domainname = (none)\n"
        "\n"
    )
    assert parse_sysctl("web-1", text) == {
        "net.ipv4.ip_local_port_range": "32768\t60999",
        "net.ipv4.conf.eth0/100.arp_ignore": "1",
        "kernel.domainname": "(none)",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (read("sysctl_missing_key.txt"),
         r"device replied with an error: 'sysctl: cannot stat /proc/sys/net/ipv4/conf/nosuch"),
        ("sysctl: permission denied on key 'net.ipv4.conf.all.arp_ignore'", r"device replied with an error"),
        ("", r"no sysctl values in the output"),
        ("net.ipv4.conf.all.arp_ignore: 1", r"line 1: not a `name = value` line"),
        ("= 1", r"line 1: not a `name = value` line"),
        ("net.ipv4.conf.all.arp_ignore = 1\nnet.ipv4.conf.all.arp_ignore = 2",
         r"line 2: net\.ipv4\.conf\.all\.arp_ignore appears twice with different values"),
    ],
)
def test_malformed_sysctl(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=r"^web-1: .*" + message):
        parse_sysctl("web-1", text)


@pytest.mark.parametrize(
    ("function", "capture"),
    [
        (parse_ip_addr_json, "ip_addr_show_lo.json"),
        (parse_ip_o_addr, "ip_o_4_addr_show_lo.txt"),
        (parse_ifconfig, "ifconfig_a_oldtools.txt"),
        (parse_ifconfig, "ifconfig_a_newtools.txt"),
        (parse_route_get_json, "route_get_local.json"),
        (parse_sysctl, "sysctl_arp.txt"),
    ],
)
def test_random_corruption_never_raises_anything_but_parse_error(function: object, capture: str) -> None:
    assert callable(function)
    rng = random.Random(capture)
    text = read(capture)
    refused = 0
    for _ in range(300):
        chars = list(text)
        for _ in range(rng.randint(1, 3)):
            chars[rng.randrange(len(chars))] = rng.choice('{}[]":,0123456789./: =\\\nlo')
        try:
            function("web-1", "".join(chars))
        except ParseError:
            refused += 1
    assert refused > 20
