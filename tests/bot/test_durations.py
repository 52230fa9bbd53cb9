"""Typed durations need their unit; config durations may be bare seconds (config/example.yaml says so)."""

from __future__ import annotations

import pytest

from bot.durations import NEEDS_UNIT, parse_duration, parse_typed_duration


@pytest.mark.parametrize("text", ["10", " 10 ", "1.5"])
def test_a_typed_duration_without_a_unit_is_refused(text: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_typed_duration(text)
    assert str(e.value) == NEEDS_UNIT == "needs a unit: 10m, 2h, 30s"


def test_a_typed_duration_with_its_unit_and_a_config_number() -> None:
    assert parse_typed_duration("10m") == 600.0
    assert parse_typed_duration("1h30m") == 5400.0
    assert parse_duration(10) == parse_duration("10") == 10.0  # config: bare seconds, as documented
    with pytest.raises(ValueError, match="not a duration"):
        parse_typed_duration("10x")


@pytest.mark.parametrize("value", [10**400, "9" * 400, "9" * 400 + "s", "9" * 400 + "h1s"])
def test_a_duration_too_long_for_a_float_is_refused_not_infinite(value: object) -> None:
    with pytest.raises(ValueError, match="far too long for a duration"):
        parse_duration(value)


@pytest.mark.parametrize(("text", "seconds"), [("1e3", 1000.0), ("5E-1", 0.5), ("1.5e+2", 150.0), ("1e-320", 1e-320)])
def test_a_number_of_seconds_may_be_written_with_an_exponent(text: str, seconds: float) -> None:
    # YAML 1.1 reads 1.0e-3 as a number but 1e-3 as text: both are the same number of seconds.
    assert parse_duration(text) == seconds
    with pytest.raises(ValueError) as e:
        parse_typed_duration(text)
    assert str(e.value) == NEEDS_UNIT


@pytest.mark.parametrize("text", ["1e", "e3", "1e3s", "1e400"])
def test_what_is_not_a_number_in_exponent_form(text: str) -> None:
    with pytest.raises(ValueError, match=r"not a duration|far too long"):
        parse_duration(text)
