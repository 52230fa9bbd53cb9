"""Cisco IOS / IOS-XE through netmiko's `cisco_ios` device type.

Routes are written in IOS's mask form (`ip route A.B.C.D M.M.M.M NH`), which
FRR's vtysh also accepts, so the lab's FRR router exercises this change path.
Where the router has the archive feature configured, a change can be made under
`configure terminal revert timer N`: if lasthop dies before `configure confirm`,
the router puts the old configuration back by itself.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Literal

from bot.drivers.base import ExecLine, RevertSupport, StaticRoute, Step
from bot.drivers.cli_router import ENTER, CliRouterDriver
from bot.drivers.errors import CommandRejected
from bot.drivers.options import RevertOptions
from bot.drivers.parsers.ios import NO_ROLLBACK_PENDING, ROLLBACK_TIMER, parse_show_ip_route, rollback_timer_pending
from bot.drivers.route_lines import require_route

MAX_REVERT_MINUTES = 120


def route_line(prefix: IPv4Network, next_hop: IPv4Address) -> str:
    require_route(prefix, next_hop, "route_line takes an IPv4Network and an IPv4Address")
    return f"ip route {prefix.network_address} {prefix.netmask} {next_hop}"


class CiscoIosOptions(RevertOptions):
    """Cisco IOS: `revert_timer` arms `configure terminal revert timer`."""

    driver: Literal["cisco_ios"]


class CiscoIosDriver(CliRouterDriver):
    kind = "cisco_ios"
    options = CiscoIosOptions
    saves = True
    # `configure terminal revert timer <1-120>` in minutes; it needs `archive` configured on the router.
    revert_support = RevertSupport(60, MAX_REVERT_MINUTES * 60, step_seconds=60)

    route_line = staticmethod(route_line)

    @classmethod
    def _enter_armed(cls, revert_seconds: int) -> str:
        return f"{ENTER} revert timer {revert_seconds // 60}"

    @classmethod
    def _confirm_steps(cls) -> list[Step]:
        return [ExecLine("configure confirm")]

    @classmethod
    def _cancel_steps(cls) -> list[Step]:
        # Puts the archived configuration back at once and cancels the timer, so nothing
        # reverts later, after lasthop has rolled back and moved on.
        return [ExecLine("configure revert now")]

    @classmethod
    def _save_steps(cls) -> list[Step]:
        return [ExecLine("write memory", expect="[OK]")]

    def _device_pending(self) -> bool:
        try:
            out = self.cli.show(ROLLBACK_TIMER)
        except CommandRejected as e:
            if NO_ROLLBACK_PENDING in e.reply:
                return False
            raise
        return rollback_timer_pending(self.name, out)

    def _static(self) -> list[StaticRoute]:
        out = self.cli.show("show ip route static")
        return [r for r in parse_show_ip_route(self.name, out) if r.protocol == "static"]

    def get_static_routes(self) -> list[StaticRoute]:
        return self._static()

    def fib_next_hops(self, prefix: IPv4Network) -> set[IPv4Address]:
        # IOS lists only the routes it uses; a static beaten by another protocol is
        # absent here, which correctly reads as "not pointing where we want".
        return {r.next_hop for r in self._static() if r.prefix == prefix and r.installed}
