"""A recording stand-in for BlockSession, shared by the Junos and EOS driver tests.

It holds a route table that route lines change only when their block commits, logs every
line and every FIB read in order, and answers `show` from canned outputs. `wired` puts a
driver over it: the driver's configuration and FIB are then that table.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network
from typing import TypeVar

from bot.drivers.base import ConfigBlock, Transcript
from bot.drivers.block_session import BlockSessionDriver
from bot.drivers.errors import CommandRejected

D = TypeVar("D", bound=BlockSessionDriver)

_ROUTE = re.compile(
    r"^(?:(?P<junos>set|delete) routing-options static route (?P<jnet>\S+) next-hop (?P<jhop>\S+)"
    r"|(?P<no>no )?ip route (?P<enet>\S+) (?P<ehop>\S+))$"
)


class RecordingBlocks:
    def __init__(self, routes: set[tuple[IPv4Network, IPv4Address]], shows: dict[str, str] | None = None) -> None:
        self.routes = set(routes)
        self.shows = dict(shows or {})
        self.events: list[str] = []
        self.refuse: set[str] = set()  # lines the device refuses
        self.pending = False  # a commit the device would undo by itself

    def send_block(self, block: ConfigBlock, transcript: Transcript) -> None:
        staged: list[tuple[bool, IPv4Network, IPv4Address]] = []
        for line in (block.enter, *block.lines, block.leave):
            self.events.append(line)
            transcript.add(line, "", 0.0)
            if line in self.refuse:
                raise CommandRejected("r1", line, "error: refused")
            if m := _ROUTE.match(line):
                remove = m["junos"] == "delete" or bool(m["no"])
                staged.append((remove, IPv4Network(m["jnet"] or m["enet"]), IPv4Address(m["jhop"] or m["ehop"])))
            elif line.startswith("commit"):
                for remove, net, hop in staged:
                    (self.routes.discard if remove else self.routes.add)((net, hop))
                staged = []
                self.pending = line.startswith(("commit confirmed", "commit timer")) or (
                    self.pending and block.enter.startswith("configure session"))

    def exec_line(self, command: str, transcript: Transcript, expect: str | None = None) -> str:
        self.events.append(command)
        transcript.add(command, "", 0.0)
        if command in self.refuse:
            raise CommandRejected("r1", command, "% refused")
        return ""

    def show(self, command: str, transcript: Transcript | None = None) -> str:
        self.events.append(f"show {command}")
        if transcript is not None:
            transcript.add(command, self.shows.get(command, ""), 0.0)
        return self.shows[command]

    def fib_next_hops(self, prefix: IPv4Network) -> set[IPv4Address]:
        """The table's next hops for `prefix`, the read logged (`fib? P`) among the lines."""
        self.events.append(f"fib? {prefix}")
        return {h for p, h in self.routes if p == prefix}

    def close(self) -> None:
        pass


def wired(driver: D, session: RecordingBlocks) -> D:
    """`driver` sending through `session`, its configuration and FIB read from the session's table."""
    driver.configured = lambda: set(session.routes)  # type: ignore[method-assign]
    driver.fib_next_hops = session.fib_next_hops  # type: ignore[method-assign]
    driver.cli = session  # type: ignore[assignment]
    return driver


def sent(events: list[str]) -> list[str]:
    return [e for e in events if not e.startswith(("fib? ", "show "))]
