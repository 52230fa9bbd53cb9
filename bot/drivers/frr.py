"""FRRouting over SSH, with vtysh as the login shell.

Reads use FRR's JSON (`show ip route ... json`), so nothing is screen-scraped.
Routes are changed only through staticd: a route written into the kernel
behind zebra's back is imported as a kernel route that beats the static one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from ipaddress import IPv4Address, IPv4Network
from typing import Literal

from bot.drivers.base import ExecLine, StaticRoute, Step, Transcript
from bot.drivers.cli_router import CliRouterDriver
from bot.drivers.cli_session import ERROR_PATTERN
from bot.drivers.errors import DriverError
from bot.drivers.options import DriverOptions
from bot.drivers.parsers.frr import fib_next_hops_json, parse_routes_json
from bot.drivers.route_lines import require_route

# vtysh's integrated save (FRR 8, vtysh.c vtysh_write_config_integrated) prints this once the file
# is written and closed, warnings or not; `[OK]` follows only when there was no warning at all.
SAVED = "Integrated configuration saved to "
# Printed, and `[OK]` left out, when the file was written but could not be given to frr:frr, which
# is always the case when a non-root member of frr/frrvty saves: vtysh creates a new file, owned by
# that user, and only root may chown it. The saved configuration is complete. Anything else with a
# `%` (`% Error: failed to open configuration file`, `% Warning: fsync() failed`, so not known to
# be on disk) is a failed save.
SAVE_WARNINGS = r"% Warning: can't (chown|chmod) configuration file "
# vtysh hands each configuration line to the daemon that owns it. When that daemon is down (staticd
# crashed, or was never started), vtysh says so without a `%` and drops the line (FRR 8.4, vtysh.c
# vtysh_execute_func): `staticd is not running`. The line was not taken, so it is a refusal.
NOT_RUNNING = r"^\s*\S+ is not running\s*$"
# Where static routes live: staticd holds them, zebra installs them. vtysh's `write memory` saves
# what the daemons it reaches tell it, so with staticd down it writes (and says it saved) a file
# without a single static route, which FRR's next start would load.
ROUTE_DAEMONS = ("zebra", "staticd")


# Prefixes inside one /24 (or a longer covering prefix) are read together, with `show ip route
# COVER longer-prefixes json`: its entries for each prefix are those `show ip route P json` gives
# (zebra prints both with the same per-route code), every protocol's, installed or not. A cover
# no shorter than /24 keeps the reply small on a router with a full table; a prefix shorter than
# that is read on its own.
GROUP_COVER = 24


def covers(prefixes: Sequence[IPv4Network]) -> list[tuple[IPv4Network | None, list[IPv4Network]]]:
    """The prefixes grouped by the covering prefix to read them with (None: read each alone)."""
    groups: dict[IPv4Network, list[IPv4Network]] = {}
    alone: list[IPv4Network] = []
    for p in dict.fromkeys(prefixes):
        if p.prefixlen < GROUP_COVER:
            alone.append(p)
        else:
            groups.setdefault(p.supernet(new_prefix=GROUP_COVER), []).append(p)
    out: list[tuple[IPv4Network | None, list[IPv4Network]]] = [(None, [p]) for p in alone]
    for members in groups.values():
        if len(members) == 1:
            out.append((None, members))
            continue
        cover = members[0]
        while not all(m.subnet_of(cover) for m in members):
            cover = cover.supernet()
        out.append((cover, members))
    return out


def route_line(prefix: IPv4Network, next_hop: IPv4Address) -> str:
    # FRR takes a word after the prefix as an interface name and saves it silently,
    # so only an address object may ever stand there.
    require_route(prefix, next_hop, "route_line takes an IPv4Network and an IPv4Address")
    return f"ip route {prefix.with_prefixlen} {next_hop}"


class FrrOptions(DriverOptions):
    """FRR."""

    driver: Literal["frr"]


class FrrDriver(CliRouterDriver):
    kind = "frr"
    options = FrrOptions
    saves = True

    route_line = staticmethod(route_line)
    config_refusal = rf"{ERROR_PATTERN}|{NOT_RUNNING}"

    @classmethod
    def _save_steps(cls) -> list[Step]:
        return [ExecLine("write memory", expect=SAVED, warnings=SAVE_WARNINGS)]

    def save_config(self) -> Transcript:
        """`write memory`, only while every daemon of ROUTE_DAEMONS answers vtysh (`show daemons`)."""
        # `show daemons` lists the daemons vtysh is connected to, and vtysh finds a dead one only when
        # it next talks to it: so talk to staticd first, in this very session.
        self.cli.show("show running-config staticd")
        answering = set(self.cli.show("show daemons").split())
        missing = [d for d in ROUTE_DAEMONS if d not in answering]
        if missing:
            raise DriverError(self.name, f"not saved: {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                                         "not running, and `write memory` would save a configuration without "
                                         "its static routes")
        return super().save_config()

    def get_static_routes(self) -> list[StaticRoute]:
        out = self.cli.show("show ip route static json")
        return [r for r in parse_routes_json(self.name, out) if r.protocol == "static"]

    def fib_next_hops(self, prefix: IPv4Network) -> set[IPv4Address]:
        out = self.cli.show(f"show ip route {prefix.with_prefixlen} json")
        return fib_next_hops_json(self.name, out, prefix)

    def fib_next_hops_many(self, prefixes: Sequence[IPv4Network]) -> dict[IPv4Network, set[IPv4Address]]:
        """One read per covering prefix (`covers`) rather than one per prefix."""
        hops: dict[IPv4Network, set[IPv4Address]] = {}
        for cover, members in covers(prefixes):
            if cover is None:
                hops.update((p, self.fib_next_hops(p)) for p in members)
                continue
            out = self.cli.show(f"show ip route {cover.with_prefixlen} longer-prefixes json")
            hops.update((p, fib_next_hops_json(self.name, out, p)) for p in members)
        return {p: hops[p] for p in prefixes}

    def wait_for_fibs(self, wants: Mapping[IPv4Network, IPv4Address | set[IPv4Address]], *,
                      timeout: float = 10.0, exact: bool = True) -> None:
        # What FRR's wait reads is the FIB itself, so the prefixes can be polled together.
        self._wait_together(wants, timeout=timeout, exact=exact)
