"""Prometheus metrics of one lasthop process, in their own registry (tests make several)."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

HEALTH_VALUE = {"up": 1.0, "falling": 0.5, "rising": 0.5, "init": -1.0, "down": 0.0, "disabled": -2.0}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.health = Gauge(
            "lasthop_health", "Health per service and host: 1 up, 0.5 in doubt, 0 down, -1 unknown, -2 maintenance",
            ["service", "host"], registry=r,
        )
        self.check_seconds = Histogram(
            "lasthop_check_seconds", "Duration of one health check", ["kind"], registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
        )
        self.lateness = Histogram(
            "lasthop_scheduler_lateness_seconds", "How late a check started against its schedule", registry=r,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
        )
        self.incidents_open = Gauge("lasthop_incidents_open", "Incidents currently open", registry=r)
        self.moves = Counter("lasthop_moves", "Moves by outcome and kind", ["outcome", "kind"], registry=r)
        self.move_seconds = Histogram(
            "lasthop_move_seconds", "Duration of a move from pre-check to verified", ["kind"], registry=r,
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
        )
        self.drift = Gauge("lasthop_drift", "1 if the router differs from what lasthop expects", ["service"],
                           registry=r)

        # Labelled by instance so that the series of several instances, scraped together, stay apart.
        self.leader = Gauge("lasthop_leader", "1 while this instance leads (runs checks and moves), else 0",
                            ["instance"], registry=r)
        self.leader_term = Gauge("lasthop_leader_term", "The term (fencing token) this instance leads with, 0 if none",
                                 ["instance"], registry=r)
        self.leader_since = Gauge("lasthop_leader_since_seconds",
                                  "Unix time this instance became leader, 0 while it does not lead",
                                  ["instance"], registry=r)

    def set_leadership(self, instance: str, leading: bool, term: int | None, since: datetime | None) -> None:
        """On promotion (True, its term, when) and demotion (False, None, None). Ordered so that a
        scrape between the calls never sees lasthop_leader 1 beside another term's numbers."""
        term_value = float(term) if leading and term is not None else 0.0
        since_value = since.timestamp() if leading and since is not None else 0.0
        if not leading:
            self.leader.labels(instance).set(0.0)
        self.leader_term.labels(instance).set(term_value)
        self.leader_since.labels(instance).set(since_value)
        if leading:
            self.leader.labels(instance).set(1.0)

    def forget_leaders_view(self) -> None:
        """A term ended: health, drift and open incidents are the leader's to report, and a follower's
        last values would be stale beside the new leader's. Its series go until it leads again."""
        self.health.clear()
        self.drift.clear()
        self.incidents_open.set(0)

    def set_health(self, service: str, host: str, state: str) -> None:
        self.health.labels(service, host).set(HEALTH_VALUE.get(state, -1.0))

    def render(self) -> bytes:
        return generate_latest(self.registry)
