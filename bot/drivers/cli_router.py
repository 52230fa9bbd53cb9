"""Make-before-break over a Cisco-like configuration CLI, shared by IOS and FRR.

Both dialects take `ip route ...` / `no ip route ...` in `configure terminal`;
they differ only in how a route is written and how the table is read.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network

from bot.drivers.base import DeviceSpec, RouteMove, RouterDriver, Transcript
from bot.drivers.cli_session import CliSession
from bot.drivers.parsers.static_config import parse_static_config


class CliRouterDriver(RouterDriver):
    def __init__(self, spec: DeviceSpec) -> None:
        super().__init__(spec)
        self.cli = CliSession(spec, "cisco_ios")
        self._enter_next: str | None = None

    @abstractmethod
    def route_line(self, prefix: IPv4Network, next_hop: IPv4Address) -> str:
        """The configuration line for one static route, built from typed values only."""

    def configured_routes(self) -> set[tuple[IPv4Network, IPv4Address]]:
        """(prefix, next hop) of every configured static, installed or not."""
        out = self.cli.show("show running-config | include ^ip route")
        return parse_static_config(self.name, out)

    def _configure(self, lines: list[str], transcript: Transcript) -> None:
        enter = self._enter_next or "configure terminal"
        self._enter_next = None
        self.cli.configure(lines, transcript, enter=enter)

    def _apply(self, moves: Sequence[RouteMove], transcript: Transcript, confirm_timeout: float) -> None:
        configured = self.configured_routes()
        # Adding a route that exists is skipped, so a retried or reversed move is harmless.
        adds = [self.route_line(m.prefix, m.new) for m in moves if (m.prefix, m.new) not in configured]
        if adds:
            self._configure(adds, transcript)
        # Make before break: the old route stays until the new next hop is in the FIB.
        for m in moves:
            self.wait_for_fib(m.prefix, m.new, exact=False, timeout=confirm_timeout)
        removes = [
            "no " + self.route_line(m.prefix, m.old)
            for m in moves
            if m.old is not None and m.old != m.new and (m.prefix, m.old) in configured
        ]
        if removes or self._enter_next:
            self._configure(removes, transcript)

    def close(self) -> None:
        self.cli.close()
