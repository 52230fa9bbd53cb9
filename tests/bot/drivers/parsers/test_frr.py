"""FRR vtysh JSON parser, against outputs captured from FRR 8.4 in a throwaway netns."""

from __future__ import annotations

import json
import random
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from bot.drivers.base import StaticRoute
from bot.drivers.errors import ParseError
from bot.drivers.parsers.frr import fib_next_hops_json, parse_routes_json
from bot.drivers.parsers.ios import parse_show_ip_route

DATA = Path(__file__).parent / "data" / "frr"


def read(name: str) -> str:
    return (DATA / name).read_text()


def row(
    prefix: str, next_hop: str, *, selected: bool = True, installed: bool = True,
    protocol: str = "static", distance: int = 1,
) -> StaticRoute:
    return StaticRoute(IPv4Network(prefix), IPv4Address(next_hop), selected, installed, protocol, distance)


def ips(*addresses: str) -> set[IPv4Address]:
    return {IPv4Address(a) for a in addresses}


# Every static configured in the capture router, as FRR reported it.
STATIC_ROWS = [
    row("0.0.0.0/0", "203.0.113.1"),
    row("198.51.100.0/28", "192.0.2.9", selected=False, installed=False),
    row("198.51.100.16/28", "198.18.0.5"),
    row("198.51.100.32/27", "192.0.2.2"),
    row("198.51.100.33/32", "192.0.2.3"),
    row("198.51.100.48/28", "192.0.2.2"),
    row("198.51.100.48/28", "192.0.2.9", installed=False),
    row("198.51.100.64/27", "192.0.2.2"),
    row("198.51.100.64/27", "192.0.2.3"),
    row("198.51.100.96/27", "198.18.0.1"),
    row("198.51.100.128/27", "192.0.2.3", selected=False, installed=False, distance=10),
    row("198.51.100.128/27", "192.0.2.2"),
    row("198.51.100.160/27", "192.0.2.2", selected=False, installed=False),
]

FULL_ROWS = [
    row("0.0.0.0/0", "203.0.113.1"),
    row("198.18.0.0/15", "192.0.2.2", protocol="kernel", distance=0),
    *STATIC_ROWS[1:12],
    row("198.51.100.160/27", "192.0.2.3", protocol="kernel", distance=0),
    STATIC_ROWS[12],
]


@pytest.mark.parametrize(
    ("capture", "expected"),
    [
        ("route_single.json", [row("198.51.100.32/27", "192.0.2.2")]),
        ("route_ecmp.json", [row("198.51.100.64/27", "192.0.2.2"), row("198.51.100.64/27", "192.0.2.3")]),
        ("route_host32.json", [row("198.51.100.33/32", "192.0.2.3")]),
        ("route_lookup_address.json", [row("198.51.100.33/32", "192.0.2.3")]),
        ("route_default.json", [row("0.0.0.0/0", "203.0.113.1")]),
        ("route_onlink.json", [row("198.51.100.16/28", "198.18.0.5")]),
        # Next hop not on the named interface: zebra keeps it, inactive.
        ("route_inactive.json", [row("198.51.100.0/28", "192.0.2.9", selected=False, installed=False)]),
        # Mid make-before-break: one next hop forwarding, the other refused.
        ("route_ecmp_one_inactive.json", [
            row("198.51.100.48/28", "192.0.2.2"),
            row("198.51.100.48/28", "192.0.2.9", installed=False),
        ]),
        # The configured next hop, not the gateway it resolves through.
        ("route_recursive.json", [row("198.51.100.96/27", "198.18.0.1")]),
        # The losing route's next hop says "fib": true in the raw JSON.
        ("route_lower_distance_wins.json", [
            row("198.51.100.128/27", "192.0.2.3", selected=False, installed=False, distance=10),
            row("198.51.100.128/27", "192.0.2.2"),
        ]),
        ("route_kernel_wins.json", [
            row("198.51.100.160/27", "192.0.2.3", protocol="kernel", distance=0),
            row("198.51.100.160/27", "192.0.2.2", selected=False, installed=False),
        ]),
        ("route_longer_prefixes.json", [
            row("198.51.100.0/28", "192.0.2.9", selected=False, installed=False),
            row("198.51.100.16/28", "198.18.0.5"),
        ]),
        ("route_interface_only.json", []),
        ("route_blackhole.json", []),
        ("route_absent.json", []),
        # staticd holds back a route whose next hop does not resolve: zebra never sees it.
        ("route_unresolvable_nexthop.json", []),
        ("show_ip_route_ospf_empty.json", []),
        ("show_ip_route_static.json", STATIC_ROWS),
        ("show_ip_route.json", FULL_ROWS),
    ],
)
def test_captured_routes(capture: str, expected: list[StaticRoute]) -> None:
    assert parse_routes_json("r1", read(capture)) == expected


@pytest.mark.parametrize(
    ("capture", "prefix", "expected"),
    [
        ("route_single.json", "198.51.100.32/27", ips("192.0.2.2")),
        ("route_ecmp.json", "198.51.100.64/27", ips("192.0.2.2", "192.0.2.3")),
        ("route_host32.json", "198.51.100.33/32", ips("192.0.2.3")),
        ("route_default.json", "0.0.0.0/0", ips("203.0.113.1")),
        ("route_inactive.json", "198.51.100.0/28", set()),
        ("route_ecmp_one_inactive.json", "198.51.100.48/28", ips("192.0.2.2")),
        # What the kernel forwards to: the resolved gateway.
        ("route_recursive.json", "198.51.100.96/27", ips("192.0.2.2")),
        ("route_lower_distance_wins.json", "198.51.100.128/27", ips("192.0.2.2")),
        # The kernel route wins; the static's next hop is not forwarding.
        ("route_kernel_wins.json", "198.51.100.160/27", ips("192.0.2.3")),
        ("route_blackhole.json", "198.51.100.224/27", set()),
        ("route_interface_only.json", "198.51.100.192/27", set()),
        ("route_absent.json", "198.51.100.240/28", set()),
        # Exactly the prefix: the /32 inside the /27 does not count for the /27.
        ("show_ip_route.json", "198.51.100.32/27", ips("192.0.2.2")),
        ("route_host32.json", "198.51.100.32/27", set()),
        ("show_ip_route.json", "198.51.100.64/27", ips("192.0.2.2", "192.0.2.3")),
        ("show_ip_route.json", "198.51.100.160/27", ips("192.0.2.3")),
    ],
)
def test_fib_next_hops(capture: str, prefix: str, expected: set[IPv4Address]) -> None:
    assert fib_next_hops_json("r1", read(capture), IPv4Network(prefix)) == expected


def test_text_and_json_captured_together_agree() -> None:
    """`show ip route` and `show ip route json` were taken back to back."""
    text_rows = parse_show_ip_route("r1", read("show_ip_route.txt"))
    json_rows = parse_routes_json("r1", read("show_ip_route.json"))
    assert sorted(map(repr, text_rows)) == sorted(map(repr, json_rows))


def test_installed_implies_selected_in_every_capture() -> None:
    checked = 0
    for path in sorted(DATA.glob("*.json")):
        for r in parse_routes_json("r1", path.read_text()):
            assert r.selected or not r.installed, (path.name, r)
            checked += 1
    assert checked > 30


def test_fib_matches_installed_rows_for_non_recursive_prefixes() -> None:
    text = read("show_ip_route.json")
    rows = parse_routes_json("r1", text)
    recursive = IPv4Network("198.51.100.96/27")
    prefixes = {r.prefix for r in rows} - {recursive}
    assert len(prefixes) > 8
    for prefix in prefixes:
        installed = {r.next_hop for r in rows if r.prefix == prefix and r.installed}
        assert fib_next_hops_json("r1", text, prefix) == installed, prefix


def _single() -> dict[str, list[dict[str, object]]]:
    doc: dict[str, list[dict[str, object]]] = json.loads(read("route_single.json"))
    return doc


def _mutated(change: str) -> str:
    doc = _single()
    entry = doc["198.51.100.32/27"][0]
    nexthops = entry["nexthops"]
    assert isinstance(nexthops, list)
    hop = nexthops[0]
    if change == "no-protocol":
        del entry["protocol"]
    elif change == "distance-string":
        entry["distance"] = "1"
    elif change == "distance-bool":
        entry["distance"] = True
    elif change == "distance-range":
        entry["distance"] = 256
    elif change == "selected-string":
        entry["selected"] = "yes"
    elif change == "no-nexthops":
        del entry["nexthops"]
    elif change == "nexthops-object":
        entry["nexthops"] = {"ip": "192.0.2.2"}
    elif change == "nexthop-string":
        entry["nexthops"] = ["192.0.2.2"]
    elif change == "bad-ip":
        hop["ip"] = "192.0.2.300"
    elif change == "int-ip":
        hop["ip"] = 3221225986
    elif change == "fib-string":
        hop["fib"] = "true"
    elif change == "afi-mismatch":
        hop["afi"] = "ipv6"
    elif change == "afi-unknown":
        hop["afi"] = "mpls"
    elif change == "prefix-mismatch":
        entry["prefix"] = "198.51.100.64/27"
    elif change == "entry-list":
        doc["198.51.100.32/27"] = [["prefix", "198.51.100.32/27"]]  # type: ignore[list-item]
    elif change == "routes-object":
        doc["198.51.100.32/27"] = entry  # type: ignore[assignment]
    else:
        raise AssertionError(change)
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no-protocol", r"entry 0 protocol is not a string"),
        ("distance-string", r"entry 0 distance is not an integer"),
        ("distance-bool", r"entry 0 distance is not an integer"),
        ("distance-range", r"entry 0 distance is not an integer in 0\.\.255"),
        ("selected-string", r"entry 0 selected is not true/false"),
        ("no-nexthops", r"entry 0 has no nexthops list"),
        ("nexthops-object", r"entry 0 has no nexthops list"),
        ("nexthop-string", r"nexthop 0 is not an object"),
        ("bad-ip", r"nexthop 0 ip is not an IPv4 address: '192\.0\.2\.300'"),
        ("int-ip", r"nexthop 0 ip is not a string"),
        ("fib-string", r"nexthop 0 fib is not true/false"),
        ("afi-mismatch", r"nexthop 0 has afi ipv6 but ip '192\.0\.2\.2'"),
        ("afi-unknown", r"nexthop 0 has unknown afi"),
        ("prefix-mismatch", r"entry 0 names prefix '198\.51\.100\.64/27'"),
        ("entry-list", r"entry 0 is not an object"),
        ("routes-object", r"routes for 198\.51\.100\.32/27 are not a list"),
    ],
)
def test_malformed_entries(change: str, message: str) -> None:
    with pytest.raises(ParseError, match=r"^r1: .*" + message):
        parse_routes_json("r1", _mutated(change))
    with pytest.raises(ParseError, match=r"^r1: .*" + message):
        fib_next_hops_json("r1", _mutated(change), IPv4Network("198.51.100.32/27"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"empty output"),
        ("   \n", r"empty output"),
        ("Codes: K - kernel route", r"not valid JSON"),
        (read("show_ip_route.json")[:700], r"not valid JSON"),
        (read("bad_command.txt"), r"device replied with an error: '% Unknown command: show ip route 198"),
        (read("invalid_command.txt"), r"device replied with an error: '% Unknown command"),
        (read("network_not_in_table.txt"), r"'% Network not in table'"),
        ("[]", r"JSON is a list, not an object of prefixes"),
        ("null", r"JSON is a NoneType"),
        ('{"198.51.100.300/27": []}', r"route key is not an IPv4 prefix: '198\.51\.100\.300/27'"),
        ('{"198.51.100.33/27": []}', r"route key is not an IPv4 prefix: '198\.51\.100\.33/27'"),
        ('{"198.51.100.32": []}', r"route key is not an IPv4 prefix"),
        ('{"2001:db8::/32": []}', r"route key is not an IPv4 prefix"),
        # `show ip route vrf all json` nests by VRF name: not the shape asked for.
        ('{"default": {"198.51.100.32/27": []}}', r"route key is not an IPv4 prefix: 'default'"),
    ],
)
def test_malformed_documents(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=r"^r1: .*" + message):
        parse_routes_json("r1", text)


def test_ipv6_next_hop_of_an_ipv4_route_is_not_a_row() -> None:
    doc = _single()
    nexthops = doc["198.51.100.32/27"][0]["nexthops"]
    assert isinstance(nexthops, list)
    nexthops[0].update(ip="2001:db8::1", afi="ipv6")
    assert parse_routes_json("r1", json.dumps(doc)) == []


def test_recursive_next_hop_without_a_fib_resolver_is_not_installed() -> None:
    doc = json.loads(read("route_recursive.json"))
    del doc["198.51.100.96/27"][0]["nexthops"][1]["fib"]
    expected = [row("198.51.100.96/27", "198.18.0.1", installed=False)]
    assert parse_routes_json("r1", json.dumps(doc)) == expected
    assert fib_next_hops_json("r1", json.dumps(doc), IPv4Network("198.51.100.96/27")) == set()


def test_error_names_the_device() -> None:
    with pytest.raises(ParseError) as caught:
        parse_routes_json("edge-fra-1", "{")
    assert caught.value.device == "edge-fra-1"
    assert str(caught.value).startswith("edge-fra-1: ")


def test_truncation_anywhere_is_a_parse_error() -> None:
    text = read("show_ip_route_static.json").rstrip()
    for end in range(0, len(text), 7):
        with pytest.raises(ParseError):
            parse_routes_json("r1", text[:end])


def test_random_corruption_never_raises_anything_but_parse_error() -> None:
    rng = random.Random(20240305)
    text = read("show_ip_route.json")
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(400):
        chars = list(text)
        for _ in range(rng.randint(1, 4)):
            chars[rng.randrange(len(chars))] = rng.choice('{}[]":,0123456789.abc/ \n')
        try:
            rows = parse_routes_json("r1", "".join(chars))
        except ParseError:
            outcomes["refused"] += 1
        else:
            assert all(isinstance(r, StaticRoute) for r in rows)
            outcomes["parsed"] += 1
    assert outcomes["refused"] > 100
