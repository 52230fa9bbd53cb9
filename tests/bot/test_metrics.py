"""bot.metrics, read as Prometheus does: through the HTTP /metrics endpoint."""

from __future__ import annotations

import http.client
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import Metrics
from bot.web import make_server, serve_in_background

SINCE = datetime(2030, 1, 2, 5, 2, 11, tzinfo=UTC)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]  # (name, labels) -> value
Scrape = Callable[[], Samples]


@pytest.fixture
def scrape() -> Iterator[tuple[Metrics, Scrape]]:
    metrics = Metrics()
    server = make_server("127.0.0.1", 0, metrics, lambda: True, {}, read_timeout=2.0)
    serve_in_background(server)
    port = int(server.server_address[1])

    def get() -> Samples:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            assert resp.status == 200
            body = resp.read().decode()
        finally:
            conn.close()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(body) for s in family.samples}

    yield metrics, get
    server.shutdown()
    server.server_close()


def leader_samples(samples: Samples) -> dict[str, float]:
    return {name: value for (name, labels), value in samples.items()
            if name.startswith("lasthop_leader") and labels == (("instance", "lasthop-b"),)}


def test_promotion_and_demotion_show_on_the_metrics_endpoint(scrape: tuple[Metrics, Scrape]) -> None:
    metrics, get = scrape
    assert leader_samples(get()) == {}  # nothing said before the daemon decides

    metrics.set_leadership("lasthop-b", True, 7, SINCE)
    assert leader_samples(get()) == {"lasthop_leader": 1.0, "lasthop_leader_term": 7.0,
                                     "lasthop_leader_since_seconds": SINCE.timestamp()}

    metrics.set_leadership("lasthop-b", False, None, None)
    assert leader_samples(get()) == {"lasthop_leader": 0.0, "lasthop_leader_term": 0.0,
                                     "lasthop_leader_since_seconds": 0.0}


def test_a_follower_never_reports_a_term_even_if_given_one(scrape: tuple[Metrics, Scrape]) -> None:
    metrics, get = scrape
    metrics.set_leadership("lasthop-b", False, 7, SINCE)  # demoted from term 7: the term is no longer ours
    assert leader_samples(get()) == {"lasthop_leader": 0.0, "lasthop_leader_term": 0.0,
                                     "lasthop_leader_since_seconds": 0.0}


def test_a_term_s_end_drops_the_leader_s_health_drift_and_incident_series(scrape: tuple[Metrics, Scrape]) -> None:
    metrics, get = scrape
    metrics.set_health("www-a", "web1", "down")
    metrics.drift.labels("www-a").set(1)
    metrics.incidents_open.set(2)
    assert get()[("lasthop_health", (("host", "web1"), ("service", "www-a")))] == 0.0
    metrics.forget_leaders_view()
    after = get()
    assert not [k for k in after if k[0] in ("lasthop_health", "lasthop_drift")]
    assert after[("lasthop_incidents_open", ())] == 0.0
