"""The notification table: each row, and that it covers everything the state machine does."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from bot.health.machine import HealthMachine, Transition
from bot.health.notify_rules import TABLE, Notice, decide
from bot.health.state import Health

IN, UP, FA, DN, RI, OFF = Health.INIT, Health.UP, Health.FALLING, Health.DOWN, Health.RISING, Health.DISABLED

# (old, new, announced: people were told this target is down and not yet told it is back) -> notice
ROWS = [
    (IN, UP, False, Notice.NONE),
    (IN, UP, True, Notice.RECOVERED),  # after maintenance or a restart: back, and people must hear it
    (IN, DN, False, Notice.DOWN),
    (IN, DN, True, Notice.STILL_DOWN),  # after maintenance: still down, not a new outage
    (UP, FA, False, Notice.NONE),
    (UP, FA, True, Notice.NONE),
    (FA, UP, False, Notice.NONE),
    (FA, UP, True, Notice.RECOVERED),
    (FA, DN, False, Notice.DOWN),
    (FA, DN, True, Notice.NONE),
    (UP, DN, False, Notice.DOWN),
    (UP, DN, True, Notice.NONE),
    (DN, RI, False, Notice.NONE),
    (DN, RI, True, Notice.NONE),
    (RI, DN, False, Notice.DOWN),
    (RI, DN, True, Notice.NONE),
    (RI, UP, True, Notice.RECOVERED),
    (RI, UP, False, Notice.NONE),
    (DN, UP, True, Notice.RECOVERED),
    (DN, UP, False, Notice.NONE),
    (IN, OFF, False, Notice.MAINTENANCE_ON),
    (IN, OFF, True, Notice.MAINTENANCE_ON),
    (UP, OFF, False, Notice.MAINTENANCE_ON),
    (UP, OFF, True, Notice.MAINTENANCE_ON),
    (FA, OFF, False, Notice.MAINTENANCE_ON),
    (FA, OFF, True, Notice.MAINTENANCE_ON),
    (DN, OFF, False, Notice.MAINTENANCE_ON),
    (DN, OFF, True, Notice.MAINTENANCE_ON),
    (RI, OFF, False, Notice.MAINTENANCE_ON),
    (RI, OFF, True, Notice.MAINTENANCE_ON),
    (OFF, IN, False, Notice.MAINTENANCE_OFF),
    (OFF, IN, True, Notice.MAINTENANCE_OFF),
]


@pytest.mark.parametrize(("old", "new", "announced", "notice"), ROWS,
                         ids=[f"{o.value}->{n.value}{'-announced' if a else ''}" for o, n, a, _ in ROWS])
def test_row(old: Health, new: Health, announced: bool, notice: Notice) -> None:
    assert TABLE[(old, new, announced)] is notice
    assert decide(Transition(("www-a", "web1"), old, new, 1.0, "x"), announced=announced) is notice


def test_rows_are_the_whole_table() -> None:
    assert len(ROWS) == len(TABLE)
    assert {(o, n, a) for o, n, a, _ in ROWS} == set(TABLE)


def test_a_pair_outside_the_table_is_no_notice() -> None:
    assert decide(Transition(("www-a", "web1"), UP, RI, 1.0, "x")) is Notice.NONE
    assert decide(Transition(("www-a", "web1"), UP, RI, 1.0, "x"), announced=True) is Notice.NONE


Action = Callable[[HealthMachine], "Transition | None"]
ACTIONS: list[Action] = [
    lambda m: m.observe(True, "ok", 0.0),
    lambda m: m.observe(False, "fail", 0.0),
    lambda m: m.disable(0.0),
    lambda m: m.enable(0.0),
]


def explore(fall: int, rise: int) -> tuple[set[Health], set[tuple[Health, Health]]]:
    """The states a machine with these settings reaches and every (old, new) it emits, found by
    applying every action to every distinct (state, fails, passes) until nothing new appears."""
    seen: set[tuple[Health, int, int]] = set()
    todo = [HealthMachine(("www-a", "web1"), fall=fall, rise=rise)]
    emitted: set[tuple[Health, Health]] = set()
    while todo:
        m = todo.pop()
        where = (m.state, m.fails, m.passes)
        if where in seen:
            continue
        seen.add(where)
        assert len(seen) < 100, "the machine's state space should be small and finite"
        for act in ACTIONS:
            nxt = copy.deepcopy(m)
            t = act(nxt)
            if t is not None:
                emitted.add((t.old, t.new))
            todo.append(nxt)
    return {s for s, _, _ in seen}, emitted


@pytest.mark.parametrize("fall", [1, 2, 3])
@pytest.mark.parametrize("rise", [1, 2, 3])
def test_every_transition_the_machine_can_emit_is_in_the_table(fall: int, rise: int) -> None:
    _, emitted = explore(fall, rise)
    missing = {(o, n, a) for o, n in emitted for a in (False, True)} - set(TABLE)
    assert not missing, f"TABLE lacks {sorted(missing)}"


def test_the_table_has_no_row_the_machine_cannot_produce() -> None:
    states: set[Health] = set()
    emitted: set[tuple[Health, Health]] = set()
    for fall in (1, 2, 3):
        for rise in (1, 2, 3):
            s, e = explore(fall, rise)
            states |= s
            emitted |= e
    # The exploration really went everywhere, so a row it never produced is a row nothing produces.
    assert states == set(Health)
    assert {(o, n) for o, n, _ in TABLE} == emitted
