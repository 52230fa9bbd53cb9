"""Fault points: inert unless a test arms them, and a misspelt point or action is an error, not a no-op."""

from __future__ import annotations

import pytest

from bot import faults


def test_a_point_acts_only_inside_its_block() -> None:
    seen: list[str] = []
    faults.hit("after_add")
    with faults.armed("after_add", seen.append):
        faults.hit("after_add")
        faults.hit("before_save")  # not armed
    faults.hit("after_add")
    assert seen == ["after_add"]


def test_arming_a_point_that_does_not_exist_is_refused() -> None:
    with pytest.raises(ValueError, match="no fault point 'after_ad'"), faults.armed("after_ad", print):
        pass


@pytest.mark.parametrize(("spec", "message"), [
    ("after_ad=kill", "no fault point 'after_ad'"),
    ("after_add=explode", "no action 'explode' for after_add"),
    ("after_add", "no action '' for after_add"),
])
def test_the_environment_spec_names_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        faults.parse(spec)


def test_the_environment_spec_arms_each_named_point() -> None:
    armed = faults.parse("after_add=kill, before_save=pause,")
    assert set(armed) == {"after_add", "before_save"}
    assert armed["after_add"] is faults.ACTIONS["kill"]
