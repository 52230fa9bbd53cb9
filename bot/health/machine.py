"""The per-target health state machine, as in ExaBGP's healthcheck: pure, no I/O, no clock.

One machine per (service, host). It turns a stream of one-shot check results into
the states of `Health`, so that one lost packet never moves a route: a target is
FALLING (still serving, re-checked fast) before it is DOWN, and RISING before it is
UP again. Time is always passed in, which keeps every rule testable without sleeping.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

from bot.health.state import Health

# (service, host); a check of a VIP through the router uses (service, "@vip").
TargetKey = tuple[str, str]

_IN_DOUBT = frozenset({Health.INIT, Health.FALLING, Health.RISING})
_UP_SIDE = frozenset({Health.UP, Health.FALLING})
_DOWN_SIDE = frozenset({Health.DOWN, Health.RISING})


@dataclass(frozen=True)
class Transition:
    key: TargetKey
    old: Health
    new: Health
    at: float
    detail: str


class HealthMachine:
    """Health of one target. Counters count results *in a row* and restart at every state change."""

    def __init__(self, key: TargetKey, *, fall: int, rise: int, flap_window: float = 300.0) -> None:
        if fall < 1 or rise < 1:
            raise ValueError(f"{key[0]}/{key[1]}: fall and rise must be at least 1 (got fall={fall}, rise={rise})")
        if flap_window <= 0:
            raise ValueError(f"{key[0]}/{key[1]}: flap_window must be positive (got {flap_window:g})")
        self.key = key
        self.fall = fall
        self.rise = rise
        self.flap_window = flap_window
        self.state = Health.INIT
        self.fails = 0
        self.passes = 0
        self.last_change: float | None = None
        self.last_detail = ""
        # Only changes that cross between serving (UP, FALLING) and not serving (DOWN, RISING):
        # those are what a flapping target does to its route; pruned to flap_window.
        self.changes: collections.deque[float] = collections.deque()

    def observe(self, ok: bool, detail: str, now: float) -> Transition | None:
        """Feed one check result; the Transition if the state changed, else None."""
        if self.state is Health.DISABLED:
            # Maintenance: a result that was already in flight when the target was disabled is not news.
            return None
        self.last_detail = detail
        new = self._after_pass() if ok else self._after_fail()
        return self._move(new, now, detail) if new is not self.state else None

    def _after_pass(self) -> Health:
        # Only INIT and RISING count passes: in UP there is nothing to count towards, and
        # FALLING and DOWN change state on the first pass.
        self.fails = 0
        match self.state:
            case Health.INIT | Health.RISING:
                self.passes += 1
                return Health.UP if self.passes >= self.rise else self.state
            case Health.DOWN:
                return Health.UP if self.rise == 1 else Health.RISING
            case Health.FALLING:
                # A blip: back to UP without waiting for `rise` passes, because it never went down.
                return Health.UP
            case _:
                return self.state

    def _after_fail(self) -> Health:
        self.passes = 0
        match self.state:
            case Health.INIT | Health.FALLING:
                self.fails += 1
                return Health.DOWN if self.fails >= self.fall else self.state
            case Health.UP:
                return Health.DOWN if self.fall == 1 else Health.FALLING
            case Health.RISING:
                # Not yet trusted: one failure is enough to be down again.
                return Health.DOWN
            case _:
                return self.state

    def disable(self, now: float, detail: str = "maintenance") -> Transition | None:
        if self.state is Health.DISABLED:
            return None
        return self._move(Health.DISABLED, now, detail)

    def enable(self, now: float) -> Transition | None:
        """DISABLED -> INIT: after maintenance nothing is known, so the target must earn UP again."""
        if self.state is not Health.DISABLED:
            return None
        return self._move(Health.INIT, now, "maintenance over")

    def in_doubt(self) -> bool:
        return self.state in _IN_DOUBT

    def next_delay(self, interval: float, fast_interval: float, took: float = 0.0) -> float:
        """Seconds until the next check: fast while in doubt, so a verdict comes quickly either way.

        In doubt, `fast_interval` runs from the start of the check that just ended (`took` seconds
        ago): a check that timed out has already waited its time-out, so the next one starts at once
        rather than a time-out plus a fast interval later. A link that died is confirmed that much
        sooner, and a host that only refuses is re-checked as before.
        """
        if self.in_doubt():
            return max(0.0, fast_interval - max(0.0, took))
        return interval

    def flaps(self, now: float) -> int:
        """How many times the target went from serving to down or back within flap_window before `now`."""
        self._prune(now)
        return len(self.changes)

    def _move(self, new: Health, now: float, detail: str) -> Transition:
        old = self.state
        self.state = new
        self.fails = 0
        self.passes = 0
        # The counter that caused the change restarts at one in the new state: UP's first
        # failure is FALLING's first failure, DOWN's first pass is RISING's first pass.
        if old is Health.UP and new is Health.FALLING:
            self.fails = 1
        elif old is Health.DOWN and new is Health.RISING:
            self.passes = 1
        self.last_change = now
        if (old in _UP_SIDE and new is Health.DOWN) or (old in _DOWN_SIDE and new is Health.UP):
            self.changes.append(now)
        self._prune(now)
        return Transition(self.key, old, new, now, detail)

    def _prune(self, now: float) -> None:
        while self.changes and self.changes[0] <= now - self.flap_window:
            self.changes.popleft()
