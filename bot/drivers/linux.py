"""A plain Linux router over SSH: `ip -j route` to read, `ip route replace` to move.

`ip route replace` swaps a route's next hop in one netlink message, so the
prefix is never without a route: make-before-break without an ECMP window.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network

from bot.drivers.base import DeviceSpec, RouteMove, RouterDriver, StaticRoute, Transcript
from bot.drivers.errors import CommandRejected
from bot.drivers.parsers.linux import fib_next_hops_linux, parse_ip_route_json
from bot.drivers.ssh import ExecSession

# Routes the kernel or a DHCP/RA client made are not ours to move.
STATIC_PROTOCOLS = {"static", "boot"}


def replace_line(prefix: IPv4Network, next_hop: IPv4Address) -> str:
    if not isinstance(prefix, IPv4Network) or not isinstance(next_hop, IPv4Address):
        raise TypeError("replace_line takes an IPv4Network and an IPv4Address")
    return f"ip route replace {prefix.with_prefixlen} via {next_hop} proto static"


class LinuxDriver(RouterDriver):
    kind = "linux"

    def __init__(self, spec: DeviceSpec) -> None:
        super().__init__(spec)
        self.ssh = ExecSession(spec)

    def _run(self, command: str, transcript: Transcript | None = None, *, retry: bool = True) -> str:
        res = self.ssh.run(command, retry=retry)
        if transcript is not None:
            transcript.add(command, (res.stdout + res.stderr).strip(), res.seconds)
        if res.exit_status != 0:
            raise CommandRejected(self.name, command, res.stderr or res.stdout or f"exit status {res.exit_status}")
        return res.stdout

    def get_static_routes(self) -> list[StaticRoute]:
        out = self._run("ip -j -4 route show")
        return [r for r in parse_ip_route_json(self.name, out) if r.protocol in STATIC_PROTOCOLS]

    def fib_next_hops(self, prefix: IPv4Network) -> set[IPv4Address]:
        if not isinstance(prefix, IPv4Network):
            raise TypeError("fib_next_hops takes an IPv4Network")
        return fib_next_hops_linux(self.name, self._run(f"ip -j -4 route show exact {prefix.with_prefixlen}"), prefix)

    def _apply(self, moves: Sequence[RouteMove], transcript: Transcript, confirm_timeout: float) -> None:
        for m in moves:
            # Re-sending the same replace is harmless, so a lost reply can be retried.
            self._run(replace_line(m.prefix, m.new), transcript)
        for m in moves:
            self.wait_for_fib(m.prefix, m.new, timeout=confirm_timeout)

    def close(self) -> None:
        self.ssh.close()
