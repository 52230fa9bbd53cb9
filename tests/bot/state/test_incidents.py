"""Incidents: one open per key however many times an outage is noticed, with a timeline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.state import IncidentRecord, NotFound, StateStore


def test_opening_twice_returns_the_open_incident_and_resolve_closes_it(store: StateStore, clock: Any) -> None:
    opened_at = clock.now
    first = store.open_incident(key="www-a", title="www-a unreachable", severity="critical")
    assert (first.key, first.title, first.severity, first.status) == (
        "www-a",
        "www-a unreachable",
        "critical",
        "open",
    )
    assert (first.opened_at, first.resolved_at, first.events) == (opened_at, None, [])
    assert (first.channel, first.thread_ts) == ("", "")

    clock.advance(seconds=10)
    again = store.open_incident(key="www-a", title="www-a still unreachable")
    assert again == first
    other = store.open_incident(key="www-b", title="www-b slow")
    assert other.id != first.id and other.severity == "major"

    clock.advance(seconds=5)
    moved_at = clock.now
    store.add_incident_event(first.id, "moved www-a to web2", kind="move", member="",
                             data={"service": "www-a", "to": "web2"})
    store.set_incident_thread(first.id, channel="C0OPS", ts="1700000000.000200")
    clock.advance(seconds=5)
    store.add_incident_event(first.id, "web1 back")
    assert [i.key for i in store.open_incidents()] == ["www-a", "www-b"]
    (current,) = [i for i in store.open_incidents() if i.key == "www-a"]
    assert [(e.at, e.text) for e in current.events] == [
        (moved_at, "moved www-a to web2"),
        (clock.now, "web1 back"),
    ]
    assert (current.events[0].kind, current.events[0].data) == ("move", {"service": "www-a", "to": "web2"})
    assert (current.events[1].kind, current.events[1].member, current.events[1].data) == ("note", "", {})
    assert (current.channel, current.thread_ts) == ("C0OPS", "1700000000.000200")

    clock.advance(seconds=5)
    resolved = store.resolve_incident("www-a", text="all checks green")
    assert resolved is not None
    assert (resolved.id, resolved.status, resolved.resolved_at) == (first.id, "resolved", clock.now)
    assert (resolved.events[-1].at, resolved.events[-1].kind, resolved.events[-1].text) == (
        clock.now, "resolved", "all checks green")
    assert len(resolved.events) == 3
    assert [i.key for i in store.open_incidents()] == ["www-b"]
    assert store.resolve_incident("www-a") is None

    reopened = store.open_incident(key="www-a", title="www-a down again")
    assert reopened.id != first.id and reopened.status == "open" and reopened.events == []


def test_resolve_without_text_adds_no_event(store: StateStore) -> None:
    incident = store.open_incident(key="r1", title="r1 unreachable")
    store.add_incident_event(incident.id, "paged")
    resolved = store.resolve_incident("r1")
    assert resolved is not None and [e.text for e in resolved.events] == ["paged"]


def test_unknown_incident(store: StateStore) -> None:
    with pytest.raises(NotFound, match="no incident 424242"):
        store.add_incident_event(424242, "x")
    with pytest.raises(NotFound):
        store.set_incident_thread(424242, channel="C", ts="1")
    assert store.resolve_incident("nothing") is None
    assert store.open_incidents() == []


def test_concurrent_opens_of_one_outage_make_one_incident(
    store: StateStore, race: Callable[[int, Callable[[int], Any]], list[Any]]
) -> None:
    results = race(8, lambda i: store.open_incident(key="www-c", title=f"noticed by checker {i}"))
    assert all(isinstance(r, IncidentRecord) for r in results), results
    assert len({r.id for r in results}) == 1
    assert len(store.open_incidents()) == 1


def test_events_keep_their_data_and_a_secret_in_them_is_redacted(store: StateStore) -> None:
    from bot.state import register_secret

    register_secret("s3cret-token-value")
    incident = store.open_incident(key="host:web1", title="web1 is down")
    event = store.add_incident_event(incident.id, "web1 is down (www-a)", kind="down", member="host:web1",
                                     data={"failing": ["www-a"], "detail": "token s3cret-token-value refused"})
    assert event.data["failing"] == ["www-a"] and "s3cret" not in str(event.data)
    (stored,) = store.get_incident(incident.id).events  # type: ignore[union-attr]
    assert (stored.kind, stored.member, stored.data["failing"]) == ("down", "host:web1", ["www-a"])
    assert "s3cret" not in str(stored.data) and stored == event
    assert store.get_incident(999999) is None


def test_an_event_once_is_written_once_however_many_instances_race_for_it(
    open_store: Callable[..., StateStore], race: Callable[[int, Callable[[int], Any]], list[Any]],
) -> None:
    """Two people tap Acknowledge at once, on two instances: one acknowledgement, and both told whose."""
    stores = [open_store() for _ in range(4)]  # one per instance: separate connections, separate pools
    incident = stores[0].open_incident(key="host:web1", title="web1 is down")
    results = race(8, lambda i: stores[i % 4].add_incident_event_once(
        incident.id, f"acknowledged by u{i}", kind="ack", data={"by": f"u{i}"}))
    written = [r[0] for r in results if r[0] is not None]
    assert len(written) == 1, results
    winner = written[0].data["by"]
    assert all(r[1] is not None and r[1].data["by"] == winner for r in results if r[0] is None)
    record = stores[0].get_incident(incident.id)
    assert record is not None and [e.data["by"] for e in record.events if e.kind == "ack"] == [winner]


def test_an_event_once_for_an_unknown_incident_is_not_found(store: StateStore) -> None:
    with pytest.raises(NotFound):
        store.add_incident_event_once(404, "acknowledged by u1", kind="ack", data={"by": "u1"})
