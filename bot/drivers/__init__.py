"""Device drivers: one file per router kind behind `RouterDriver`, plus the host verifier.

Router kinds are found, not listed: every module here that defines a `RouterDriver`
subclass with a `kind` is a driver, so a new vendor is one file (and its tests). The
registry is the only place that maps a kind's name to its class.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from functools import cache
from typing import Annotated, Any, Union

from pydantic import Field

from bot.drivers.base import DeviceSpec, RouteMove, RouterDriver, StaticRoute, Transcript
from bot.drivers.errors import DriverError


@cache
def registry() -> dict[str, type[RouterDriver]]:
    """kind -> driver class, for every driver module in this package."""
    found: dict[str, type[RouterDriver]] = {}
    for mod in pkgutil.iter_modules(__path__):
        if mod.ispkg or mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{mod.name}")
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, RouterDriver) and "kind" in vars(value)
                    and value.__module__ == module.__name__):
                if value.kind in found:
                    raise RuntimeError(f"two router drivers say they are {value.kind!r}")
                found[value.kind] = value
    return dict(sorted(found.items()))


def router_options() -> Any:
    """The options of a router entry: every driver's model, told apart by `driver` (a pydantic union)."""
    members = tuple(cls.options for cls in registry().values())
    return Annotated[Union[members], Field(discriminator="driver")]  # noqa: UP007 - built at run time


def router_kinds() -> tuple[str, ...]:
    return tuple(registry())


def driver_class(kind: str) -> type[RouterDriver]:
    try:
        return registry()[kind]
    except KeyError:
        raise ValueError(f"unknown router driver {kind!r} (known: {', '.join(registry())})") from None


def make_router_driver(kind: str, spec: DeviceSpec, *, revert_seconds: int | None = None) -> RouterDriver:
    """The driver for `kind`, talking to the router `spec` names."""
    try:
        cls = driver_class(kind)
    except ValueError as e:
        raise DriverError(spec.name, str(e)) from None
    return cls(spec, revert_seconds=revert_seconds)


def change_commands(kind: str, moves: Sequence[RouteMove], revert_seconds: int | None = None) -> list[str]:
    """The exact lines a change sends, then what confirms it: for showing in a plan before anything runs."""
    cls = driver_class(kind)
    return cls.change_lines(moves, revert_seconds) + cls.confirm_lines(revert_seconds)


def save_commands(kind: str) -> list[str]:
    """The lines that save a router's configuration after a change; none for a kind with nothing to save."""
    return driver_class(kind).save_lines()


__all__ = [
    "DeviceSpec",
    "DriverError",
    "RouteMove",
    "RouterDriver",
    "StaticRoute",
    "Transcript",
    "change_commands",
    "driver_class",
    "make_router_driver",
    "registry",
    "router_kinds",
    "router_options",
    "save_commands",
]
