"""Prometheus metrics of one lasthop process, in their own registry (tests make several)."""

from __future__ import annotations

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

    def set_health(self, service: str, host: str, state: str) -> None:
        self.health.labels(service, host).set(HEALTH_VALUE.get(state, -1.0))

    def set_leadership(self, instance: str, leading: bool, term: int | None, since: object) -> None:
        """Placeholder until the leadership gauges land."""

    def render(self) -> bytes:
        return generate_latest(self.registry)
