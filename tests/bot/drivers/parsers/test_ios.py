"""`show ip route` text parser: Cisco IOS / IOS-XE layouts and FRR's vtysh text.

The IOS captures are rebuilt with real IOS column layout (modelled on the raw
fixtures of networktocode/ntc-templates, addresses moved into documentation
ranges); the FRR ones were captured from FRR 8.4.
"""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from bot.drivers.base import StaticRoute
from bot.drivers.errors import ParseError
from bot.drivers.parsers.ios import parse_show_ip_route

DATA = Path(__file__).parent / "data"


def read(name: str) -> str:
    return (DATA / name).read_text()


def row(
    prefix: str, next_hop: str, protocol: str = "static", distance: int = 1, *,
    selected: bool = True, installed: bool = True,
) -> StaticRoute:
    return StaticRoute(IPv4Network(prefix), IPv4Address(next_hop), selected, installed, protocol, distance)


IOS15_STATIC = [
    row("0.0.0.0/0", "203.0.113.1"),
    row("198.51.100.32/27", "192.0.2.2"),
    row("198.51.100.33/32", "192.0.2.3"),
    row("198.51.100.64/27", "192.0.2.3"),
    row("198.51.100.64/27", "192.0.2.2"),
]

LEGEND = (
    "Codes: L - local, C - connected, S - static, R - RIP, M - mobile, B - BGP\n"
    "       + - replicated route, % - next hop override, p - overrides from PfR\n"
    "\n"
    "Gateway of last resort is not set\n"
    "\n"
)

IOS_CAPTURES = [
    ("ios/ios15_show_ip_route.txt", [
        IOS15_STATIC[0],
        row("198.18.0.0/15", "192.0.2.4", "ospf", 110),
        row("198.18.64.0/24", "192.0.2.4", "ospf", 110),
        *IOS15_STATIC[1:],
        row("198.51.100.128/27", "192.0.2.5", "eigrp", 90),
        # Wrapped by IOS after the prefix; the next line carries the rest.
        row("198.51.100.160/27", "192.0.2.5", "eigrp", 170),
    ]),
    ("ios/ios15_show_ip_route_static.txt", IOS15_STATIC),
    ("ios/ios15_show_ip_route_static_empty.txt", []),
    ("ios/ios12_show_ip_route_subnetted.txt", [
        # Lines under "198.51.100.0/27 is subnetted" carry no length.
        row("198.51.100.32/27", "192.0.2.2"),
        row("198.51.100.64/27", "192.0.2.2"),
        row("198.51.100.64/27", "192.0.2.3"),
        row("198.51.100.96/27", "192.0.2.3"),
        row("198.18.0.0/15", "203.0.113.1", "bgp", 20),
        row("198.18.4.0/24", "192.0.2.5", "eigrp", 170),
        row("198.18.64.0/24", "192.0.2.4", "ospf", 110),
        row("198.18.65.0/24", "192.0.2.4", "isis", 115),
        row("198.18.66.0/24", "192.0.2.4", "rip", 120),
        row("0.0.0.0/0", "203.0.113.1"),
    ]),
    ("ios/iosxe_show_ip_route.txt", [
        row("198.51.100.0/24", "203.0.113.9", "bgp", 20),
        row("198.51.100.32/27", "192.0.2.2"),
        row("198.51.100.96/27", "192.0.2.4"),
        row("198.51.100.96/27", "192.0.2.3"),
        row("198.51.100.96/27", "192.0.2.2"),
        row("198.51.100.97/32", "192.0.2.3"),
    ]),
    ("ios/ios15_show_ip_route_vrf.txt", [
        row("0.0.0.0/0", "203.0.113.1"),
        row("198.51.100.32/27", "192.0.2.2"),
        # Next hop in another VRF: "(CORE)" follows the address.
        row("198.51.100.128/27", "198.18.0.9", "bgp", 200),
    ]),
]

FRR_STATIC = [
    row("0.0.0.0/0", "203.0.113.1"),
    row("198.51.100.0/28", "192.0.2.9", selected=False, installed=False),
    row("198.51.100.16/28", "198.18.0.5"),
    row("198.51.100.32/27", "192.0.2.2"),
    row("198.51.100.33/32", "192.0.2.3"),
    row("198.51.100.48/28", "192.0.2.2"),
    # FRR prints `*` on this line although the next hop is inactive and not in the FIB.
    row("198.51.100.48/28", "192.0.2.9", installed=False),
    row("198.51.100.64/27", "192.0.2.2"),
    row("198.51.100.64/27", "192.0.2.3"),
    # No `*` on a recursive next hop; its resolver line has it.
    row("198.51.100.96/27", "198.18.0.1"),
    row("198.51.100.128/27", "192.0.2.3", distance=10, selected=False, installed=False),
    row("198.51.100.128/27", "192.0.2.2"),
    row("198.51.100.160/27", "192.0.2.2", selected=False, installed=False),
]
KERNEL_198_18 = row("198.18.0.0/15", "192.0.2.2", "kernel", 0)
KERNEL_160 = row("198.51.100.160/27", "192.0.2.3", "kernel", 0)

FRR_CAPTURES = [
    ("frr/show_ip_route_static.txt", FRR_STATIC),
    ("frr/show_ip_route.txt", [FRR_STATIC[0], KERNEL_198_18, *FRR_STATIC[1:12], KERNEL_160, FRR_STATIC[12]]),
    ("frr/show_ip_route_vrf_all.txt",
     [FRR_STATIC[0], KERNEL_198_18, *FRR_STATIC[1:12], KERNEL_160, FRR_STATIC[12]]),
    # The FIB view: losing and inactive routes are gone, and here FRR leaves the
    # `*` off the inactive next hop.
    ("frr/show_ip_fib.txt", [
        FRR_STATIC[0], KERNEL_198_18, FRR_STATIC[2], FRR_STATIC[3], FRR_STATIC[4], FRR_STATIC[5],
        FRR_STATIC[6], FRR_STATIC[7], FRR_STATIC[8], FRR_STATIC[9], FRR_STATIC[11], KERNEL_160,
    ]),
    # After the route resolving 198.18.0.1 went away, staticd withdrew 198.51.100.96/27.
    ("frr/show_ip_route_static_unresolvable.txt", [*FRR_STATIC[:9], *FRR_STATIC[10:]]),
    # FRR prints nothing at all, not even the legend, when nothing matches.
    ("frr/show_ip_route_ospf_empty.txt", []),
]


@pytest.mark.parametrize(("capture", "expected"), IOS_CAPTURES + FRR_CAPTURES)
def test_captures(capture: str, expected: list[StaticRoute]) -> None:
    assert parse_show_ip_route("r1", read(capture)) == expected


@pytest.mark.parametrize(
    ("capture", "message"),
    [
        ("ios/bad_invalid_input.txt",
         r"device replied with an error: \"% Invalid input detected at '\^' marker\.\""),
        ("ios/bad_network_not_in_table.txt", r"device replied with an error: '% Network not in table'"),
        ("frr/network_not_in_table.txt", r"device replied with an error: '% Network not in table'"),
        ("frr/invalid_command.txt",
         r"device replied with an error: '% Unknown command: show ip route statik'"),
        ("ios/bad_truncated_address.txt", r"line 18: next hop is not an IPv4 address: '192\.0'"),
        ("ios/bad_truncated_bracket.txt", r"line 17: unrecognised route line: '\[1/'"),
        ("ios/bad_truncated_wrapped.txt", r"end of output: route 198\.51\.100\.160/27 has no next-hop line"),
        ("ios/bad_garbage.txt", r"line 1: unrecognised line: 'Interface IP-Address"),
        ("ios/bad_address.txt", r"line 15: prefix is not an IPv4 prefix: '198\.51\.100\.300/27'"),
        ("ios/bad_next_hop.txt", r"line 17: next hop is not an IPv4 address: '192\.0\.2\.333'"),
        ("frr/show_ip_route.json", r"line 1: unrecognised line: '\{'"),
    ],
)
def test_malformed_captures(capture: str, message: str) -> None:
    with pytest.raises(ParseError, match=r"^r1: " + message):
        parse_show_ip_route("r1", read(capture))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # A lengthless line needs an "is subnetted" header for its mask.
        ("S        198.51.100.32 [1/0] via 192.0.2.2\n",
         r"198\.51\.100\.32 has no length and no 'is subnetted'"),
        ("      198.51.100.0/24 is variably subnetted, 2 subnets, 2 masks\n"
         "S        198.51.100.32 [1/0] via 192.0.2.2\n", r"has no length and no 'is subnetted'"),
        ("      198.51.100.0/27 is subnetted, 1 subnets\n"
         "S        203.0.113.32 [1/0] via 192.0.2.2\n",
         r"203\.0\.113\.32 is outside the 198\.51\.100\.0/24 header"),
        ("S        198.51.100.33/27 [1/0] via 192.0.2.2\n",
         r"prefix is not an IPv4 prefix: '198\.51\.100\.33/27'"),
        ("S        198.51.100.32/33 [1/0] via 192.0.2.2\n",
         r"prefix is not an IPv4 prefix: '198\.51\.100\.32/33'"),
        ("                          [1/0] via 192.0.2.2\n", r"next-hop line before any route"),
        ("S        198.51.100.32/27 [1/0] via 192.0.2.2\n"
         "                          via 192.0.2.3\n", r"line 7: unrecognised line"),
        ("S        198.51.100.32/27 [1/0] via 192.0.2.2\n"
         "                          is directly connected, Null0\n",
         r"line 7: next-hop line has no \[distance/metric\]"),
        ("S        198.51.100.32/27 [1/0]\n", r"unrecognised route line: '\[1/0\]'"),
        ("S        198.51.100.32/27 [1/0] via\n", r"unrecognised route line: '\[1/0\] via'"),
        ("S        198.51.100.32/27 [256/0] via 192.0.2.2\n", r"administrative distance is not an integer"),
        ("S        198.51.100.32/27 via 192.0.2.2\n",
         r"next hop for 198\.51\.100\.32/27 has no \[distance/metric\]"),
        ("Q        198.51.100.32/27 [1/0] via 192.0.2.2\n", r"unknown route code 'Q'"),
        ("S        198.51.100.32/27 [1/0] via 192.0.2.2\nRouting Table: WEB\n"
         "S        198.51.100.64/27 [1/0] via 192.0.2.2\nRouting Table: DB\n",
         r"more than one routing table \(WEB, DB\)"),
        ("Routing entry for 198.51.100.32/27\n  Known via \"static\", distance 1, metric 0\n",
         r"line 6: not a routing table listing"),
        ("Default gateway is 192.0.2.1\n", r"not a routing table listing"),
        ("%SYS-5-CONFIG_I: Configured from console by admin on vty0\n", r"device replied with an error"),
    ],
)
def test_malformed_lines(body: str, message: str) -> None:
    with pytest.raises(ParseError, match=r"^edge-1: .*" + message):
        parse_show_ip_route("edge-1", LEGEND + body)


FRR_LEGEND = read("frr/show_ip_route.txt").split("\n\n")[0] + "\n\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("S>* 198.51.100.32/27\n", r"has nothing after the prefix"),
        # An indented next hop belongs under a recursive one only.
        ("S>* 198.51.100.32/27 [1/0] via 192.0.2.2, eth0, weight 1, 00:00:05\n"
         "  *                          via 192.0.2.3, eth0, weight 1, 00:00:05\n",
         r"indented next hop under a non-recursive one"),
        ("S>* 198.51.100.32/27 [1/0] via 192.0.2.2, eth0, weight 1, 00:00:05\n"
         "  *                     via 192.0.2.3, eth0, weight 1, 00:00:05\n",
         r"next-hop line is out of column"),
        ("  *                        via 192.0.2.3, eth0, weight 1, 00:00:05\n",
         r"next-hop line before any route"),
        ("S>  198.51.100.96/27 [1/0] via 198.18.0.1 (recursive), weight 1, 00:00:03\n",
         r"end of output: recursive next hop 198\.18\.0\.1 has no resolving line"),
        ("S>* 198.51.100.48/28 [1/0] via 192.0.2.2, eth0, weight 1, 00:04:04\n"
         "  *                        via 192.0.2.9, eth1\n",
         r"line 9: next-hop line does not end with an uptime \(truncated\?\): 'via 192\.0\.2\.9, eth1'"),
        ("S>* 198.51.100.32/27 [1/0] via 192.0.2.2, eth0, weight 1, 00:00:05\n"
         "  *                        via 192.0.2.256, eth0, weight 1, 00:00:05\n",
         r"next hop is not an IPv4 address: '192\.0\.2\.256'"),
    ],
)
def test_malformed_frr_lines(body: str, message: str) -> None:
    with pytest.raises(ParseError, match=r"^lab-frr: .*" + message):
        parse_show_ip_route("lab-frr", FRR_LEGEND + body)


def test_frr_examples_from_the_brief() -> None:
    text = (
        "S>* 198.51.100.32/27 [1/0] via 192.0.2.2, eth0, weight 1, 00:00:05\n"
        "  *                        via 192.0.2.3, eth0, weight 1, 00:00:05\n"
        "S   198.51.100.64/27 [1/0] via 192.0.2.9 inactive, weight 1, 00:00:05\n"
        "S>  198.51.100.96/27 [1/0] via 198.18.0.1 (recursive), weight 1, 00:00:03\n"
        "  *                          via 192.0.2.2, eth0, weight 1, 00:00:03\n"
        "S>r 198.51.100.128/27 [1/0] via 192.0.2.2, eth0, weight 1, 00:00:03\n"
    )
    assert parse_show_ip_route("lab-frr", text) == [
        row("198.51.100.32/27", "192.0.2.2"),
        row("198.51.100.32/27", "192.0.2.3"),
        row("198.51.100.64/27", "192.0.2.9", selected=False, installed=False),
        row("198.51.100.96/27", "198.18.0.1"),
        # `r`: zebra tried and the kernel rejected it.
        row("198.51.100.128/27", "192.0.2.2", installed=False),
    ]


def test_recursive_next_hop_with_an_inactive_resolver_is_not_installed() -> None:
    text = (
        FRR_LEGEND
        + "S>  198.51.100.96/27 [1/0] via 198.18.0.1 (recursive), weight 1, 00:00:03\n"
        + "  *                          via 192.0.2.2, eth0 inactive, weight 1, 00:00:03\n"
    )
    assert parse_show_ip_route("lab-frr", text) == [row("198.51.100.96/27", "198.18.0.1", installed=False)]


def test_ios_flags_do_not_mean_frr_flags() -> None:
    """On IOS `*` is "candidate default": every route shown is selected and installed."""
    text = LEGEND + "S*    0.0.0.0/0 [1/0] via 203.0.113.1\nS     198.18.0.0/15 [5/0] via 192.0.2.2\n"
    assert parse_show_ip_route("edge-1", text) == [
        row("0.0.0.0/0", "203.0.113.1"), row("198.18.0.0/15", "192.0.2.2", distance=5),
    ]


@pytest.mark.parametrize(
    ("line", "protocol", "distance"),
    [
        ("O*E2  198.18.2.0/24 [110/1] via 192.0.2.4, 00:05:35, GigabitEthernet0/1", "ospf", 110),
        ("i ia  198.18.2.0/24 [115/20] via 192.0.2.4, GigabitEthernet0/1", "isis", 115),
        ("D EX  198.18.2.0/24 [170/2297856] via 192.0.2.4, 00:12:01, Serial0/0", "eigrp", 170),
        ("B +   198.18.2.0/24 [20/0] via 192.0.2.4, 1w2d", "bgp", 20),
        ("S*+   198.18.2.0/24 [1/0] via 192.0.2.4", "static", 1),
        ("S p   198.18.2.0/24 [1/0] via 192.0.2.4", "static", 1),
        ("U     198.18.2.0/24 [1/0] via 192.0.2.4", "static", 1),
        ("R     198.18.2.0/24 [120/1] via 192.0.2.4, 00:00:17, GigabitEthernet0/1", "rip", 120),
    ],
)
def test_ios_code_fields(line: str, protocol: str, distance: int) -> None:
    assert parse_show_ip_route("edge-1", LEGEND + line + "\n") == [
        row("198.18.2.0/24", "192.0.2.4", protocol, distance),
    ]


def test_only_headers_and_nothing_at_all_are_empty_tables() -> None:
    assert parse_show_ip_route("edge-1", LEGEND) == []
    assert parse_show_ip_route("edge-1", "") == []
    assert parse_show_ip_route("edge-1", "\n\n") == []


def test_connected_local_null0_and_summary_lines_give_no_rows() -> None:
    text = LEGEND + (
        "      192.0.2.0/24 is variably subnetted, 2 subnets, 2 masks\n"
        "C        192.0.2.0/27 is directly connected, GigabitEthernet0/1\n"
        "L        192.0.2.1/32 is directly connected, GigabitEthernet0/1\n"
        "S        198.51.100.224/27 is directly connected, Null0\n"
        "B        198.51.100.0/24 [200/0], 3w4d, Null0\n"
        "D        198.18.0.0/15 is a summary, 00:01:02, Null0\n"
        "      198.51.100.0/27 is subnetted, 1 subnets\n"
        "C        198.51.100.32 is directly connected, Loopback50\n"
    )
    assert parse_show_ip_route("edge-1", text) == []


def test_same_prefix_in_one_vrf_header_is_fine() -> None:
    text = "\nRouting Table: WEB\n" + LEGEND + "S        198.51.100.32/27 [1/0] via 192.0.2.2\n"
    assert parse_show_ip_route("edge-1", text) == [row("198.51.100.32/27", "192.0.2.2")]


def test_tabs_and_crlf_line_ends() -> None:
    text = read("ios/ios15_show_ip_route_static.txt").replace("\n", "\r\n")
    assert parse_show_ip_route("edge-1", text) == IOS15_STATIC


def test_textfsm_template_agrees_on_ios_captures() -> None:
    """Cross-check with ntc-templates' cisco_ios_show_ip_route, an independent reading."""
    textfsm = pytest.importorskip("textfsm")
    ntc_templates = pytest.importorskip("ntc_templates")
    template = Path(ntc_templates.__file__).parent / "templates" / "cisco_ios_show_ip_route.textfsm"
    if not template.exists():
        pytest.skip("ntc_templates ships no cisco_ios_show_ip_route template")
    compared = 0
    for capture, _ in IOS_CAPTURES:
        with template.open() as handle:
            fsm = textfsm.TextFSM(handle)
        theirs = sorted(
            (f"{r['NETWORK']}/{r['PREFIX_LENGTH']}", r["NEXTHOP_IP"], int(r["DISTANCE"]))
            for r in fsm.ParseTextToDicts(read(capture))
            if r["NEXTHOP_IP"]
        )
        mine = sorted(
            (str(r.prefix), str(r.next_hop), r.distance) for r in parse_show_ip_route("r1", read(capture))
        )
        assert mine == theirs, capture
        compared += len(mine)
    assert compared > 20


@pytest.mark.parametrize("capture", [c for c, _ in IOS_CAPTURES + FRR_CAPTURES if c.endswith("route.txt")])
def test_random_corruption_never_raises_anything_but_parse_error(capture: str) -> None:
    rng = random.Random(capture)
    text = read(capture)
    refused = 0
    for _ in range(300):
        chars = list(text)
        for _ in range(rng.randint(1, 3)):
            chars[rng.randrange(len(chars))] = rng.choice("[]/.,*> \n0123456789SCLvia%")
        try:
            rows = parse_show_ip_route("r1", "".join(chars))
        except ParseError:
            refused += 1
        else:
            assert all(isinstance(r, StaticRoute) for r in rows)
    assert refused > 30


@pytest.mark.parametrize(
    "capture", ["frr/show_ip_route.txt", "frr/show_ip_route_static.txt", "frr/show_ip_fib.txt"]
)
def test_frr_output_cut_anywhere_never_invents_a_route(capture: str) -> None:
    """Cut mid-line, FRR output either fails or yields only rows the full output has.

    FRR ends each next-hop line with an uptime, so a cut that drops "inactive"
    cannot turn a refused next hop into an installed one.
    """
    text = read(capture)
    full = parse_show_ip_route("r1", text)
    outcomes = {"refused": 0, "parsed": 0}
    for end in range(len(text)):
        try:
            rows = parse_show_ip_route("r1", text[:end])
        except ParseError:
            outcomes["refused"] += 1
            continue
        outcomes["parsed"] += 1
        assert [r for r in rows if r not in full] == [], end
    assert outcomes["refused"] > 100 and outcomes["parsed"] > 10


def test_ios_output_cut_anywhere_changes_at_most_the_last_row() -> None:
    """IOS lines may legitimately end with the next hop, so a cut inside the last
    address (192.0.2.22 -> 192.0.2.2) cannot be seen; every earlier row is exact.
    """
    text = read("ios/ios15_show_ip_route.txt")
    full = parse_show_ip_route("r1", text)
    for end in range(len(text)):
        try:
            rows = parse_show_ip_route("r1", text[:end])
        except ParseError:
            continue
        kept = max(len(rows) - 1, 0)
        assert rows[:kept] == full[:kept], end
