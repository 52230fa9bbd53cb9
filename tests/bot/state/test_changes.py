"""Changes: their lifecycle, the ones left in flight by a dead process, and duplicate requests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.state import BadTransition, ChangeRecord, DuplicateRequest, NotFound, StateStore
from bot.state.transitions import CHANGE_TRANSITIONS

MOVE_A = {"prefix": "198.51.100.32/27", "old": "192.0.2.2", "new": "192.0.2.3"}
MOVE_B = {"prefix": "198.51.100.64/27", "old": "192.0.2.2", "new": "192.0.2.4"}


def make(store: StateStore, router: str = "r1", moves: list[dict[str, str]] | None = None, **kw: Any) -> ChangeRecord:
    return store.create_change(
        router=router, moves=[MOVE_A] if moves is None else moves, requested_by="alice", source="slack", **kw
    )


def test_change_lifecycle(store: StateStore, clock: Any) -> None:
    change = make(store, moves=[MOVE_A, MOVE_B], kind="auto")
    assert change.status == "planned"
    assert len(change.id) == 32 and int(change.id, 16) >= 0
    assert change.moves == [MOVE_A, MOVE_B]
    assert (change.router, change.kind, change.requested_by, change.source) == (
        "r1",
        "auto",
        "alice",
        "slack",
    )
    assert change.created_at == change.updated_at == clock.now
    assert change.error == "" and change.result is None and change.idempotency_key is None
    assert store.get_change(change.id) == change
    assert store.changes_in_flight() == []

    clock.advance(seconds=1)
    applying = store.set_change_status(change.id, "applying")
    assert applying.status == "applying"
    assert applying.updated_at == clock.now and applying.created_at == change.created_at
    assert [c.id for c in store.changes_in_flight()] == [change.id]

    clock.advance(seconds=1)
    store.set_change_status(change.id, "verifying")
    assert [c.status for c in store.changes_in_flight()] == ["verifying"]

    clock.advance(seconds=1)
    done = store.set_change_status(change.id, "done", result={"fib": ["192.0.2.3"], "ms": 840})
    assert done.status == "done" and done.result == {"fib": ["192.0.2.3"], "ms": 840}
    assert store.changes_in_flight() == []
    assert store.get_change(change.id) == done


def test_an_error_is_kept_until_replaced(store: StateStore) -> None:
    change = make(store)
    store.set_change_status(change.id, "applying")
    stuck = store.set_change_status(change.id, "needs_human", error="r1: FIB still shows 192.0.2.2")
    assert stuck.error == "r1: FIB still shows 192.0.2.2"
    assert store.set_change_status(change.id, "rolled_back").error == "r1: FIB still shows 192.0.2.2"
    other = make(store)
    store.set_change_status(other.id, "applying", error="first")
    assert store.set_change_status(other.id, "failed", error="gave up").error == "gave up"


# How to bring a new change to each status by allowed steps.
PATH_TO = {
    "planned": [], "applying": ["applying"], "verifying": ["applying", "verifying"],
    "needs_human": ["applying", "needs_human"], "done": ["applying", "verifying", "done"],
    "rolled_back": ["applying", "rolled_back"], "failed": ["failed"], "refused": ["refused"],
}


@pytest.mark.parametrize("new", sorted(CHANGE_TRANSITIONS))
@pytest.mark.parametrize("old", sorted(CHANGE_TRANSITIONS))
def test_each_status_leads_only_where_the_table_says(store: StateStore, old: str, new: str) -> None:
    change = make(store)
    for step in PATH_TO[old]:
        store.set_change_status(change.id, step)
    if new in CHANGE_TRANSITIONS[old]:
        assert store.set_change_status(change.id, new).status == new
    else:
        with pytest.raises(BadTransition, match=f"is {old}; it cannot become {new}"):
            store.set_change_status(change.id, new, error="should not be stored")
        kept = store.get_change(change.id)
        assert kept is not None and kept.status == old and kept.error == ""


def test_the_table_has_every_status_and_ended_ones_lead_nowhere() -> None:
    assert set(PATH_TO) == set(CHANGE_TRANSITIONS)
    assert all(after <= set(CHANGE_TRANSITIONS) for after in CHANGE_TRANSITIONS.values())
    for ended in ("done", "rolled_back", "failed", "refused"):
        assert CHANGE_TRANSITIONS[ended] == frozenset()


def test_of_two_settling_the_same_change_only_one_moves_it(open_store: Callable[..., StateStore]) -> None:
    a, b = open_store(), open_store()
    change = make(a)
    a.set_change_status(change.id, "applying")
    a.set_change_status(change.id, "done")
    with pytest.raises(BadTransition):
        b.set_change_status(change.id, "rolled_back", error="reconciled twice")
    final = b.get_change(change.id)
    assert final is not None and final.status == "done"


def test_bad_status_and_unknown_change(store: StateStore) -> None:
    change = make(store)
    with pytest.raises(ValueError, match="unknown change status 'finished'"):
        store.set_change_status(change.id, "finished")
    with pytest.raises(NotFound, match="no change nope"):
        store.set_change_status("nope", "done")
    assert store.get_change("nope") is None


def test_a_change_in_flight_when_the_process_died_is_found_at_the_next_start(
    open_store: Callable[..., StateStore],
) -> None:
    first = open_store()
    applying = make(first, router="r1")
    first.set_change_status(applying.id, "applying")
    verifying = make(first, router="r2")
    first.set_change_status(verifying.id, "applying")
    first.set_change_status(verifying.id, "verifying")
    done = make(first)
    first.set_change_status(done.id, "applying")
    first.set_change_status(done.id, "done")
    make(first)  # still planned: nothing touched a router yet
    first.close()  # the process dies; nothing else is cleaned up

    after_restart = open_store()
    assert {c.id: c.status for c in after_restart.changes_in_flight()} == {
        applying.id: "applying",
        verifying.id: "verifying",
    }


def test_a_repeated_idempotency_key_names_the_first_change(store: StateStore) -> None:
    first = make(store, idempotency_key="slack:T1:trigger-42")
    with pytest.raises(DuplicateRequest) as caught:
        make(store, router="r2", idempotency_key="slack:T1:trigger-42")
    assert caught.value.change_id == first.id
    assert first.id[:8] in str(caught.value)
    assert [c.id for c in store.recent_changes()] == [first.id]
    # No key, or another key: no conflict.
    make(store)
    make(store)
    make(store, idempotency_key="slack:T1:trigger-43")
    assert len(store.recent_changes()) == 4


def test_concurrent_requests_with_one_key_create_one_change(
    store: StateStore, race: Callable[[int, Callable[[int], Any]], list[Any]]
) -> None:
    results = race(8, lambda i: make(store, idempotency_key="double-click"))
    created = [r for r in results if isinstance(r, ChangeRecord)]
    duplicates = [r for r in results if isinstance(r, DuplicateRequest)]
    assert len(created) == 1, results
    assert len(duplicates) == 7, results
    assert {d.change_id for d in duplicates} == {created[0].id}


def test_recent_changes_newest_first_by_router_and_prefix(store: StateStore, clock: Any) -> None:
    a1 = make(store, router="r1", moves=[MOVE_A])
    clock.advance(seconds=1)
    b1 = make(store, router="r1", moves=[MOVE_B])
    clock.advance(seconds=1)
    ab2 = make(store, router="r2", moves=[MOVE_A, MOVE_B])
    clock.advance(seconds=1)
    odd = make(store, router="r2", moves=[{"prefix": "198_51_100_32/27", "old": "x", "new": "y"}])

    assert [c.id for c in store.recent_changes()] == [odd.id, ab2.id, b1.id, a1.id]
    assert [c.id for c in store.recent_changes(2)] == [odd.id, ab2.id]
    assert [c.id for c in store.recent_changes(router="r1")] == [b1.id, a1.id]
    assert [c.id for c in store.recent_changes(prefix="198.51.100.32/27")] == [ab2.id, a1.id]
    # Written differently, the same network.
    assert [c.id for c in store.recent_changes(prefix="198.51.100.33/27")] == [ab2.id, a1.id]
    assert [c.id for c in store.recent_changes(router="r2", prefix="198.51.100.64/27")] == [ab2.id]
    # LIKE wildcards in the filter are literal characters.
    assert [c.id for c in store.recent_changes(prefix="198_51_100_32/27")] == [odd.id]
    assert store.recent_changes(prefix="198.51.100.0/24") == []
    assert store.recent_changes(router="r9") == []


def test_changes_made_in_the_same_instant_keep_their_order(store: StateStore) -> None:
    # The clock does not move: order falls back to insertion order, never to the random id.
    made = [make(store, router=f"r{n}").id for n in range(6)]
    assert [c.id for c in store.recent_changes()] == made[::-1]
    for change_id in made:
        store.set_change_status(change_id, "applying")
    assert [c.id for c in store.changes_in_flight()] == made


def test_changes_for_request_finds_each_routers_change_by_the_request_key(store: StateStore) -> None:
    r1 = make(store, router="r1", idempotency_key="click_1:r1")
    r2 = make(store, router="r2", idempotency_key="click_1:r2")
    make(store, router="r1", idempotency_key="click_10:r1")  # a longer key must not match
    make(store, router="r1", idempotency_key="click%1:r1")  # LIKE wildcards in keys are literal
    assert [c.id for c in store.changes_for_request("click_1")] == [r1.id, r2.id]
    assert store.changes_for_request("nothing") == []
