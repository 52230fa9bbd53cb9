"""Incidents from health transitions: one per outage, said once, surviving a restart."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from support.fakes import ManualClock as Clock
from support.fakes import inventory_from_text
from support.lan import THREE_HOSTS as INVENTORY

from bot.health.machine import Transition
from bot.health.state import Health
from bot.incidents import IncidentTracker, IncidentUpdate
from bot.inventory import Inventory
from bot.state import StateStore
from bot.values import replace

SERVING: Mapping[str, str | None] = {"www-a": "web1", "www-b": "web2", "www-d": "web3"}
D, U = Health.DOWN, Health.UP


@pytest.fixture
def inv(tmp_path: Path) -> Inventory:
    return inventory_from_text(tmp_path, INVENTORY)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore(f"sqlite:///{tmp_path}/s.db") as s:
        yield s


@pytest.fixture
def clock() -> Clock:
    return Clock(5000.0)


@pytest.fixture
def tracker(store: StateStore, inv: Inventory, clock: Clock) -> IncidentTracker:
    return IncidentTracker(store, inv, clock=clock)


def down(service: str, host: str, *, old: Health = Health.FALLING, detail: str = "") -> Transition:
    return Transition((service, host), old, D, 0.0, detail)


def up(service: str, host: str, *, old: Health = Health.RISING) -> Transition:
    return Transition((service, host), old, U, 0.0, "ok")


def feed(
    tracker: IncidentTracker, *ts: Transition, serving: Mapping[str, str | None] = SERVING
) -> list[IncidentUpdate]:
    out: list[IncidentUpdate] = []
    for t in ts:
        out.extend(tracker.on_transition(t, serving=serving))
    return out


# ----------------------------------------------------------------- one host


def test_every_failing_service_of_a_host_is_one_incident_with_each_service_an_event(
    tracker: IncidentTracker, store: StateStore
) -> None:
    (opened,) = feed(tracker, down("www-a", "web1"))
    assert (opened.kind, opened.key, opened.title) == ("opened", "host:web1", "web1 is down")
    assert opened.text == "web1 is down for www-a"
    assert (opened.event.kind, opened.event.member) == ("down", "host:web1")
    assert opened.event.data["failing"] == ["www-a"] and opened.event.data["serving"] == {"www-a": "web1"}

    (updated,) = feed(tracker, down("www-b", "web1"))
    assert (updated.kind, updated.incident_id, updated.key) == ("updated", opened.incident_id, "host:web1")
    assert updated.text == "web1 is down for www-a and www-b"
    assert updated.event.data["failing"] == ["www-a", "www-b"]

    (incident,) = store.open_incidents()
    assert (incident.id, incident.key) == (opened.incident_id, "host:web1")
    assert [e.text for e in incident.events] == [opened.text, updated.text]


def test_a_target_already_down_is_not_news_again(tracker: IncidentTracker) -> None:
    feed(tracker, down("www-a", "web1"))
    # DOWN -> RISING -> DOWN: never came back, already said.
    assert feed(tracker, Transition(("www-a", "web1"), D, Health.RISING, 0.0, "ok"), down("www-a", "web1")) == []
    assert feed(tracker, Transition(("www-b", "web1"), U, Health.FALLING, 0.0, "timeout")) == []


def test_the_text_says_what_failed_and_the_data_says_who_serves_what(tracker: IncidentTracker) -> None:
    serving = {"www-a": "web1", "www-b": None, "www-d": "web1"}
    (first,) = feed(tracker, down("www-b", "web1", detail="connect timeout after 2s"), serving=serving)
    assert first.text == "web1 is down for www-b (www-b: connect timeout after 2s)"
    feed(tracker, down("www-a", "web1"), serving=serving)
    (last,) = feed(tracker, down("www-d", "web1", detail="<!channel> refused"), serving=serving)
    assert last.text == "web1 is down for www-a, www-b and www-d (www-d: &lt;!channel&gt; refused)"
    assert last.event.data["serving"] == {"www-a": "web1", "www-b": None, "www-d": "web1"}


def test_the_host_back_up_for_all_its_services_resolves_its_incident(
    tracker: IncidentTracker, store: StateStore
) -> None:
    (opened,) = feed(tracker, down("www-a", "web1"), down("www-b", "web1"))[:1]
    (partial,) = feed(tracker, up("www-a", "web1"))
    assert (partial.kind, partial.text) == ("updated", "www-a back on web1; web1 is still down for www-b")
    (resolved,) = feed(tracker, up("www-b", "web1"))
    assert (resolved.kind, resolved.incident_id, resolved.key) == ("resolved", opened.incident_id, "host:web1")
    assert resolved.text.startswith("web1 is back up; all clear after ")
    assert (resolved.event.kind, resolved.event.member, resolved.event.data["failing"]) == ("resolved", "host:web1", [])
    assert store.open_incidents() == []
    # Down again later: a new incident.
    (again,) = feed(tracker, down("www-a", "web1"))
    assert again.kind == "opened" and again.incident_id != opened.incident_id


def test_maintenance_silences_a_down_host_and_the_checks_after_it_say_it_recovered(
    tracker: IncidentTracker, store: StateStore
) -> None:
    """The known gap: alerted DOWN, put in maintenance, found UP afterwards must be said recovered."""
    (opened,) = feed(tracker, down("www-a", "web1"), down("www-b", "web1"))[:1]
    (on,) = feed(tracker, Transition(("www-a", "web1"), D, Health.DISABLED, 0.0, "maintenance"))
    assert (on.kind, on.event.kind) == ("updated", "maintenance_on")
    assert on.text == "web1 is in maintenance: its alerts are silenced and nothing moves to it"
    # Its other services say the same thing: not said twice.
    assert feed(tracker, Transition(("www-b", "web1"), D, Health.DISABLED, 0.0, "maintenance")) == []
    assert [i.id for i in store.open_incidents()] == [opened.incident_id]  # not over: web1 serves nothing
    (off,) = feed(tracker, Transition(("www-a", "web1"), Health.DISABLED, Health.INIT, 0.0, "maintenance over"),
                  Transition(("www-b", "web1"), Health.DISABLED, Health.INIT, 0.0, "maintenance over"))
    assert off.text == "web1 is out of maintenance: checking it again"
    (partial,) = feed(tracker, up("www-a", "web1", old=Health.INIT))
    assert partial.text == "www-a back on web1; web1 is still down for www-b"
    (resolved,) = feed(tracker, up("www-b", "web1", old=Health.INIT))
    assert resolved.kind == "resolved" and resolved.text.startswith("web1 is back up after maintenance; all clear")
    assert store.open_incidents() == []


def test_a_host_still_down_after_maintenance_is_said_so_once(tracker: IncidentTracker) -> None:
    feed(tracker, down("www-a", "web1"), down("www-b", "web1"))
    for service in ("www-a", "www-b"):
        feed(tracker, Transition((service, "web1"), D, Health.DISABLED, 0.0, "maintenance"))
    for service in ("www-a", "www-b"):
        feed(tracker, Transition((service, "web1"), Health.DISABLED, Health.INIT, 0.0, "maintenance over"))
    (still,) = feed(tracker, down("www-a", "web1", old=Health.INIT))
    assert (still.event.kind, still.text) == ("still_down", "web1 is still down after maintenance (www-a and www-b)")
    assert feed(tracker, down("www-b", "web1", old=Health.INIT)) == []


def test_planned_maintenance_of_a_healthy_host_is_no_incident(tracker: IncidentTracker, store: StateStore) -> None:
    assert feed(tracker, Transition(("www-a", "web1"), U, Health.DISABLED, 0.0, "maintenance"),
                Transition(("www-a", "web1"), Health.DISABLED, Health.INIT, 0.0, "maintenance over"),
                up("www-a", "web1", old=Health.INIT)) == []
    assert store.open_incidents() == []


def test_the_first_to_acknowledge_is_recorded_and_later_ones_are_told_who(tracker: IncidentTracker) -> None:
    (opened,) = feed(tracker, down("www-a", "web1"))
    update, already = tracker.acknowledge(opened.incident_id, "slack:U0ALICE")
    assert update is not None and already == ""
    assert (update.event.kind, update.event.data, update.text) == ("ack", {"by": "slack:U0ALICE"},
                                                                   "<@U0ALICE> is on it (acknowledged)")
    assert tracker.acknowledge(opened.incident_id, "slack:U0BOB") == (None, "slack:U0ALICE")
    view = tracker.view(opened.incident_id)
    assert view is not None and view.acked_by == "slack:U0ALICE"
    assert tracker.acknowledge(424242, "slack:U0BOB") == (None, "")


def test_a_move_of_an_affected_service_goes_into_its_incident(tracker: IncidentTracker, inv: Inventory) -> None:
    from bot.engine.model import MoveRequest, Outcome, Plan, PlannedMove

    (opened,) = feed(tracker, down("www-a", "web1"))
    feed(tracker, down("www-b", "web2"))  # joins: within the group window
    req = MoveRequest("service", "www-a", "slack:U0BOB", "slack", to_host="web3")
    move = PlannedMove("www-a", "r1", inv.services["www-a"].prefix, "web1", inv.hosts["web1"].address, "web3",
                       inv.hosts["web3"].address, inv.services["www-a"].vips)
    outcome = Outcome("done", Plan(req, (move,), ("www-a: web1 -> web3",)), timings_ms={"total_ms": 812},
                      approved_by="slack:U0CAROL")
    (update,) = tracker.record_move(outcome, "approved")
    assert update.incident_id == opened.incident_id
    assert update.text == ("moved www-a web1 → web3 (<@U0BOB>, approved by <@U0CAROL>) in 0.8 s, "
                           "verified in the router's FIB")
    view = tracker.view(opened.incident_id)
    assert view is not None and view.last_move("www-a") is not None and view.last_move("www-b") is None
    # A dry run, a refusal, or a service in no incident is not news for a thread.
    assert tracker.record_move(Outcome("refused", outcome.plan), "manual") == []
    other = replace(outcome, plan=Plan(replace(req, target="www-d"),
                                                   (replace(move, service="www-d"),), ("x",)))
    assert tracker.record_move(other, "manual") == []


# ------------------------------------------------------------ several hosts


def test_hosts_failing_within_the_group_window_join_the_first_incident(
    tracker: IncidentTracker, store: StateStore, clock: Clock
) -> None:
    (first,) = feed(tracker, down("www-a", "web1"))
    clock.now += 9
    (second,) = feed(tracker, down("www-b", "web2"))
    assert (second.kind, second.incident_id, second.key) == ("updated", first.incident_id, "host:web1")
    assert second.text == "web2 is down for www-b"
    assert [i.key for i in store.open_incidents()] == ["host:web1"]
    assert tracker.incident_key(("www-a", "web2")) == "host:web1"  # where to thread news about web2
    assert tracker.incident_key(("www-a", "web3")) is None

    # web1 back: the incident stays open while web2 is down, then resolves with it.
    (u,) = feed(tracker, up("www-a", "web1"))
    assert (u.kind, u.text) == ("updated", "web1 is back up")
    (r,) = feed(tracker, up("www-b", "web2"))
    assert (r.kind, r.incident_id) == ("resolved", first.incident_id)
    assert store.open_incidents() == []


def test_a_host_failing_after_the_group_window_opens_its_own_incident(
    tracker: IncidentTracker, store: StateStore, clock: Clock
) -> None:
    feed(tracker, down("www-a", "web1"))
    clock.now += 10
    (second,) = feed(tracker, down("www-b", "web2"))
    assert (second.kind, second.key) == ("opened", "host:web2")
    assert [i.key for i in store.open_incidents()] == ["host:web1", "host:web2"]


def test_a_vip_check_failing_is_a_service_incident(tracker: IncidentTracker) -> None:
    (u,) = feed(tracker, down("www-a", "@vip"))
    assert (u.kind, u.key, u.title) == ("opened", "service:www-a", "www-a is unreachable through r1")
    assert u.text == "www-a is unreachable through r1 (VIP check); it is served by web1"
    assert u.event.member == "service:www-a" and u.event.data["failing"] == ["www-a"]
    (r,) = feed(tracker, up("www-a", "@vip"))
    assert r.kind == "resolved" and r.text.startswith("www-a is reachable again through r1")


def test_a_vip_failing_behind_a_dead_host_joins_the_host_incident_however_late(
    tracker: IncidentTracker, clock: Clock
) -> None:
    (host,) = feed(tracker, down("www-a", "web1"))
    clock.now += 60
    (vip,) = feed(tracker, down("www-a", "@vip"))
    assert (vip.kind, vip.incident_id) == ("updated", host.incident_id)
    # Resolved only when both are back.
    assert feed(tracker, up("www-a", "web1"))[0].kind == "updated"
    assert feed(tracker, up("www-a", "@vip"))[0].kind == "resolved"


def test_transitions_for_unknown_targets_are_ignored(tracker: IncidentTracker, store: StateStore) -> None:
    assert feed(tracker, down("www-z", "web1"), down("www-a", "web9")) == []
    assert store.open_incidents() == []


# ----------------------------------------------------------------- flapping


def test_a_flapping_host_is_said_once_then_silent_until_stable(
    tracker: IncidentTracker, store: StateStore, clock: Clock
) -> None:
    kinds = []
    for t in (down("www-a", "web1"), up("www-a", "web1"), down("www-a", "web1")):
        clock.now += 20
        kinds += [u.kind for u in feed(tracker, t)]
    assert kinds == ["opened", "resolved", "opened"]
    assert not tracker.is_flapping("web1")

    clock.now += 20
    (flap,) = feed(tracker, up("www-a", "web1"))
    assert flap.kind == "flapping"
    assert flap.text.startswith("web1 is flapping: 4 changes in 5m; lasthop moves nothing to or from it automatically")
    assert flap.event.data["flapping"] is True
    assert tracker.flapping() == {"web1"} and tracker.is_flapping("web1")
    (incident,) = store.open_incidents()  # held open: it is not over while it flaps
    assert incident.events[-1].text == flap.text

    for t in (down("www-a", "web1"), up("www-a", "web1")):
        clock.now += 20
        assert feed(tracker, t) == []
    assert store.open_incidents()[0].events[-1].text == flap.text

    clock.now += 299
    assert tracker.tick() == [] and tracker.is_flapping("web1")
    clock.now += 1
    (settled,) = tracker.tick()
    assert (settled.kind, settled.incident_id) == ("resolved", incident.id)
    assert settled.text.startswith("web1 is stable again and up; all clear after ")
    assert tracker.flapping() == set()
    assert store.open_incidents() == []


def test_a_host_still_down_when_it_stops_flapping_stays_open(tracker: IncidentTracker, clock: Clock) -> None:
    for t in (down("www-a", "web1"), up("www-a", "web1"), down("www-a", "web1"), up("www-a", "web1")):
        clock.now += 1
        feed(tracker, t)
    feed(tracker, down("www-a", "web1"))
    clock.now += 300
    (u,) = tracker.tick(SERVING)
    assert u.kind == "updated"
    assert u.text == "web1 is stable again and down for www-a"
    assert not tracker.is_flapping("web1")


def test_changes_spread_beyond_the_flap_window_are_not_flapping(tracker: IncidentTracker, clock: Clock) -> None:
    kinds = []
    for t in (down("www-a", "web1"), up("www-a", "web1"), down("www-a", "web1"), up("www-a", "web1")):
        clock.now += 120
        kinds += [u.kind for u in feed(tracker, t)]
    assert kinds == ["opened", "resolved", "opened", "resolved"]
    assert tracker.flapping() == set()


# ------------------------------------------------------------------ restart


def test_after_a_restart_a_host_still_down_is_not_announced_again(
    store: StateStore, inv: Inventory, clock: Clock
) -> None:
    before = IncidentTracker(store, inv, clock=clock)
    (opened,) = feed(before, down("www-a", "web1"))[:1]
    feed(before, down("www-b", "web1"))
    clock.now += 5
    feed(before, down("www-d", "web2"))  # joins web1's incident

    after = IncidentTracker(store, inv, clock=Clock(5000.0))
    after.rebuild()
    # The new process's health machines start from INIT and find the same failures.
    again = [down(s, h, old=Health.INIT) for s, h in (("www-a", "web1"), ("www-b", "web1"), ("www-d", "web2"))]
    assert feed(after, *again) == []
    assert [i.id for i in store.open_incidents()] == [opened.incident_id]

    # And it still knows who belongs to the incident: it resolves when all are back.
    assert [u.kind for u in feed(after, up("www-a", "web1", old=Health.INIT))] == ["updated"]
    assert [u.kind for u in feed(after, up("www-b", "web1", old=Health.INIT))] == ["updated"]
    (r,) = feed(after, up("www-d", "web2", old=Health.INIT))
    assert (r.kind, r.incident_id) == ("resolved", opened.incident_id)


def test_without_rebuild_a_restart_would_announce_again(store: StateStore, inv: Inventory, clock: Clock) -> None:
    feed(IncidentTracker(store, inv, clock=clock), down("www-a", "web1"), down("www-d", "web2"))
    fresh = IncidentTracker(store, inv, clock=clock)
    # The store keeps one open incident per key, so this is the same one, but it is news to a
    # tracker that did not rebuild (proves the test above depends on rebuild()).
    assert [u.kind for u in feed(fresh, down("www-a", "web1"))] == ["updated"]


def test_a_flapping_host_is_still_flapping_after_a_restart(store: StateStore, inv: Inventory, clock: Clock) -> None:
    before = IncidentTracker(store, inv, clock=clock)
    for t in (down("www-a", "web1"), up("www-a", "web1"), down("www-a", "web1"), up("www-a", "web1")):
        clock.now += 1
        feed(before, t)
    assert before.flapping() == {"web1"}

    later = Clock(5000.0)
    after = IncidentTracker(store, inv, clock=later)
    after.rebuild()
    assert after.flapping() == {"web1"}
    assert feed(after, down("www-a", "web1", old=Health.INIT)) == []
    later.now += 300
    (u,) = after.tick(SERVING)
    assert u.kind == "updated" and u.text == "web1 is stable again and down for www-a"
    assert after.flapping() == set()


def test_rebuild_replays_the_data_not_the_words(store: StateStore, inv: Inventory, clock: Clock) -> None:
    """Rewording every message must not change what a restart knows."""
    from sqlalchemy import text

    before = IncidentTracker(store, inv, clock=clock)
    (opened,) = feed(before, down("www-a", "web1"))
    feed(before, down("www-b", "web1"))
    with store._engine.begin() as conn:
        conn.execute(text("UPDATE incident_events SET text = 'reworded beyond recognition'"))
    after = IncidentTracker(store, inv, clock=Clock(5000.0))
    after.rebuild()
    assert feed(after, down("www-a", "web1", old=Health.INIT), down("www-b", "web1", old=Health.INIT)) == []
    assert [u.kind for u in feed(after, up("www-a", "web1", old=Health.INIT))] == ["updated"]
    (r,) = feed(after, up("www-b", "web1", old=Health.INIT))
    assert (r.kind, r.incident_id) == ("resolved", opened.incident_id)


def test_rebuild_leaves_incidents_it_does_not_own_alone(store: StateStore, inv: Inventory, clock: Clock) -> None:
    other = store.open_incident(key="www-a", title="opened by hand")
    tracker = IncidentTracker(store, inv, clock=clock)
    tracker.rebuild()
    assert tracker.tick() == []
    assert [i.id for i in store.open_incidents()] == [other.id]
