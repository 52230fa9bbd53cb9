"""Junos `show route ... | display json` parser, against hand-built captures in Junos' layout."""

from __future__ import annotations

import json
import random
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest

from bot.drivers.base import StaticRoute
from bot.drivers.errors import ParseError
from bot.drivers.parsers.junos import fib_next_hops_json, parse_routes_json

DATA = Path(__file__).parent / "data" / "junos"


def read(name: str) -> str:
    return (DATA / name).read_text()


def row(
    prefix: str, next_hop: str, *, selected: bool = True, installed: bool = True,
    protocol: str = "static", distance: int = 5,
) -> StaticRoute:
    return StaticRoute(IPv4Network(prefix), IPv4Address(next_hop), selected, installed, protocol, distance)


def ips(*addresses: str) -> set[IPv4Address]:
    return {IPv4Address(a) for a in addresses}


@pytest.mark.parametrize(
    ("capture", "expected"),
    [
        ("route_single.json", [row("198.51.100.32/27", "192.0.2.2")]),
        # Mid make-before-break: both next hops configured, Junos forwards over one.
        ("route_two_next_hops.json", [
            row("198.51.100.48/28", "192.0.2.2"),
            row("198.51.100.48/28", "192.0.2.3", installed=False),
        ]),
        # OSPF newly active (`+`), the floating static last active (`-`).
        ("route_static_beaten.json", [
            row("198.51.100.64/27", "192.0.2.4", protocol="ospf", distance=10),
            row("198.51.100.64/27", "192.0.2.3", selected=False, installed=False, distance=200),
        ]),
        ("route_ospf.json", [row("198.18.0.0/15", "192.0.2.4", protocol="ospf", distance=150)]),
        ("route_discard.json", []),
        ("route_absent.json", []),
        # inet6.0 is skipped: its ::/0 static is not an IPv4 row.
        ("show_route_protocol_static.json", [
            row("0.0.0.0/0", "203.0.113.1"),
            row("198.51.100.32/27", "192.0.2.2"),
            row("198.51.100.48/28", "192.0.2.2"),
            row("198.51.100.48/28", "192.0.2.3", installed=False),
            row("198.51.100.64/27", "192.0.2.3", selected=False, installed=False, distance=200),
            row("198.51.100.96/27", "198.18.0.1"),
            row("198.51.100.96/27", "198.18.0.5"),
        ]),
    ],
)
def test_captured_routes(capture: str, expected: list[StaticRoute]) -> None:
    assert parse_routes_json("mx1", read(capture)) == expected


@pytest.mark.parametrize(
    ("capture", "prefix", "expected"),
    [
        ("route_single.json", "198.51.100.32/27", ips("192.0.2.2")),
        ("route_two_next_hops.json", "198.51.100.48/28", ips("192.0.2.2")),
        # The static's next hop is not forwarding; OSPF's is.
        ("route_static_beaten.json", "198.51.100.64/27", ips("192.0.2.4")),
        ("route_ospf.json", "198.18.0.0/15", ips("192.0.2.4")),
        ("route_discard.json", "198.51.100.224/27", set()),
        ("route_absent.json", "198.51.100.240/28", set()),
        ("show_route_protocol_static.json", "198.51.100.96/27", ips("198.18.0.1", "198.18.0.5")),
        # Exactly the prefix: a covering or covered route does not count.
        ("route_single.json", "198.51.100.32/28", set()),
        ("show_route_protocol_static.json", "198.51.100.0/24", set()),
    ],
)
def test_fib_next_hops(capture: str, prefix: str, expected: set[IPv4Address]) -> None:
    assert fib_next_hops_json("mx1", read(capture), IPv4Network(prefix)) == expected


def test_installed_implies_selected_in_every_capture() -> None:
    checked = 0
    for path in [*sorted(DATA.glob("route_*.json")), DATA / "show_route_protocol_static.json"]:
        for r in parse_routes_json("mx1", path.read_text()):
            assert r.selected or not r.installed, (path.name, r)
            checked += 1
    assert checked > 10


def _doc(name: str = "route_single.json") -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(read(name).split("\n{master")[0])
    return doc


def _table(doc: dict[str, Any]) -> dict[str, Any]:
    table: dict[str, Any] = doc["route-information"][0]["route-table"][0]
    return table


def _entry(doc: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = _table(doc)["rt"][0]["rt-entry"][0]
    return entry


def test_detail_style_destination_with_separate_prefix_length() -> None:
    doc = _doc()
    rt = _table(doc)["rt"][0]
    rt["rt-destination"] = [{"data": "198.51.100.32"}]
    rt["rt-prefix-length"] = [{"data": "27"}]
    assert parse_routes_json("mx1", json.dumps(doc)) == [row("198.51.100.32/27", "192.0.2.2")]


def test_load_balanced_next_hops_are_all_installed() -> None:
    doc = _doc("route_two_next_hops.json")
    _entry(doc)["nh"][1]["selected-next-hop"] = [{"data": [None]}]
    text = json.dumps(doc)
    assert [r.installed for r in parse_routes_json("mx1", text)] == [True, True]
    assert fib_next_hops_json("mx1", text, IPv4Network("198.51.100.48/28")) == ips("192.0.2.2", "192.0.2.3")


def test_inactive_entry_marking_a_selected_next_hop_is_not_installed() -> None:
    """Junos marks the next hop an inactive entry would use; that is not forwarding."""
    doc = _doc()
    _entry(doc)["active-tag"] = [{}]
    text = json.dumps(doc)
    assert parse_routes_json("mx1", text) == [row("198.51.100.32/27", "192.0.2.2", selected=False, installed=False)]
    assert fib_next_hops_json("mx1", text, IPv4Network("198.51.100.32/27")) == set()


def test_missing_active_tag_is_not_selected() -> None:
    doc = _doc()
    del _entry(doc)["active-tag"]
    assert parse_routes_json("mx1", json.dumps(doc))[0].selected is False


def test_newly_active_plus_tag_is_selected() -> None:
    doc = _doc()
    _entry(doc)["active-tag"] = [{"data": "+"}]
    assert parse_routes_json("mx1", json.dumps(doc)) == [row("198.51.100.32/27", "192.0.2.2")]


def test_route_table_without_rt_is_empty() -> None:
    doc = _doc()
    del _table(doc)["rt"]
    assert parse_routes_json("mx1", json.dumps(doc)) == []


def test_other_tables_are_skipped() -> None:
    doc = _doc()
    _table(doc)["table-name"] = [{"data": "inet.3"}]
    assert parse_routes_json("mx1", json.dumps(doc)) == []


def test_banner_after_the_document_is_ignored() -> None:
    assert read("route_static_beaten.json").rstrip().endswith("{master:0}")
    text = read("route_single.json") + "\n{backup}\n"
    assert parse_routes_json("mx1", text) == [row("198.51.100.32/27", "192.0.2.2")]


def _mutated(change: str) -> str:
    doc = _doc()
    info = doc["route-information"][0]
    table = _table(doc)
    rt = table["rt"][0]
    entry = _entry(doc)
    hop = entry["nh"][0]
    if change == "no-route-information":
        del doc["route-information"]
    elif change == "two-route-informations":
        doc["route-information"].append(info)
    elif change == "route-information-object":
        doc["route-information"] = info
    elif change == "table-not-object":
        info["route-table"] = ["inet.0"]
    elif change == "no-table-name":
        del table["table-name"]
    elif change == "two-tables":
        second = json.loads(json.dumps(table))
        second["table-name"] = [{"data": "BLUE.inet.0"}]
        info["route-table"].append(second)
    elif change == "bare-leaf":
        rt["rt-destination"] = "198.51.100.32/27"
    elif change == "leaf-not-text":
        rt["rt-destination"] = [{"data": ["198.51.100.32/27"]}]
    elif change == "two-values":
        rt["rt-destination"] = [{"data": "198.51.100.32/27"}, {"data": "198.51.100.64/27"}]
    elif change == "no-destination":
        del rt["rt-destination"]
    elif change == "bad-destination":
        rt["rt-destination"] = [{"data": "198.51.100.300/27"}]
    elif change == "host-bits":
        rt["rt-destination"] = [{"data": "198.51.100.33/27"}]
    elif change == "ipv6-destination":
        rt["rt-destination"] = [{"data": "2001:db8::/32"}]
    elif change == "bad-length":
        rt["rt-destination"] = [{"data": "198.51.100.32"}]
        rt["rt-prefix-length"] = [{"data": "x"}]
    elif change == "no-rt-entry":
        del rt["rt-entry"]
    elif change == "no-protocol":
        del entry["protocol-name"]
    elif change == "bad-preference":
        entry["preference"] = [{"data": "-5"}]
    elif change == "huge-preference":
        entry["preference"] = [{"data": "4294967296"}]
    elif change == "unknown-tag":
        entry["active-tag"] = [{"data": "@"}]
    elif change == "bad-next-hop":
        hop["to"] = [{"data": "192.0.2.300"}]
    elif change == "ipv6-next-hop":
        hop["to"] = [{"data": "2001:db8::2"}]
    elif change == "number-next-hop":
        hop["to"] = [{"data": 3221225986}]
    elif change == "nh-not-list":
        entry["nh"] = hop
    elif change == "nh-string":
        entry["nh"] = ["192.0.2.2"]
    elif change == "flag-with-value":
        hop["selected-next-hop"] = [{"data": "yes"}]
    else:
        raise AssertionError(change)
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no-route-information", r"show route JSON has no route-information"),
        ("two-route-informations", r"document has 2 route-information elements"),
        ("route-information-object", r"document route-information is not a list"),
        ("table-not-object", r"route-information route-table 0 is not an object"),
        ("no-table-name", r"route-table 0 has no table-name"),
        ("two-tables", r"more than one routing table \(inet\.0, BLUE\.inet\.0\)"),
        ("bare-leaf", r"rt 0 rt-destination is not a list"),
        ("leaf-not-text", r"rt 0 rt-destination is not text"),
        ("two-values", r"rt 0 has 2 rt-destination values"),
        ("no-destination", r"rt 0 has no rt-destination"),
        ("bad-destination", r"destination is not an IPv4 prefix: '198\.51\.100\.300/27'"),
        ("host-bits", r"destination is not an IPv4 prefix: '198\.51\.100\.33/27'"),
        ("ipv6-destination", r"destination is not an IPv4 prefix: '2001:db8::/32'"),
        ("bad-length", r"has destination '198\.51\.100\.32' and length 'x'"),
        ("no-rt-entry", r"route 198\.51\.100\.32/27 has no rt-entry"),
        ("no-protocol", r"entry 0 has no protocol-name"),
        ("bad-preference", r"entry 0 preference is not a number: '-5'"),
        ("huge-preference", r"entry 0 preference is not a number"),
        ("unknown-tag", r"entry 0 has unknown active-tag '@'"),
        ("bad-next-hop", r"nh 0 to is not an IPv4 address: '192\.0\.2\.300'"),
        ("ipv6-next-hop", r"nh 0 to is not an IPv4 address: '2001:db8::2'"),
        ("number-next-hop", r"nh 0 to is not text"),
        ("nh-not-list", r"entry 0 nh is not a list"),
        ("nh-string", r"entry 0 nh 0 is not an object"),
        ("flag-with-value", r"nh 0 selected-next-hop carries a value"),
    ],
)
def test_malformed_documents(change: str, message: str) -> None:
    text = _mutated(change)
    with pytest.raises(ParseError, match=r"^mx1: .*" + message):
        parse_routes_json("mx1", text)
    with pytest.raises(ParseError, match=r"^mx1: .*" + message):
        fib_next_hops_json("mx1", text, IPv4Network("198.51.100.32/27"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"empty output"),
        ("{master:0}\n", r"empty output"),
        ("\n", r"empty output"),
        ("198.51.100.32/27 *[Static/5] 2w1d 06:41:17\n", r"not valid JSON"),
        (read("bad_truncated.json"), r"not valid JSON"),
        (read("bad_syntax_error.txt"), r"device replied with an error: 'syntax error, expecting <command>\.'"),
        (read("bad_error_line.txt"), r"device replied with an error: 'error: syntax error: 198\.51\.100\.300/27'"),
        ("error: unknown command: rout\n", r"device replied with an error: 'error: unknown command"),
        ("% Invalid input detected\n", r"device replied with an error: '% Invalid input"),
        ("[]", r"JSON is a list, not an object"),
        ("null", r"JSON is a NoneType"),
        ('{"route-information": [{"route-table": {}}]}', r"route-information route-table is not a list"),
    ],
)
def test_malformed_outputs(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=r"^mx1: .*" + message):
        parse_routes_json("mx1", text)


def test_error_names_the_device_and_stays_short() -> None:
    with pytest.raises(ParseError) as caught:
        parse_routes_json("edge-mx-1", "error: " + "x" * 500)
    assert caught.value.device == "edge-mx-1"
    assert str(caught.value).startswith("edge-mx-1: ")
    assert len(str(caught.value)) < 120


def test_truncation_anywhere_is_a_parse_error() -> None:
    text = read("show_route_protocol_static.json").rstrip()
    for end in range(0, len(text), 11):
        with pytest.raises(ParseError):
            parse_routes_json("mx1", text[:end])


def test_random_corruption_never_raises_anything_but_parse_error() -> None:
    rng = random.Random(20240611)
    text = read("show_route_protocol_static.json")
    refused = 0
    for _ in range(400):
        chars = list(text)
        for _ in range(rng.randint(1, 4)):
            chars[rng.randrange(len(chars))] = rng.choice('{}[]":,0123456789.abc/ *+-\n')
        try:
            rows = parse_routes_json("mx1", "".join(chars))
        except ParseError:
            refused += 1
        else:
            assert all(isinstance(r, StaticRoute) for r in rows)
    assert refused > 100
