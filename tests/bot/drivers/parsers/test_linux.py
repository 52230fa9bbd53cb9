"""iproute2 JSON route parser, against `ip -j route show` captured with iproute2 6.1."""

from __future__ import annotations

import json
import random
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from bot.drivers.base import StaticRoute
from bot.drivers.errors import ParseError
from bot.drivers.parsers.linux import fib_next_hops_linux, parse_ip_route_json

DATA = Path(__file__).parent / "data" / "linux"


def read(name: str) -> str:
    return (DATA / name).read_text()


def row(
    prefix: str, next_hop: str, protocol: str = "boot", *, chosen: bool = True, installed: bool | None = None,
) -> StaticRoute:
    return StaticRoute(
        IPv4Network(prefix), IPv4Address(next_hop), chosen, chosen if installed is None else installed,
        protocol, None,
    )


def ips(*addresses: str) -> set[IPv4Address]:
    return {IPv4Address(a) for a in addresses}


# `ip route add` without `proto` is "boot", which iproute2 leaves out of the JSON.
MAIN_TABLE = [
    row("0.0.0.0/0", "203.0.113.1"),
    row("198.51.100.32/27", "192.0.2.2", "static"),
    row("198.51.100.33/32", "192.0.2.3"),
    # `proto 186` is named "bgp" by /etc/iproute2/rt_protos.
    row("198.51.100.48/28", "192.0.2.2", "bgp"),
    row("198.51.100.64/27", "192.0.2.2"),
    row("198.51.100.96/27", "192.0.2.2"),
    row("198.51.100.96/27", "192.0.2.3"),
    row("198.51.100.128/27", "192.0.2.2"),
    # Same prefix at metric 200: in the table, not what the kernel forwards with.
    row("198.51.100.128/27", "192.0.2.3", chosen=False),
    row("198.51.100.160/27", "192.0.2.2", "static"),
    row("198.51.100.160/27", "203.0.113.1", "static"),
]


@pytest.mark.parametrize(
    ("capture", "expected"),
    [
        ("ip_route_show.json", MAIN_TABLE),
        # A linkdown next hop is still used (ignore_routes_with_linkdown is 0).
        ("ip_route_show_linkdown.json", MAIN_TABLE),
        # `table all`: local/broadcast routes and IPv6 routes are no rows.
        ("ip_route_show_table_all.json", MAIN_TABLE),
        # The lab router: zebra installs statics with proto static, metric 20.
        ("ip_route_show_frr_managed.json", [
            row("0.0.0.0/0", "203.0.113.1", "static"),
            row("198.51.100.16/28", "198.18.0.5", "static"),
            row("198.51.100.32/27", "192.0.2.2", "static"),
            row("198.51.100.33/32", "192.0.2.3", "static"),
            row("198.51.100.48/28", "192.0.2.2", "static"),
            row("198.51.100.64/27", "192.0.2.2", "static"),
            row("198.51.100.64/27", "192.0.2.3", "static"),
            row("198.51.100.128/27", "192.0.2.2", "static"),
            row("198.51.100.160/27", "192.0.2.3"),
        ]),
        ("exact_single.json", [row("198.51.100.32/27", "192.0.2.2", "static")]),
        ("exact_host32.json", [row("198.51.100.33/32", "192.0.2.3")]),
        ("exact_default.json", [row("0.0.0.0/0", "203.0.113.1")]),
        ("exact_multipath.json", [row("198.51.100.96/27", "192.0.2.2"),
                                  row("198.51.100.96/27", "192.0.2.3")]),
        ("exact_two_metrics.json", [row("198.51.100.128/27", "192.0.2.2"),
                                    row("198.51.100.128/27", "192.0.2.3", chosen=False)]),
        ("exact_multipath_linkdown.json", [row("198.51.100.160/27", "192.0.2.2", "static"),
                                           row("198.51.100.160/27", "203.0.113.1", "static")]),
        ("exact_blackhole.json", []),
        ("exact_absent.json", []),
    ],
)
def test_captured_routes(capture: str, expected: list[StaticRoute]) -> None:
    assert parse_ip_route_json("r1", read(capture)) == expected


@pytest.mark.parametrize(
    ("capture", "prefix", "expected"),
    [
        ("exact_single.json", "198.51.100.32/27", ips("192.0.2.2")),
        ("exact_host32.json", "198.51.100.33/32", ips("192.0.2.3")),
        ("exact_default.json", "0.0.0.0/0", ips("203.0.113.1")),
        ("exact_multipath.json", "198.51.100.96/27", ips("192.0.2.2", "192.0.2.3")),
        ("exact_multipath_linkdown.json", "198.51.100.160/27", ips("192.0.2.2", "203.0.113.1")),
        ("exact_two_metrics.json", "198.51.100.128/27", ips("192.0.2.2")),
        ("exact_blackhole.json", "198.51.100.224/27", set()),
        ("exact_absent.json", "198.51.100.8/29", set()),
        # Wrong-prefix output (another command's) contributes nothing.
        ("exact_single.json", "198.51.100.64/27", set()),
        ("ip_route_show_frr_managed.json", "198.51.100.64/27", ips("192.0.2.2", "192.0.2.3")),
        ("ip_route_show_table_all.json", "198.51.100.128/27", ips("192.0.2.2")),
    ],
)
def test_fib_next_hops(capture: str, prefix: str, expected: set[IPv4Address]) -> None:
    assert fib_next_hops_linux("r1", read(capture), IPv4Network(prefix)) == expected


def test_blackhole_at_a_lower_metric_wins_over_a_gateway() -> None:
    text = json.dumps([
        {"dst": "198.51.100.32/27", "gateway": "192.0.2.2", "dev": "eth0", "metric": 100, "flags": []},
        {"type": "blackhole", "dst": "198.51.100.32/27", "flags": []},
    ])
    assert fib_next_hops_linux("r1", text, IPv4Network("198.51.100.32/27")) == set()
    assert parse_ip_route_json("r1", text) == [row("198.51.100.32/27", "192.0.2.2", chosen=False)]


def test_dead_next_hop_is_not_installed() -> None:
    doc = json.loads(read("exact_multipath.json"))
    doc[0]["nexthops"][1]["flags"] = ["dead", "linkdown"]
    text = json.dumps(doc)
    assert parse_ip_route_json("r1", text) == [
        row("198.51.100.96/27", "192.0.2.2"), row("198.51.100.96/27", "192.0.2.3", installed=False),
    ]
    assert fib_next_hops_linux("r1", text, IPv4Network("198.51.100.96/27")) == ips("192.0.2.2")


def test_other_tables_and_tos_routes_are_not_the_main_fib() -> None:
    text = json.dumps([
        {"dst": "198.51.100.32/27", "gateway": "192.0.2.2", "dev": "eth0", "flags": []},
        {"dst": "198.51.100.32/27", "gateway": "192.0.2.3", "dev": "eth0", "table": "100", "flags": []},
        {"dst": "198.51.100.32/27", "tos": "0x10", "gateway": "192.0.2.4", "dev": "eth0", "flags": []},
    ])
    assert fib_next_hops_linux("r1", text, IPv4Network("198.51.100.32/27")) == ips("192.0.2.2")
    # Each table has its own best route, so all three are selected in theirs.
    assert [r.next_hop for r in parse_ip_route_json("r1", text) if r.selected] == [
        IPv4Address("192.0.2.2"), IPv4Address("192.0.2.3"), IPv4Address("192.0.2.4"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"empty output"),
        (read("bad_prefix_error.txt"),
         r"device replied with an error: 'Error: any valid prefix is expected rather than"),
        # stderr and stdout together: the error comes first, then a lone "[".
        (read("bad_missing_table_combined.txt"),
         r"device replied with an error: 'Error: ipv4: FIB table does not exist\.'"),
        # stdout alone of the same failure is a truncated document.
        (read("bad_missing_table_stdout.txt"), r"ip route output is not valid JSON"),
        (read("ip_route_show.json")[:300], r"ip route output is not valid JSON"),
        ("RTNETLINK answers: Operation not permitted\n", r"'RTNETLINK answers: Operation not permitted'"),
        ("default via 203.0.113.1 dev eth1\n", r"not valid JSON"),
        ('{"dst": "default"}', r"ip route JSON is a dict, not a list of routes"),
        ('["default"]', r"route 0 is not an object"),
        ('[{"gateway": "192.0.2.2"}]', r"route 0 dst is not a string"),
        ('[{"dst": "198.51.100.300/27", "gateway": "192.0.2.2"}]',
         r"route 0 dst is not an IPv4 prefix: '198\.51\.100\.300/27'"),
        ('[{"dst": "198.51.100.33/27", "gateway": "192.0.2.2"}]', r"route 0 dst is not an IPv4 prefix"),
        ('[{"dst": "198.51.100.300", "gateway": "192.0.2.2"}]', r"route 0 dst is not an IPv4 address"),
        ('[{"dst": "198.51.100.32/27", "gateway": "192.0.2.256"}]',
         r"route 198\.51\.100\.32/27 gateway is not an IPv4 address: '192\.0\.2\.256'"),
        ('[{"dst": "198.51.100.32/27", "gateway": 3221225986}]', r"gateway is not a string"),
        ('[{"dst": "198.51.100.32/27", "gateway": "192.0.2.2", "metric": -1}]', r"metric is not an integer"),
        ('[{"dst": "198.51.100.32/27", "gateway": "192.0.2.2", "metric": "20"}]',
         r"metric is not an integer"),
        ('[{"dst": "198.51.100.32/27", "gateway": "192.0.2.2", "protocol": 4}]', r"protocol is not a string"),
        ('[{"dst": "198.51.100.32/27", "gateway": "192.0.2.2", "type": null}]', r"type is not a string"),
        ('[{"dst": "198.51.100.32/27", "nexthops": []}]', r"nexthops is not a non-empty list"),
        ('[{"dst": "198.51.100.32/27", "nexthops": ["192.0.2.2"]}]', r"nexthop 0 is not an object"),
        ('[{"dst": "198.51.100.32/27", "gateway": "192.0.2.2", "nexthops": [{"gateway": "192.0.2.3"}]}]',
         r"has both a gateway and a nexthops list"),
        ('[{"dst": "198.51.100.32/27", "nexthops": [{"gateway": "192.0.2.3", "flags": "dead"}]}]',
         r"nexthop 0 flags are not a list of words"),
        # RFC 5549 style: an IPv4 route over an IPv6 next hop.
        ('[{"dst": "198.51.100.32/27", "via": {"family": "inet6", "host": "fe80::1"}, "dev": "eth0"}]',
         r"route 198\.51\.100\.32/27 has a next hop of another address family"),
        ('[{"dst": "198.51.100.32/27", "nexthops": [{"via": {"family": "inet6", "host": "fe80::1"}}]}]',
         r"nexthop 0 is of another address family"),
        ('[{"dst": "198.51.100.32/27", "gateway": "2001:db8::1"}]', r"has an IPv6 gateway"),
    ],
)
def test_malformed(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=r"^r1: .*" + message):
        parse_ip_route_json("r1", text)
    with pytest.raises(ParseError, match=r"^r1: .*" + message):
        fib_next_hops_linux("r1", text, IPv4Network("198.51.100.32/27"))


def test_ipv6_routes_including_the_ipv6_default_are_skipped() -> None:
    text = json.dumps([
        {"dst": "default", "gateway": "2001:db8::1", "dev": "eth0", "protocol": "ra", "metric": 1024},
        {"dst": "2001:db8::/64", "dev": "eth0", "protocol": "kernel", "metric": 256},
        {"dst": "default", "gateway": "203.0.113.1", "dev": "eth1"},
    ])
    assert parse_ip_route_json("r1", text) == [row("0.0.0.0/0", "203.0.113.1")]


def test_random_corruption_never_raises_anything_but_parse_error() -> None:
    rng = random.Random(7)
    text = read("ip_route_show.json")
    refused = 0
    for _ in range(400):
        chars = list(text)
        for _ in range(rng.randint(1, 3)):
            chars[rng.randrange(len(chars))] = rng.choice('{}[]":,0123456789./ abcdefgx')
        try:
            rows = parse_ip_route_json("r1", "".join(chars))
        except ParseError:
            refused += 1
        else:
            assert all(isinstance(r, StaticRoute) and r.distance is None for r in rows)
    assert refused > 100
