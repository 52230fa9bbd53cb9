"""A plain Linux router over SSH: `ip -j route` to read, `ip route replace` to move.

`ip route replace` swaps a route's next hop in one netlink message, so the
prefix is never without a route: make-before-break without an ECMP window.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network
from typing import Literal

from bot.drivers.base import ConfigBlock, DeviceSpec, ExecLine, RouterDriver, StaticRoute, Step, Transcript, WaitFib
from bot.drivers.errors import CommandRejected, DriverError
from bot.drivers.options import DriverOptions
from bot.drivers.parsers.linux import fib_next_hops_linux, parse_ip_route_json
from bot.drivers.route_lines import require_route
from bot.drivers.ssh import ExecSession

# Routes the kernel or a DHCP/RA client made are not ours to move.
STATIC_PROTOCOLS = {"static", "boot"}


def replace_line(prefix: IPv4Network, next_hop: IPv4Address) -> str:
    require_route(prefix, next_hop, "replace_line takes an IPv4Network and an IPv4Address")
    return f"ip route replace {prefix.with_prefixlen} via {next_hop} proto static"


def delete_line(prefix: IPv4Network, next_hop: IPv4Address) -> str:
    require_route(prefix, next_hop, "delete_line takes an IPv4Network and an IPv4Address")
    return f"ip route del {prefix.with_prefixlen} via {next_hop} proto static"


class LinuxOptions(DriverOptions):
    """Linux."""

    driver: Literal["linux"]


class LinuxDriver(RouterDriver):
    kind = "linux"
    options = LinuxOptions

    def __init__(self, spec: DeviceSpec, *, revert_seconds: int | None = None) -> None:
        super().__init__(spec, revert_seconds=revert_seconds)
        self.ssh = ExecSession(spec)

    @classmethod
    def _steps(cls, adds: Sequence[tuple[IPv4Network, IPv4Address]],
               removes: Sequence[tuple[IPv4Network, IPv4Address]],
               waits: Sequence[tuple[IPv4Network, IPv4Address]], revert_seconds: int | None) -> list[Step]:
        # A replace is the add and the remove in one netlink message: the old next hop of a
        # replaced prefix goes with it, so only a prefix that gets nothing new is deleted.
        replaced = {p for p, _ in adds}
        steps: list[Step] = [ExecLine(replace_line(p, h)) for p, h in adds]
        steps += [ExecLine(delete_line(p, h)) for p, h in removes if p not in replaced]
        if waits:
            steps.append(WaitFib(tuple((p, frozenset({h})) for p, h in waits), exact=True))
        return steps

    def _run_line(self, command: str, transcript: Transcript | None = None, *, retry: bool = True) -> str:
        res = self.ssh.run(command, retry=retry)
        if transcript is not None:
            transcript.add(command, (res.stdout + res.stderr).strip(), res.seconds)
        if res.exit_status != 0:
            raise CommandRejected(self.name, command, res.stderr or res.stdout or f"exit status {res.exit_status}")
        return res.stdout

    def _send(self, step: ConfigBlock | ExecLine, transcript: Transcript) -> None:
        if isinstance(step, ConfigBlock):
            raise DriverError(self.name, "a Linux router has no configuration mode")
        # Re-sending the same replace is harmless, so a lost reply can be retried.
        self._run_line(step.command, transcript)

    def get_static_routes(self) -> list[StaticRoute]:
        out = self._run_line("ip -j -4 route show")
        return [r for r in parse_ip_route_json(self.name, out) if r.protocol in STATIC_PROTOCOLS]

    def fib_next_hops(self, prefix: IPv4Network) -> set[IPv4Address]:
        if not isinstance(prefix, IPv4Network):
            raise TypeError("fib_next_hops takes an IPv4Network")
        out = self._run_line(f"ip -j -4 route show exact {prefix.with_prefixlen}")
        return fib_next_hops_linux(self.name, out, prefix)

    def close(self) -> None:
        self.ssh.close()
