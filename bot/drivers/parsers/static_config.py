"""Static routes as configured (running-config lines), in FRR's and IOS's forms.

The routing table is not enough to know what is configured: FRR keeps a static
whose next hop does not resolve out of zebra entirely, so it appears in no
`show ip route`; removing it still needs the exact configured line.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network

from bot.drivers.parsers._common import fail, raise_if_device_error, snippet

# `ip route 198.51.100.32/27 192.0.2.2 [distance]` (FRR) or
# `ip route 198.51.100.32 255.255.255.224 192.0.2.2 [distance] [name X]` (IOS, and FRR accepts it).
_LINE = re.compile(
    r"^ip route (?P<net>\d+\.\d+\.\d+\.\d+)(?:/(?P<len>\d+)| (?P<mask>\d+\.\d+\.\d+\.\d+))"
    r" (?P<hop>\S+)(?: .*)?$"
)


def parse_static_config(device: str, text: str) -> set[tuple[IPv4Network, IPv4Address]]:
    """(prefix, next hop) of every `ip route` line with an address next hop.

    Interface-only and blackhole routes are not next hops lasthop manages and are left out.
    """
    raise_if_device_error(device, text)
    out: set[tuple[IPv4Network, IPv4Address]] = set()
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith("ip route "):
            continue
        m = _LINE.match(line)
        if m is None:
            fail(device, f"unreadable static route line {snippet(line)}")
        try:
            suffix = m["len"] if m["len"] is not None else m["mask"]
            net = IPv4Network(f"{m['net']}/{suffix}")
        except ValueError:
            fail(device, f"bad prefix in static route line {snippet(line)}")
        try:
            hop = IPv4Address(m["hop"])
        except ValueError:
            continue  # an interface name or Null0: not a next hop lasthop moves
        out.add((net, hop))
    return out
