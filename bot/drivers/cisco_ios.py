"""Cisco IOS / IOS-XE through netmiko's `cisco_ios` device type.

Routes are written in IOS's mask form (`ip route A.B.C.D M.M.M.M NH`), which
FRR's vtysh also accepts, so the lab's FRR router exercises this change path.
Where the router has the archive feature configured, a change can be made under
`configure terminal revert timer N`: if lasthop dies before `configure confirm`,
the router puts the old configuration back by itself.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from bot.drivers.base import DeviceSpec, StaticRoute, Transcript
from bot.drivers.cli_router import CliRouterDriver
from bot.drivers.errors import DriverError
from bot.drivers.parsers.ios import parse_show_ip_route

MAX_REVERT_MINUTES = 120


def route_line(prefix: IPv4Network, next_hop: IPv4Address) -> str:
    if not isinstance(prefix, IPv4Network) or not isinstance(next_hop, IPv4Address):
        raise TypeError("route_line takes an IPv4Network and an IPv4Address")
    return f"ip route {prefix.network_address} {prefix.netmask} {next_hop}"


class CiscoIosDriver(CliRouterDriver):
    kind = "cisco_ios"
    supports_save = True

    def __init__(self, spec: DeviceSpec, *, revert: bool = False) -> None:
        super().__init__(spec)
        # Off by default: the timer needs `archive` configured on the router.
        self.supports_revert = revert
        self._armed = False

    def route_line(self, prefix: IPv4Network, next_hop: IPv4Address) -> str:
        return route_line(prefix, next_hop)

    def _static(self) -> list[StaticRoute]:
        out = self.cli.show("show ip route static")
        return [r for r in parse_show_ip_route(self.name, out) if r.protocol == "static"]

    def get_static_routes(self) -> list[StaticRoute]:
        return self._static()

    def fib_next_hops(self, prefix: IPv4Network) -> set[IPv4Address]:
        # IOS lists only the routes it uses; a static beaten by another protocol is
        # absent here, which correctly reads as "not pointing where we want".
        return {r.next_hop for r in self._static() if r.prefix == prefix and r.installed}

    def _arm_revert(self, minutes: int, transcript: Transcript) -> None:
        if not 1 <= minutes <= MAX_REVERT_MINUTES:
            raise DriverError(self.name, f"revert timer must be 1-{MAX_REVERT_MINUTES} minutes")
        self._enter_next = f"configure terminal revert timer {int(minutes)}"
        self._armed = True

    def confirm(self) -> Transcript:
        transcript = Transcript(self.name)
        if self._armed:
            self.cli.exec_line("configure confirm", transcript)
            self._armed = False
        return transcript

    def save_config(self) -> Transcript:
        transcript = Transcript(self.name)
        self.cli.exec_line("write memory", transcript, expect="[OK]")
        return transcript
