"""Arista EOS configuration lines for moving a static route, built from typed values only.

Pure functions: the EOS driver sends these. Every value that reaches a line is
an `ipaddress` object, a validated int, or a session name checked against
`SESSION_NAME`, so nothing a user typed can be injected.

Configuration sessions (Arista EOS User Manual, "Configure Session"; napalm's
EOS driver uses the same commands for its commit-confirm):

* `configure session NAME` enters (or creates) a named session; nothing takes
  effect until it is committed. Inside it, `abort` discards the session.
* `commit timer HH:MM:SS`, inside the session, commits it and rolls it back
  by itself when the timer runs out unless confirmed.
* From exec mode, `configure session NAME commit` confirms a pending timer
  commit, and `configure session NAME abort` rolls it back at once.
* An uncommitted session is discarded after 24 hours, so timers here stay
  under a day (napalm formats the timer with `%H:%M:%S`, which wraps at 24h).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network

from bot.drivers import route_lines
from bot.drivers.base import RouteMove

__all__ = [
    "ABORT",
    "MAX_COMMIT_TIMER_SECONDS",
    "MAX_SESSION_NAME",
    "SESSION_NAME",
    "abort_pending",
    "change_lines",
    "commit_timer",
    "configure_session",
    "confirm_pending",
    "no_route_line",
    "route_line",
    "session_name",
    "session_pending_timer",
]

MAX_COMMIT_TIMER_SECONDS = 24 * 3600 - 1
MAX_SESSION_NAME = 48
SESSION_NAME = re.compile(rf"^[A-Za-z0-9_-]{{1,{MAX_SESSION_NAME}}}$")
ABORT = "abort"

_PREFIX = "lasthop-"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_DIGEST = 8


def route_line(prefix: IPv4Network, next_hop: IPv4Address) -> str:
    # EOS takes a word after the prefix as an interface name, so only an
    # address object may stand there.
    route_lines.require_route(prefix, next_hop, "route_line takes an IPv4Network and an IPv4Address")
    return f"ip route {prefix.with_prefixlen} {next_hop}"


def no_route_line(prefix: IPv4Network, next_hop: IPv4Address) -> str:
    """Remove only the route via `next_hop`; other next hops of the prefix stay."""
    return "no " + route_line(prefix, next_hop)


def session_name(change_id: str) -> str:
    """A configure-session name for a change: `lasthop-<id>`, safe and bounded.

    An id that is not already safe and short gets a digest of the whole id
    appended, so two ids that clean up to the same text ("a b", "a/b") still
    name different sessions.
    """
    if not isinstance(change_id, str):
        raise TypeError("session_name takes the change id as a str")
    if not change_id:
        raise ValueError("session_name needs a non-empty change id")
    name = _PREFIX + change_id
    if SESSION_NAME.match(name):
        return name
    digest = hashlib.sha256(change_id.encode()).hexdigest()[:_DIGEST]
    cleaned = _UNSAFE.sub("-", change_id).strip("-")
    room = MAX_SESSION_NAME - len(_PREFIX) - len(digest) - 1
    return f"{_PREFIX}{cleaned[:room]}-{digest}" if cleaned else f"{_PREFIX}{digest}"


def _checked_session(name: str) -> str:
    if not isinstance(name, str) or not SESSION_NAME.match(name):
        raise ValueError(f"not a safe configure-session name: {name!r}")
    return name


def configure_session(name: str) -> str:
    return f"configure session {_checked_session(name)}"


def confirm_pending(name: str) -> str:
    """From exec mode: keep a change committed with `commit timer`."""
    return f"configure session {_checked_session(name)} commit"


def abort_pending(name: str) -> str:
    """From exec mode: roll back a pending `commit timer` change now."""
    return f"configure session {_checked_session(name)} abort"


def commit_timer(seconds: int) -> str:
    # bool is an int subclass: `True` seconds is a caller bug, not 1.
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise TypeError("commit_timer takes whole seconds as an int")
    if not 1 <= seconds <= MAX_COMMIT_TIMER_SECONDS:
        raise ValueError(f"EOS commit timer takes 1..{MAX_COMMIT_TIMER_SECONDS} seconds, not {seconds}")
    hours, rest = divmod(seconds, 3600)
    return f"commit timer {hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def change_lines(moves: Sequence[RouteMove]) -> list[str]:
    """EOS lines for `moves`: every add, then every remove (`route_lines.change_lines`)."""
    return route_lines.change_lines(moves, route_line, no_route_line)


def session_pending_timer(sessions: str, name: str) -> bool:
    """Whether `show configuration sessions` lists session `name` as waiting on its commit timer."""
    row = re.compile(rf"^\W*{re.escape(name)}\s+(?P<state>\S+)", re.M)
    return any("timer" in m["state"].lower() for m in row.finditer(sessions))
