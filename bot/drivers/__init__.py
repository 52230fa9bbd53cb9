"""Device drivers: one file per router kind behind `RouterDriver`, plus the host verifier."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.drivers.base import DeviceSpec, RouteMove, RouterDriver, StaticRoute, Transcript
from bot.drivers.errors import DriverError

ROUTER_KINDS = ("frr", "cisco_ios", "linux")


def make_router_driver(kind: str, spec: DeviceSpec, **options: Any) -> RouterDriver:
    """The driver for `kind`; a new dialect adds a file and a line here."""
    if kind == "frr":
        from bot.drivers.frr import FrrDriver

        return FrrDriver(spec)
    if kind == "cisco_ios":
        from bot.drivers.cisco_ios import CiscoIosDriver

        return CiscoIosDriver(spec, revert=bool(options.get("revert", False)))
    if kind == "linux":
        from bot.drivers.linux import LinuxDriver

        return LinuxDriver(spec)
    raise DriverError(spec.name, f"unknown router driver {kind!r} (known: {', '.join(ROUTER_KINDS)})")


def change_commands(kind: str, moves: Sequence[RouteMove]) -> list[str]:
    """The exact lines a change sends, for showing in a plan before anything runs."""
    if kind == "linux":
        from bot.drivers.linux import replace_line

        return [replace_line(m.prefix, m.new) for m in moves]
    if kind == "frr":
        from bot.drivers.frr import route_line
    elif kind == "cisco_ios":
        from bot.drivers.cisco_ios import route_line
    else:
        raise ValueError(f"unknown router driver {kind!r}")
    adds = [route_line(m.prefix, m.new) for m in moves]
    removes = ["no " + route_line(m.prefix, m.old) for m in moves if m.old is not None and m.old != m.new]
    return ["configure terminal", *adds, "end", "configure terminal", *removes, "end"]


SAVE_COMMANDS = {"frr": ["write memory"], "cisco_ios": ["write memory"]}  # what each driver's save_config sends


def save_commands(kind: str) -> list[str]:
    """The lines that save a router's configuration after a change; none for a kind with nothing to save."""
    return list(SAVE_COMMANDS.get(kind, []))


__all__ = [
    "ROUTER_KINDS",
    "DeviceSpec",
    "DriverError",
    "RouteMove",
    "RouterDriver",
    "StaticRoute",
    "Transcript",
    "change_commands",
    "make_router_driver",
    "save_commands",
]
