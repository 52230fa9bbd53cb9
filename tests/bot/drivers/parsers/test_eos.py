"""Arista EOS `show ip route ... | json` parser, against hand-built captures in EOS' layout."""

from __future__ import annotations

import json
import random
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest

from bot.drivers.base import StaticRoute
from bot.drivers.errors import ParseError
from bot.drivers.parsers.eos import fib_next_hops_json, parse_routes_json

DATA = Path(__file__).parent / "data" / "eos"


def read(name: str) -> str:
    return (DATA / name).read_text()


def row(
    prefix: str, next_hop: str, *, installed: bool = True, protocol: str = "static", distance: int = 1,
) -> StaticRoute:
    return StaticRoute(IPv4Network(prefix), IPv4Address(next_hop), True, installed, protocol, distance)


def ips(*addresses: str) -> set[IPv4Address]:
    return {IPv4Address(a) for a in addresses}


@pytest.mark.parametrize(
    ("capture", "expected"),
    [
        ("route_single.json", [row("198.51.100.32/27", "192.0.2.2")]),
        # Mid make-before-break: EOS installs equal-distance statics as ECMP.
        ("route_two_next_hops.json", [row("198.51.100.48/28", "192.0.2.2"), row("198.51.100.48/28", "192.0.2.3")]),
        # EOS shows only the winner: the floating static is not in the output at all.
        ("route_static_beaten.json", [row("198.51.100.64/27", "192.0.2.4", protocol="ospf", distance=110)]),
        ("route_ospf.json", [row("198.18.0.0/15", "192.0.2.4", protocol="ospf", distance=110)]),
        # In the RIB and the kernel, not yet in hardware.
        ("route_not_programmed.json", [row("198.51.100.80/28", "192.0.2.3", installed=False)]),
        ("route_null0.json", []),
        ("route_absent.json", []),
        ("show_ip_route_static.json", [
            row("0.0.0.0/0", "203.0.113.1"),
            row("198.51.100.32/27", "192.0.2.2"),
            row("198.51.100.48/28", "192.0.2.2"),
            row("198.51.100.48/28", "192.0.2.3"),
            row("198.51.100.80/28", "192.0.2.3", installed=False),
        ]),
    ],
)
def test_captured_routes(capture: str, expected: list[StaticRoute]) -> None:
    assert parse_routes_json("sw1", read(capture)) == expected


@pytest.mark.parametrize(
    ("capture", "prefix", "expected"),
    [
        ("route_single.json", "198.51.100.32/27", ips("192.0.2.2")),
        ("route_two_next_hops.json", "198.51.100.48/28", ips("192.0.2.2", "192.0.2.3")),
        ("route_static_beaten.json", "198.51.100.64/27", ips("192.0.2.4")),
        ("route_not_programmed.json", "198.51.100.80/28", set()),
        ("route_null0.json", "198.51.100.224/27", set()),
        ("route_absent.json", "198.51.100.240/28", set()),
        ("show_ip_route_static.json", "0.0.0.0/0", ips("203.0.113.1")),
        # Exactly the prefix: the /27 does not answer for a /28 inside it.
        ("route_single.json", "198.51.100.32/28", set()),
    ],
)
def test_fib_next_hops(capture: str, prefix: str, expected: set[IPv4Address]) -> None:
    assert fib_next_hops_json("sw1", read(capture), IPv4Network(prefix)) == expected


@pytest.mark.parametrize(
    ("route_type", "protocol"),
    [
        ("static", "static"),
        ("connected", "connected"),
        ("ospfExternalType2", "ospf"),
        ("eBGP", "bgp"),
        ("iBGP", "bgp"),
        ("isisLevel2", "isis"),
        ("kernel", "kernel"),
    ],
)
def test_route_types_map_to_the_shared_protocol_names(route_type: str, protocol: str) -> None:
    doc = _doc()
    _route(doc)["routeType"] = route_type
    assert parse_routes_json("sw1", json.dumps(doc))[0].protocol == protocol


def test_a_named_vrf_alone_is_read() -> None:
    doc = _doc()
    doc["vrfs"] = {"WEB": doc["vrfs"]["default"]}
    assert parse_routes_json("sw1", json.dumps(doc)) == [row("198.51.100.32/27", "192.0.2.2")]


def test_connected_route_without_preference_has_no_distance() -> None:
    doc = _doc()
    route = _route(doc)
    del route["preference"]
    assert parse_routes_json("sw1", json.dumps(doc))[0].distance is None


def test_interface_only_via_beside_an_address_gives_one_row() -> None:
    doc = _doc()
    _route(doc)["vias"].append({"interface": "Ethernet3"})
    assert parse_routes_json("sw1", json.dumps(doc)) == [row("198.51.100.32/27", "192.0.2.2")]


def _doc(name: str = "route_single.json") -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(read(name))
    return doc


def _route(doc: dict[str, Any]) -> dict[str, Any]:
    route: dict[str, Any] = doc["vrfs"]["default"]["routes"]["198.51.100.32/27"]
    return route


def _mutated(change: str) -> str:
    doc = _doc()
    vrf = doc["vrfs"]["default"]
    route = _route(doc)
    via = route["vias"][0]
    if change == "no-vrfs":
        del doc["vrfs"]
    elif change == "vrfs-list":
        doc["vrfs"] = [vrf]
    elif change == "no-vrf":
        doc["vrfs"] = {}
    elif change == "two-vrfs":
        doc["vrfs"]["WEB"] = vrf
    elif change == "vrf-string":
        doc["vrfs"]["default"] = "default"
    elif change == "no-routes":
        del vrf["routes"]
    elif change == "routes-list":
        vrf["routes"] = [route]
    elif change == "bad-key":
        vrf["routes"] = {"198.51.100.300/27": route}
    elif change == "host-bits":
        vrf["routes"] = {"198.51.100.33/27": route}
    elif change == "ipv6-key":
        vrf["routes"] = {"2001:db8::/32": route}
    elif change == "route-list":
        vrf["routes"]["198.51.100.32/27"] = [route]
    elif change == "no-route-type":
        del route["routeType"]
    elif change == "empty-route-type":
        route["routeType"] = ""
    elif change == "no-hardware":
        del route["hardwareProgrammed"]
    elif change == "hardware-string":
        route["hardwareProgrammed"] = "true"
    elif change == "action-number":
        route["routeAction"] = 1
    elif change == "preference-string":
        route["preference"] = "1"
    elif change == "preference-range":
        route["preference"] = 256
    elif change == "no-vias":
        del route["vias"]
    elif change == "vias-object":
        route["vias"] = via
    elif change == "via-string":
        route["vias"] = ["192.0.2.2"]
    elif change == "bad-next-hop":
        via["nexthopAddr"] = "192.0.2.256"
    elif change == "ipv6-next-hop":
        via["nexthopAddr"] = "fe80::1"
    elif change == "int-next-hop":
        via["nexthopAddr"] = 3221225986
    else:
        raise AssertionError(change)
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no-vrfs", r"show ip route JSON has no vrfs object"),
        ("vrfs-list", r"show ip route JSON has no vrfs object"),
        ("no-vrf", r"output covers 0 VRFs \(none\), expected one"),
        ("two-vrfs", r"output covers 2 VRFs \(WEB, default\), expected one"),
        ("vrf-string", r"VRF 'default' is not an object"),
        ("no-routes", r"VRF 'default' has no routes object"),
        ("routes-list", r"VRF 'default' has no routes object"),
        ("bad-key", r"route key is not an IPv4 prefix: '198\.51\.100\.300/27'"),
        ("host-bits", r"route key is not an IPv4 prefix: '198\.51\.100\.33/27'"),
        ("ipv6-key", r"route key is not an IPv4 prefix: '2001:db8::/32'"),
        ("route-list", r"route 198\.51\.100\.32/27 is not an object"),
        ("no-route-type", r"route 198\.51\.100\.32/27 routeType is not a string"),
        ("empty-route-type", r"route 198\.51\.100\.32/27 has an empty routeType"),
        ("no-hardware", r"hardwareProgrammed is not true/false"),
        ("hardware-string", r"hardwareProgrammed is not true/false"),
        ("action-number", r"routeAction is not a string"),
        ("preference-string", r"preference is not an integer"),
        ("preference-range", r"preference is not an integer in 0\.\.255"),
        ("no-vias", r"route 198\.51\.100\.32/27 has no vias list"),
        ("vias-object", r"has no vias list"),
        ("via-string", r"via 0 is not an object"),
        ("bad-next-hop", r"via 0 nexthopAddr is not an IPv4 address: '192\.0\.2\.256'"),
        ("ipv6-next-hop", r"via 0 nexthopAddr is not an IPv4 address: 'fe80::1'"),
        ("int-next-hop", r"via 0 nexthopAddr is not a string"),
    ],
)
def test_malformed_documents(change: str, message: str) -> None:
    text = _mutated(change)
    with pytest.raises(ParseError, match=r"^sw1: .*" + message):
        parse_routes_json("sw1", text)
    with pytest.raises(ParseError, match=r"^sw1: .*" + message):
        fib_next_hops_json("sw1", text, IPv4Network("198.51.100.32/27"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"empty output"),
        ("  \n", r"empty output"),
        ("S        198.51.100.32/27 [1/0] via 192.0.2.2, Ethernet1\n", r"not valid JSON"),
        (read("route_single.json")[:300], r"not valid JSON"),
        (read("bad_invalid_input.txt"), r"device replied with an error: \"% Invalid input \(at token 3"),
        (read("bad_incomplete.txt"), r"device replied with an error: '% Incomplete command'"),
        (read("bad_unconverted.json"), r"device replied with an error: 'This is an unconverted command'"),
        ('{"errors": "boom"}', r"device replied with an error: 'boom'"),
        ("[]", r"JSON is a list, not an object"),
        ("null", r"JSON is a NoneType"),
    ],
)
def test_malformed_outputs(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=r"^sw1: .*" + message):
        parse_routes_json("sw1", text)


def test_error_names_the_device_and_stays_short() -> None:
    with pytest.raises(ParseError) as caught:
        parse_routes_json("leaf-fra-1", json.dumps({"errors": ["x" * 500]}))
    assert caught.value.device == "leaf-fra-1"
    assert str(caught.value).startswith("leaf-fra-1: ")
    assert len(str(caught.value)) < 120


def test_truncation_anywhere_is_a_parse_error() -> None:
    text = read("show_ip_route_static.json").rstrip()
    for end in range(0, len(text), 7):
        with pytest.raises(ParseError):
            parse_routes_json("sw1", text[:end])


def test_random_corruption_never_raises_anything_but_parse_error() -> None:
    rng = random.Random(20240612)
    text = read("show_ip_route_static.json")
    refused = 0
    for _ in range(400):
        chars = list(text)
        for _ in range(rng.randint(1, 4)):
            chars[rng.randrange(len(chars))] = rng.choice('{}[]":,0123456789.abc/ \n')
        try:
            rows = parse_routes_json("sw1", "".join(chars))
        except ParseError:
            refused += 1
        else:
            assert all(isinstance(r, StaticRoute) for r in rows)
    assert refused > 100
