"""Parse Junos `show route ... | display json` output.

Quirks of the format that shape this code:

* Junos JSON is XML turned inside out: every element is a list of objects and
  every leaf is `[{"data": "value"}]`, numbers included (`"preference": [{"data": "5"}]`).
  An empty XML tag is `[{"data": [null]}]` or `[{}]`. Nothing is trusted to
  have that shape; each level is checked.
* Route selection is per rt-entry: `active-tag` is `*` (active, and was
  active) or `+` (newly active); `-` is "last active" (lost the election) and
  an inactive entry has none. Junos prints every entry of a destination, so a
  floating static beaten by OSPF is a row with `selected=False`.
* A static with several next hops forwards over only the one marked
  `selected-next-hop` unless a load-balance policy is exported to the
  forwarding table, so a next hop is installed only when its entry is active
  and it carries that marker. The marker alone is not enough: an inactive
  entry still marks the next hop it would use.
* A static whose next hop is unreachable is hidden and absent from this
  output (`show route hidden` lists it); absent is then the honest reading.
* Only IPv4 unicast tables (`inet.0`, `<instance>.inet.0`) carry rows; IPv6,
  MPLS and `inet.3` tables are skipped. Rows carry no table name, so output
  covering two IPv4 unicast tables is refused rather than merged.
* On multi-RE and virtual-chassis devices the CLI prints a `{master:0}` banner
  line after the output; it is not part of the document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from bot.drivers.base import StaticRoute
from bot.drivers.parsers._common import (
    fail,
    ipv4_address,
    ipv4_network,
    load_json,
    snippet,
)

__all__ = ["fib_next_hops_json", "parse_routes_json"]

_MAX_PREFERENCE = 4294967295

# Junos CLI errors are plain text, not `%` lines: `error: syntax error: ...`,
# `syntax error, expecting <command>.`, `error: invalid ip address ...`.
_JUNOS_ERROR = re.compile(
    r"^(?:error:\s|syntax error\b|unknown command\b|invalid (?:ip address|value|prefix)\b|missing argument\b)"
)
# `{master:0}`, `{backup}`, `{primary:node0}`: the routing-engine / cluster banner.
_BANNER = re.compile(r"^\{(?:master|backup|primary|secondary|linecard|hold)(?::[\w-]+)?\}$")
_IPV4_UNICAST_TABLE = re.compile(r"^(?:[\w.-]+\.)?inet\.0$")
_ACTIVE_TAGS = {"*": True, "+": True, "-": False}
_PROTOCOLS = {"Direct": "connected", "IS-IS": "isis"}


@dataclass(frozen=True)
class _Hop:
    address: IPv4Address | None
    selected: bool


@dataclass(frozen=True)
class _Entry:
    prefix: IPv4Network
    protocol: str
    active: bool
    preference: int | None
    hops: tuple[_Hop, ...]


def _elements(device: str, parent: dict[str, object], key: str, where: str) -> list[dict[str, object]]:
    """The list-of-objects every Junos element is; absent is an empty list."""
    raw = parent.get(key, [])
    if not isinstance(raw, list):
        fail(device, f"{where} {key} is not a list")
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            fail(device, f"{where} {key} {index} is not an object")
    return raw


def _leaf(device: str, parent: dict[str, object], key: str, where: str) -> str | None:
    """The text of a leaf element, None when it is absent or an empty tag."""
    items = _elements(device, parent, key, where)
    if not items:
        return None
    if len(items) != 1:
        fail(device, f"{where} has {len(items)} {key} values")
    data = items[0].get("data")
    if data is None or data == [None]:
        return None
    if not isinstance(data, str):
        fail(device, f"{where} {key} is not text: {snippet(repr(data))}")
    return data


def _flag(device: str, parent: dict[str, object], key: str, where: str) -> bool:
    """An empty XML tag used as a marker: present or not."""
    items = _elements(device, parent, key, where)
    for item in items:
        if item.get("data", [None]) != [None]:
            fail(device, f"{where} {key} carries a value: {snippet(repr(item.get('data')))}")
    return bool(items)


def _object(device: str, parent: dict[str, object], key: str, where: str) -> dict[str, object]:
    items = _elements(device, parent, key, where)
    if len(items) != 1:
        fail(device, f"{where} has {len(items)} {key} elements, expected one")
    return items[0]


def _prefix(device: str, rt: dict[str, object], where: str) -> IPv4Network:
    destination = _leaf(device, rt, "rt-destination", where)
    if destination is None:
        fail(device, f"{where} has no rt-destination")
    # Brief style writes `A.B.C.D/M`; detail and extensive split the length out.
    length = _leaf(device, rt, "rt-prefix-length", where)
    if length is not None:
        if "/" in destination or not length.isdigit():
            fail(device, f"{where} has destination {snippet(destination)} and length {snippet(length)}")
        destination = f"{destination}/{length}"
    return ipv4_network(device, destination, f"{where} destination")


def _preference(device: str, entry: dict[str, object], where: str) -> int | None:
    text = _leaf(device, entry, "preference", where)
    if text is None:
        return None
    # isdigit first: int() would also take "+5", " 5" and "٥".
    if not (text.isascii() and text.isdigit()) or int(text) > _MAX_PREFERENCE:
        fail(device, f"{where} preference is not a number: {snippet(text)}")
    return int(text)


def _active(device: str, entry: dict[str, object], where: str) -> bool:
    tag = _leaf(device, entry, "active-tag", where)
    if tag is None or not tag.strip():
        return False
    if tag not in _ACTIVE_TAGS:
        # `@`/`#` (routing-only, forwarding-only) say something this row cannot.
        fail(device, f"{where} has unknown active-tag {snippet(tag)}")
    return _ACTIVE_TAGS[tag]


def _hop(device: str, nh: dict[str, object], where: str) -> _Hop:
    to = _leaf(device, nh, "to", where)
    # Discard, reject, local and interface-only next hops have no `to`.
    address = None if to is None else ipv4_address(device, to, f"{where} to")
    return _Hop(address, _flag(device, nh, "selected-next-hop", where))


def _entry(device: str, prefix: IPv4Network, raw: dict[str, object], where: str) -> _Entry:
    name = _leaf(device, raw, "protocol-name", where)
    if not name:
        fail(device, f"{where} has no protocol-name")
    return _Entry(
        prefix=prefix,
        protocol=_PROTOCOLS.get(name, name.lower()),
        active=_active(device, raw, where),
        preference=_preference(device, raw, where),
        hops=tuple(
            _hop(device, nh, f"{where} nh {i}")
            for i, nh in enumerate(_elements(device, raw, "nh", where))
        ),
    )


def _strip_banner(text: str) -> str:
    lines = text.rstrip().splitlines()
    while lines and _BANNER.match(lines[-1].strip()):
        lines.pop()
    return "\n".join(lines)


def _raise_if_junos_error(device: str, text: str) -> None:
    for line in text.splitlines():
        stripped = line.strip()
        if _JUNOS_ERROR.match(stripped):
            fail(device, f"device replied with an error: {snippet(stripped)}")


def _entries(device: str, text: str) -> list[_Entry]:
    _raise_if_junos_error(device, text)
    doc = load_json(device, _strip_banner(text), "show route")
    if not isinstance(doc, dict):
        fail(device, f"show route JSON is a {type(doc).__name__}, not an object")
    if "route-information" not in doc:
        fail(device, "show route JSON has no route-information")
    info = _object(device, doc, "route-information", "document")
    entries: list[_Entry] = []
    unicast_table: str | None = None
    for t, table in enumerate(_elements(device, info, "route-table", "route-information")):
        name = _leaf(device, table, "table-name", f"route-table {t}")
        if name is None:
            fail(device, f"route-table {t} has no table-name")
        if not _IPV4_UNICAST_TABLE.match(name):
            continue
        if unicast_table is not None and unicast_table != name:
            fail(device, f"output covers more than one routing table ({unicast_table}, {name})")
        unicast_table = name
        for r, rt in enumerate(_elements(device, table, "rt", f"table {name}")):
            prefix = _prefix(device, rt, f"table {name} rt {r}")
            raw_entries = _elements(device, rt, "rt-entry", f"route {prefix}")
            if not raw_entries:
                fail(device, f"route {prefix} has no rt-entry")
            entries.extend(
                _entry(device, prefix, raw, f"route {prefix} entry {e}") for e, raw in enumerate(raw_entries)
            )
    return entries


def parse_routes_json(device: str, text: str) -> list[StaticRoute]:
    """One row per (rt-entry, next hop with an address), in output order.

    `selected`: the entry is Junos' active route for the destination.
    `installed`: selected, and this is a next hop Junos forwards over.
    No route at all (`show route X exact` for an absent X) is an empty list.
    """
    return [
        StaticRoute(
            prefix=entry.prefix,
            next_hop=hop.address,
            selected=entry.active,
            installed=entry.active and hop.selected,
            protocol=entry.protocol,
            distance=entry.preference,
        )
        for entry in _entries(device, text)
        for hop in entry.hops
        if hop.address is not None
    ]


def fib_next_hops_json(device: str, text: str, prefix: IPv4Network) -> set[IPv4Address]:
    """Addresses the forwarding table sends exactly `prefix` to, whichever protocol won."""
    return {
        hop.address
        for entry in _entries(device, text)
        if entry.prefix == prefix and entry.active
        for hop in entry.hops
        if hop.selected and hop.address is not None
    }
