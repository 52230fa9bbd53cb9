"""The health state machine, rule by rule."""

from __future__ import annotations

import pytest

from bot.health.machine import HealthMachine, Transition
from bot.health.state import Health

KEY = ("www-a", "web1")
IN, UP, FA, DN, RI, OFF = Health.INIT, Health.UP, Health.FALLING, Health.DOWN, Health.RISING, Health.DISABLED
OK, FAIL = True, False


def machine(state: Health, fails: int = 0, passes: int = 0, *, fall: int = 3, rise: int = 2) -> HealthMachine:
    m = HealthMachine(KEY, fall=fall, rise=rise)
    m.state, m.fails, m.passes = state, fails, passes
    return m


# (state, fails, passes, fall, rise, result) -> (new state, fails, passes, transition expected)
RULES = [
    pytest.param(IN, 0, 0, 3, 2, OK, IN, 0, 1, False, id="INIT+ok below rise stays INIT"),
    pytest.param(IN, 0, 1, 3, 2, OK, UP, 0, 0, True, id="INIT+ok reaching rise -> UP"),
    pytest.param(IN, 0, 0, 3, 1, OK, UP, 0, 0, True, id="INIT+ok rise=1 -> UP"),
    pytest.param(IN, 0, 0, 2, 2, FAIL, IN, 1, 0, False, id="INIT+fail below fall stays INIT"),
    pytest.param(IN, 1, 0, 2, 2, FAIL, DN, 0, 0, True, id="INIT+fail reaching fall -> DOWN"),
    pytest.param(IN, 0, 0, 1, 2, FAIL, DN, 0, 0, True, id="INIT+fail fall=1 -> DOWN"),
    pytest.param(IN, 0, 1, 3, 3, FAIL, IN, 1, 0, False, id="INIT+fail restarts the pass count"),
    pytest.param(IN, 2, 0, 3, 3, OK, IN, 0, 1, False, id="INIT+ok restarts the fail count"),
    pytest.param(UP, 0, 0, 3, 2, OK, UP, 0, 0, False, id="UP+ok stays UP"),
    pytest.param(UP, 0, 0, 3, 2, FAIL, FA, 1, 0, True, id="UP+fail -> FALLING with fails=1"),
    pytest.param(UP, 0, 0, 1, 2, FAIL, DN, 0, 0, True, id="UP+fail fall=1 -> DOWN"),
    pytest.param(FA, 1, 0, 3, 2, FAIL, FA, 2, 0, False, id="FALLING+fail below fall stays FALLING"),
    pytest.param(FA, 2, 0, 3, 2, FAIL, DN, 0, 0, True, id="FALLING+fail reaching fall -> DOWN"),
    pytest.param(FA, 1, 0, 2, 2, FAIL, DN, 0, 0, True, id="FALLING+fail fall=2 -> DOWN"),
    pytest.param(FA, 2, 0, 3, 3, OK, UP, 0, 0, True, id="FALLING+ok -> UP at once"),
    pytest.param(DN, 0, 0, 3, 2, FAIL, DN, 0, 0, False, id="DOWN+fail stays DOWN"),
    pytest.param(DN, 0, 0, 3, 2, OK, RI, 0, 1, True, id="DOWN+ok -> RISING with passes=1"),
    pytest.param(DN, 0, 0, 3, 1, OK, UP, 0, 0, True, id="DOWN+ok rise=1 -> UP"),
    pytest.param(RI, 0, 1, 3, 3, OK, RI, 0, 2, False, id="RISING+ok below rise stays RISING"),
    pytest.param(RI, 0, 2, 3, 3, OK, UP, 0, 0, True, id="RISING+ok reaching rise -> UP"),
    pytest.param(RI, 0, 1, 3, 2, OK, UP, 0, 0, True, id="RISING+ok rise=2 -> UP"),
    pytest.param(RI, 0, 2, 3, 3, FAIL, DN, 0, 0, True, id="RISING+fail -> DOWN at once"),
    pytest.param(OFF, 0, 0, 3, 2, OK, OFF, 0, 0, False, id="DISABLED ignores ok"),
    pytest.param(OFF, 0, 0, 1, 1, FAIL, OFF, 0, 0, False, id="DISABLED ignores fail"),
]


@pytest.mark.parametrize(
    ("state", "fails", "passes", "fall", "rise", "ok", "new", "nfails", "npasses", "changes"), RULES
)
def test_rule(
    state: Health, fails: int, passes: int, fall: int, rise: int, ok: bool,
    new: Health, nfails: int, npasses: int, changes: bool,
) -> None:
    m = machine(state, fails, passes, fall=fall, rise=rise)
    t = m.observe(ok, "detail", 42.0)
    assert (m.state, m.fails, m.passes) == (new, nfails, npasses)
    if changes:
        assert t == Transition(KEY, state, new, 42.0, "detail")
        assert m.last_change == 42.0
    else:
        assert t is None
        assert m.last_change is None


def test_starts_in_init_with_nothing_known() -> None:
    m = HealthMachine(KEY, fall=3, rise=2)
    assert (m.key, m.state, m.fails, m.passes, m.last_change, m.last_detail) == (KEY, IN, 0, 0, None, "")
    assert len(m.changes) == 0


@pytest.mark.parametrize(("state", "ok"), [(UP, True), (DN, False)])
def test_a_settled_state_counts_nothing(state: Health, ok: bool) -> None:
    m = machine(state)
    for n in range(10):
        assert m.observe(ok, "same", float(n)) is None
    assert (m.state, m.fails, m.passes) == (state, 0, 0)


@pytest.mark.parametrize(("fall", "rise"), [(0, 1), (1, 0), (-1, 2)])
def test_fall_and_rise_must_be_at_least_one(fall: int, rise: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        HealthMachine(KEY, fall=fall, rise=rise)


def test_last_detail_follows_every_observation_but_not_while_disabled() -> None:
    m = HealthMachine(KEY, fall=3, rise=2)
    m.observe(True, "200", 1.0)
    assert m.last_detail == "200"
    m.disable(2.0)
    m.observe(False, "refused", 3.0)
    assert m.last_detail == "200"


def test_a_full_fall_and_rise() -> None:
    m = HealthMachine(KEY, fall=2, rise=2)
    seen = [m.observe(ok, d, float(n)) for n, (ok, d) in enumerate(
        [(True, "a"), (True, "b"), (False, "c"), (False, "d"), (True, "e"), (True, "f")]
    )]
    assert [(t.old, t.new, t.detail) if t else None for t in seen] == [
        None, (IN, UP, "b"), (UP, FA, "c"), (FA, DN, "d"), (DN, RI, "e"), (RI, UP, "f"),
    ]


@pytest.mark.parametrize("state", [IN, UP, FA, DN, RI])
def test_disable_from_any_state(state: Health) -> None:
    m = machine(state, 1, 1)
    t = m.disable(5.0, "patching")
    assert t == Transition(KEY, state, OFF, 5.0, "patching")
    assert (m.state, m.fails, m.passes, m.last_change) == (OFF, 0, 0, 5.0)
    assert not m.in_doubt()


def test_disable_twice_is_no_change() -> None:
    m = machine(OFF)
    assert m.disable(5.0) is None


def test_disable_default_detail() -> None:
    t = machine(UP).disable(1.0)
    assert t is not None and t.detail == "maintenance"


def test_enable_starts_over_from_init() -> None:
    m = machine(OFF)
    t = m.enable(7.0)
    assert t is not None and (t.old, t.new, t.at) == (OFF, IN, 7.0)
    assert (m.state, m.fails, m.passes) == (IN, 0, 0)


@pytest.mark.parametrize("state", [IN, UP, FA, DN, RI])
def test_enable_when_not_disabled_is_no_change(state: Health) -> None:
    m = machine(state, 1, 0)
    assert m.enable(7.0) is None
    assert (m.state, m.fails) == (state, 1)


@pytest.mark.parametrize(
    ("state", "doubt"), [(IN, True), (FA, True), (RI, True), (UP, False), (DN, False), (OFF, False)]
)
def test_in_doubt_and_next_delay(state: Health, doubt: bool) -> None:
    m = machine(state)
    assert m.in_doubt() is doubt
    assert m.next_delay(5.0, 1.0) == (1.0 if doubt else 5.0)
    # In doubt, the fast interval counts from the check's start; the normal one from its end.
    assert m.next_delay(5.0, 1.0, took=0.25) == (0.75 if doubt else 5.0)
    assert m.next_delay(5.0, 1.0, took=2.0) == (0.0 if doubt else 5.0)  # timed out: at once
    assert m.next_delay(5.0, 1.0, took=-1.0) == (1.0 if doubt else 5.0)  # a clock step never lengthens it


def flip(m: HealthMachine, ok: bool, now: float) -> None:
    """Drive the machine to UP (ok) or DOWN (not ok)."""
    for _ in range(max(m.fall, m.rise)):
        m.observe(ok, "", now)


def test_flaps_count_changes_between_serving_and_down_inside_the_window() -> None:
    m = HealthMachine(KEY, fall=1, rise=1, flap_window=100.0)
    flip(m, True, 0.0)  # INIT -> UP: the first known state, not a flap
    assert m.flaps(0.0) == 0
    flip(m, False, 10.0)
    flip(m, True, 20.0)
    flip(m, False, 30.0)
    assert m.flaps(30.0) == 3
    assert m.flaps(110.0) == 2  # the change at 10.0 has left the window
    assert m.flaps(200.0) == 0
    assert len(m.changes) == 0


def test_blips_and_doubt_are_not_flaps() -> None:
    m = HealthMachine(KEY, fall=2, rise=2)
    flip(m, True, 0.0)
    m.observe(False, "", 1.0)  # UP -> FALLING
    m.observe(True, "", 2.0)  # FALLING -> UP: a blip
    flip(m, False, 3.0)  # UP -> FALLING -> DOWN: one flap
    m.observe(True, "", 4.0)  # DOWN -> RISING
    m.observe(False, "", 5.0)  # RISING -> DOWN: still down
    assert m.flaps(5.0) == 1
    flip(m, True, 6.0)  # DOWN -> RISING -> UP
    assert m.flaps(6.0) == 2


def test_init_and_maintenance_are_not_flaps() -> None:
    m = HealthMachine(KEY, fall=1, rise=1)
    m.observe(False, "", 0.0)  # INIT -> DOWN
    m.disable(1.0)
    m.enable(2.0)
    m.observe(True, "", 3.0)  # INIT -> UP
    assert m.flaps(3.0) == 0
