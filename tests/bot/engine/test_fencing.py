"""An automatic move changes a router only while its leader's term leads: the store fences the change
as it becomes 'applying'. A fenced change ends 'failed' with the router untouched; people's moves
are not fenced (any instance runs them, under the router lock)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fakes import inventory_from_text
from support.memory import INVENTORY, KINDS, Rig, memory_rig

from bot.engine.model import MoveRequest
from bot.leader import NotLeader
from bot.state import StateStore


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    driver, extra = KINDS["frr"]
    r = memory_rig(inventory_from_text(tmp_path, INVENTORY.format(driver=driver, extra=extra)), tmp_path,
                   {"www-a": "web1"})
    yield r
    r.close()


def auto(to: str = "web2") -> MoveRequest:
    return MoveRequest(kind="service", target="www-a", actor="lasthop", source="auto", to_host=to,
                       reason="web1 down: lasthop moves www-a automatically")


def take(store: StateStore, instance: str) -> int:
    seat = store.seat()
    assert seat.acquire()
    term = store.take_leadership(instance, seat)
    seat.release()  # the SQLite fence checks the term only; the seat is not needed for these tests
    return term


def test_the_leading_term_moves(rig: Rig) -> None:
    term = take(rig.store, "a")
    rig.engine.auto_fence = lambda: term
    outcome = rig.engine.execute(rig.engine.plan(auto()), allow_risky=True)
    assert outcome.status == "done", outcome.lines
    assert rig.routers["r1"].commands and rig.serving("www-a") == {"web2"}


def test_a_stale_term_touches_nothing_and_the_change_fails(rig: Rig) -> None:
    old = take(rig.store, "a")
    take(rig.store, "b")
    rig.engine.auto_fence = lambda: old
    outcome = rig.engine.execute(rig.engine.plan(auto()), allow_risky=True)
    assert outcome.status == "refused"
    assert any("no longer leads" in line for line in outcome.lines)
    assert rig.routers["r1"].commands == []
    assert rig.serving("www-a") == {"web1"}
    assert outcome.change_id is not None
    change = rig.store.get_change(outcome.change_id)
    assert change is not None and change.status == "failed" and "no longer leads" in change.error


def test_an_instance_that_does_not_lead_touches_nothing(rig: Rig) -> None:
    def not_leading() -> int:
        raise NotLeader(None)

    rig.engine.auto_fence = not_leading
    outcome = rig.engine.execute(rig.engine.plan(auto()), allow_risky=True)
    assert outcome.status == "refused"
    assert rig.routers["r1"].commands == [] and rig.serving("www-a") == {"web1"}


def test_a_persons_move_is_not_fenced(rig: Rig) -> None:
    def not_leading() -> int:
        raise NotLeader(None)

    rig.engine.auto_fence = not_leading
    person = MoveRequest(kind="service", target="www-a", actor="alice", source="cli", to_host="web2")
    assert rig.engine.execute(rig.engine.plan(person), allow_risky=True).status == "done"
    assert rig.serving("www-a") == {"web2"}
