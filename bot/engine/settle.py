"""What becomes of a change a dead process left in flight: a pure judgement over the live router.

The change record knows the intended end state (every prefix's old and new next hop), so a
router found part-way is explained by it: each prefix shows its old next hop, its new one, or
both (a make-before-break cut between the add and the remove). Such a change is finished if
its targets still pass their live pre-check, and otherwise undone; only a router showing
something no part of the change explains is a question for a person.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Literal

from bot.drivers import RouteMove

PrefixState = Literal["old", "new", "both", "other"]
Verdict = Literal["done", "rolled_back", "failed", "half_done", "unexplained"]
Outcome = Literal["done", "rolled_back", "failed", "needs_human", "open"]  # open: left for a later pass


def prefix_state(move: RouteMove, live: set[IPv4Address] | frozenset[IPv4Address]) -> PrefixState:
    """Where one prefix of the change stands on the router."""
    old = {move.old} if move.old is not None else set()
    if live == old:
        return "old"
    if live == {move.new}:
        return "new"
    if move.old is not None and live == {move.old, move.new}:
        return "both"
    return "other"


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    text: str


def _hops(live: set[IPv4Address] | frozenset[IPv4Address]) -> str:
    return ", ".join(map(str, sorted(live))) or "no route"


def judge(status: str, routes: Sequence[RouteMove], live: Mapping[IPv4Network, set[IPv4Address]], *,
          pending: bool = False) -> Judgement:
    """The verdict on a change in `status`, given each prefix's live next hops and whether the
    router holds a commit on its revert timer (which would undo the change by itself later)."""
    if status == "planned":
        # `applying` is written before the first line goes out: nothing of this one was sent.
        return Judgement("failed", "it never reached the router")
    states = {m.prefix: prefix_state(m, live[m.prefix]) for m in routes}
    strange = [m for m in routes if states[m.prefix] == "other"]
    if strange:
        m = strange[0]
        expected = f"{m.old} or {m.new}" if m.old is not None else f"{m.new} or no route"
        return Judgement("unexplained", f"the router shows {_hops(live[m.prefix])} for {m.prefix}, which no "
                                        f"lasthop change explains (this one expects {expected})")
    if not pending and all(s == "new" for s in states.values()):
        return Judgement("done", "the router shows every new next hop: finished")
    if not pending and all(s == "old" for s in states.values()):
        return Judgement("rolled_back", "the router still shows the old next hops: it never took effect")
    both = [str(p) for p, s in states.items() if s == "both"]
    parts = []
    if both:
        parts.append(f"{', '.join(both)} {'has' if len(both) == 1 else 'have'} both the old and the new next hop")
    if pending:
        parts.append("a commit waits on the router's revert timer")
    if not parts:
        parts.append("some prefixes moved and some did not")
    return Judgement("half_done", "half done: " + "; ".join(parts))


@dataclass(frozen=True)
class Settlement:
    """One change found in flight, and what reconcile made of it."""

    change_id: str
    router: str
    before: str  # the status it was found in
    outcome: Outcome
    text: str
    services: tuple[str, ...] = ()
    busy: bool = False  # its router's lock is held: a live process is at it, nothing to tell


    def __str__(self) -> str:
        where = f"change {self.change_id[:8]} on {self.router}"
        if self.outcome == "open":
            return f"{where}: {self.text}; left open"
        return f"{where} ({self.before}): {self.text}"

    @property
    def news(self) -> bool:
        """Worth telling people: it changed the change's status (or asks for a person)."""
        return self.outcome != "open"
