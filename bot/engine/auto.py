"""Automatic failover: whether lasthop moves a service by itself, decided from state passed in.

Pure apart from its own move history, so that every guardrail can be tested alone.
Each refusal is a "hold" whose reason is written for the alert, so the person reading
it knows why nothing moved and what to type instead. The guardrails, in order:

1. auto failover is off (in the policy, or for the service; switched at run time by
   `set_auto`, which starts from the inventory's choice);
2. self-partition: too many hosts failing at once, or a router unreachable, means the
   likeliest broken thing is lasthop's own network, and a move would make it worse;
3. the active host is flapping: moving on every flap would flap the route too;
4. the move cap: after `max_moves` automatic moves in `window`, a human decides;
5. no target that is UP for the service, out of maintenance and not flapping (the
   target is chosen by `bot.engine.targets.choose_target`, the rule every move uses).

Only a "move" carries a MoveRequest; it still goes through the whole pipeline (plan,
risk, live pre-check, verify, rollback). The caller calls `record_move` when it queues
one and `settle` when it has run: the cap and the target's load must see a move from the
moment it is decided, since the next decision may come while the first is still running.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from typing import Literal

from bot.durations import format_duration
from bot.engine.model import MoveRequest
from bot.engine.targets import choose_target
from bot.health.state import Health
from bot.inventory import Inventory, Service

AutoAction = Literal["move", "hold", "none"]
HealthMap = Mapping[tuple[str, str], Health]
FROM_HEALTHY = "moves_from_healthy_host"  # the risk rule every fail-back meets
FAILBACK_CONSENT = "policy auto_failover.failback"


@dataclass(frozen=True)
class AutoDecision:
    action: AutoAction
    service: str
    reason: str
    request: MoveRequest | None = None
    # A hold because automatic failover is simply off: the normal case, which the alert's own
    # buttons already answer, so it is not worth a line in the incident's thread.
    routine: bool = False
    # A hold because the active host flaps: it stays true for every flap of the episode, so it
    # is worth saying once per episode, not on each flap.
    flapping: bool = False


class AutoPolicy:
    """Decides automatic moves; remembers the ones queued (timestamps on its clock) for the cap."""

    def __init__(self, inv: Inventory, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._inv = inv
        self._clock = clock
        # Written by whoever queues a move (the writer thread) and whoever settles it (the
        # mover), read by the next decision: hence the lock.
        self._history = threading.Lock()
        self._moves: deque[tuple[float, str]] = deque()
        self._going: dict[str, str] = {}  # service -> target, for moves decided and not yet settled
        # Who is switched on now: the inventory's choice (the policy's master switch and each
        # service's) until someone flips it with `set_auto`.
        self._switch = threading.Lock()
        auto = inv.policy.auto_failover.enabled
        self._on = {s.name for s in inv.services.values() if auto and s.auto_failover}

    def auto_on(self) -> list[str]:
        """The services lasthop moves by itself now, in inventory order."""
        with self._switch:
            return [name for name in self._inv.services if name in self._on]

    def set_auto(self, on: bool, service: str | None = None) -> list[str]:
        """Switch automatic failover for every service (None) or one; returns `auto_on()` after."""
        if service is not None and service not in self._inv.services:
            raise KeyError(service)
        names = set(self._inv.services) if service is None else {service}
        with self._switch:
            self._on = self._on | names if on else self._on - names
        return self.auto_on()

    def set_on(self, names: list[str]) -> None:
        """Exactly these services on (the shared switch as the store has it); unknown names are ignored."""
        with self._switch:
            self._on = {name for name in names if name in self._inv.services}

    def is_on(self, service: str) -> bool:
        with self._switch:
            return service in self._on

    def decide(
        self,
        service: str,
        *,
        health: HealthMap,
        serving: Mapping[str, str | None],
        flapping: AbstractSet[str],
        maintenance: AbstractSet[str],
        routers_down: AbstractSet[str] = frozenset(),
    ) -> AutoDecision:
        """Move `service` away from its active host if that host is DOWN for it and every guardrail allows."""
        svc = self._inv.services[service]
        active = serving.get(service)
        if active is None:
            # No single known next hop: that is drift for a human, not a failure to fail over from.
            return AutoDecision("none", service, f"who serves {service} is unknown")
        if health.get((service, active)) is not Health.DOWN:
            return AutoDecision("none", service, f"{active} is not down for {service}")

        if (off := self._off(svc)) is not None:
            return off
        if (partition := self._partition(service, health, routers_down)) is not None:
            return partition
        if active in flapping:
            return AutoDecision(
                "hold", service,
                f"{active} is flapping: lasthop does not move {service} automatically until it is stable",
                flapping=True,
            )
        if (cap := self._cap(service)) is not None:
            return cap
        with self._history:
            after = {**serving, **self._going}
        load = Counter(h for s, h in after.items() if s != service and h is not None)
        choice = choose_target(
            self._inv, service, health=health, serving=serving, maintenance=maintenance, flapping=flapping,
            exclude={active}, load=load,
        )
        if choice.host is None:
            why = f" ({choice.why_none})" if choice.why_none else ""
            return AutoDecision("hold", service, f"no healthy host to take {service}{why}")
        reason = "; ".join((f"{active} down: lasthop moves {service} to {choice.host} automatically", *choice.notes))
        return AutoDecision("move", service, reason, self._request(service, choice.host, reason))

    def failback(
        self,
        service: str,
        *,
        health: HealthMap,
        serving: Mapping[str, str | None],
        healthy_since: Mapping[str, float],
        maintenance: AbstractSet[str],
        flapping: AbstractSet[str] = frozenset(),
        routers_down: AbstractSet[str] = frozenset(),
    ) -> AutoDecision:
        """Move `service` back to its first-choice host once that host has been UP for `hold_down`.

        `healthy_since`: host -> when (on this policy's clock) it last became UP.
        Waiting is "none" (nothing is wrong); a guardrail that blocks a due failback is "hold".
        """
        auto = self._inv.policy.auto_failover
        svc = self._inv.services[service]
        if not (auto.failback and self.is_on(svc.name)):
            return AutoDecision("none", service, f"automatic failback is off for {service}")
        home = svc.hosts[0]
        active = serving.get(service)
        if active is None:
            return AutoDecision("none", service, f"who serves {service} is unknown")
        if active == home:
            return AutoDecision("none", service, f"{service} is already on {home}")
        if health.get((service, home)) is not Health.UP or home in maintenance or home in flapping:
            return AutoDecision("none", service, f"{home} is not ready to take {service} back")
        since = healthy_since.get(home)
        now = self._clock()
        if since is None or now - since < auto.hold_down:
            healthy = "not known" if since is None else f"only {format_duration(round(max(now - since, 0)))}"
            return AutoDecision(
                "none", service,
                f"{home} has been healthy for {healthy}; {service} goes back after {format_duration(auto.hold_down)}",
            )
        if (partition := self._partition(service, health, routers_down)) is not None:
            return partition
        if (cap := self._cap(service)) is not None:
            return cap
        reason = f"{home} healthy for {format_duration(auto.hold_down)}: lasthop moves {service} back to it"
        # A fail-back always moves from a healthy host; switching failback on is the operator's
        # standing consent to that one risk, and to no other.
        request = replace(self._request(service, home, reason), accepts=frozenset({FROM_HEALTHY}),
                          accepted_by=FAILBACK_CONSENT)
        return AutoDecision("move", service, reason, request)

    def record_move(self, service: str, at: float | None = None, *, to_host: str | None = None) -> None:
        """Count one automatic move (queued now, or at `at` on this policy's clock) against the cap.

        `to_host`: where it goes, counted as serving it for later choices until `settle`.
        """
        with self._history:
            self._moves.append((self._clock() if at is None else at, service))
            if to_host is not None:
                self._going[service] = to_host

    def settle(self, service: str, *, changed: bool) -> None:
        """The queued move of `service` has ended; one that changed nothing gives its count back."""
        with self._history:
            self._going.pop(service, None)
            if changed:
                return
            for i in range(len(self._moves) - 1, -1, -1):
                if self._moves[i][1] == service:
                    del self._moves[i]
                    return

    def recent_moves(self, now: float | None = None) -> int:
        """Automatic moves within the policy's window before `now`."""
        return len(self._recent(self._clock() if now is None else now))

    # ---------------------------------------------------------------- guards

    def _off(self, svc: Service) -> AutoDecision | None:
        if self.is_on(svc.name):
            return None
        return AutoDecision(
            "hold", svc.name, f"automatic failover is off for {svc.name}: suggested lasthop failover {svc.name}",
            routine=True,
        )

    def _partition(self, service: str, health: HealthMap, routers_down: AbstractSet[str]) -> AutoDecision | None:
        if routers_down:
            names = ", ".join(sorted(routers_down))
            return AutoDecision(
                "hold", service,
                f"router {names} unreachable: lasthop suspects its own network and moves nothing",
            )
        # In doubt counts as failing: hosts cut off together are seen failing a check apart, not at once.
        failing = (Health.DOWN, Health.FALLING)
        failed = {host for (_, host), state in health.items() if state in failing and host in self._inv.hosts}
        total = len(self._inv.hosts)
        if total and len(failed) / total > self._inv.policy.auto_failover.partition_threshold:
            return AutoDecision(
                "hold", service,
                f"{len(failed)} of {total} hosts failed at once: lasthop suspects its own network and moves nothing",
            )
        return None

    def _cap(self, service: str) -> AutoDecision | None:
        auto = self._inv.policy.auto_failover
        recent = self._recent(self._clock())
        # max_moves is "at most this many per window": the move that would exceed it waits.
        if len(recent) < auto.max_moves:
            return None
        return AutoDecision(
            "hold", service,
            f"{len(recent)} automatic move{'' if len(recent) == 1 else 's'} in the last "
            f"{format_duration(auto.window)}: waiting for a human",
        )

    def _recent(self, now: float) -> list[tuple[float, str]]:
        window = self._inv.policy.auto_failover.window
        with self._history:
            while self._moves and self._moves[0][0] <= now - window:
                self._moves.popleft()
            return [m for m in self._moves if m[0] <= now]

    # --------------------------------------------------------------- request

    @staticmethod
    def _request(service: str, to_host: str, reason: str) -> MoveRequest:
        return MoveRequest(
            kind="service", target=service, actor="lasthop", source="auto", to_host=to_host, reason=reason
        )
