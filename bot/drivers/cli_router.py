"""Make-before-break over a Cisco-like configuration CLI, shared by IOS and FRR.

Both dialects take `ip route ...` / `no ip route ...` in `configure terminal`;
they differ only in how a route is written, how the table is read, and whether
the device can revert a change by itself.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network
from typing import ClassVar

from bot.drivers.base import ConfigBlock, DeviceSpec, ExecLine, RouterDriver, Step, Transcript, WaitFib
from bot.drivers.cli_session import ERROR_PATTERN, CliSession
from bot.drivers.parsers.static_config import parse_static_config

ENTER = "configure terminal"


class CliRouterDriver(RouterDriver):
    # The reply lines that refuse a configuration line: `% ...` in both dialects; FRR adds its own.
    config_refusal: ClassVar[str] = ERROR_PATTERN

    def __init__(self, spec: DeviceSpec, *, revert_seconds: int | None = None) -> None:
        super().__init__(spec, revert_seconds=revert_seconds)
        self.cli = CliSession(spec, "cisco_ios", refused=self.config_refusal)

    @staticmethod
    @abstractmethod
    def route_line(prefix: IPv4Network, next_hop: IPv4Address) -> str:
        """The configuration line for one static route, built from typed values only."""

    @classmethod
    def _enter_armed(cls, revert_seconds: int) -> str:
        """The command that enters configuration mode under the device's revert timer."""
        raise NotImplementedError(f"the {cls.kind} driver has no device-side revert")

    @classmethod
    def _steps(cls, adds: Sequence[tuple[IPv4Network, IPv4Address]],
               removes: Sequence[tuple[IPv4Network, IPv4Address]],
               waits: Sequence[tuple[IPv4Network, IPv4Address]], revert_seconds: int | None) -> list[Step]:
        blocks = [[cls.route_line(p, h) for p, h in adds], ["no " + cls.route_line(p, h) for p, h in removes]]
        steps: list[Step] = []
        armed = revert_seconds is None
        for i, lines in enumerate(blocks):
            if i == 1 and waits:
                steps.append(WaitFib(tuple((p, frozenset({h})) for p, h in waits)))
            if lines:
                steps.append(ConfigBlock(ENTER, tuple(lines)) if armed
                             else ConfigBlock(cls._enter_armed(revert_seconds or 0), tuple(lines), arms=True))
                armed = True
        return steps

    def configured(self) -> set[tuple[IPv4Network, IPv4Address]]:
        """(prefix, next hop) of every configured static, installed or not."""
        out = self.cli.show("show running-config | include ^ip route")
        return parse_static_config(self.name, out)

    def _send(self, step: ConfigBlock | ExecLine, transcript: Transcript) -> None:
        if isinstance(step, ConfigBlock):
            self.cli.configure(step.lines, transcript, enter=step.enter, leave=step.leave)
        else:
            self.cli.exec_line(step.command, transcript, expect=step.expect, warnings=step.warnings)

    def close(self) -> None:
        self.cli.close()
