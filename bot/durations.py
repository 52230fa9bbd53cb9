"""Durations as people write them: `500ms`, `5s`, `1m`, `1h30m`.

In the config file a bare number is seconds (`interval: 5`), as config/example.yaml says. Typed
by a person (the CLI's `--for`, `/lasthop maintenance … on 2h`) the unit is required: `10` is
more likely ten minutes than ten seconds, so `parse_typed_duration` refuses to guess.
"""

from __future__ import annotations

import math
import re

from bot.echo import shortened

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h))+")
# A bare number of seconds, also with an exponent: YAML 1.1 reads `1.0e-3` as a number but `1e-3`
# as text, and the person who wrote either meant the same number.
_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:e[-+]?\d+)?", re.IGNORECASE)

HINT = "use e.g. 500ms, 5s, 1m, 1h or a number of seconds"
NEEDS_UNIT = "needs a unit: 10m, 2h, 30s"


def parse_duration(value: object) -> float:
    """Seconds, as a float. Raises ValueError with a message fit to show to the person who wrote it.

    The sign and the range are the caller's business (zero is fine for a hold-down,
    meaningless for a timeout; the config's are 1ms to 30 days, bot.values); here a duration
    is only ever written without a sign, so a `-` is refused with a clearer message than
    "not a duration".
    """
    # bool is an int: `interval: yes` is a mistake, not one second.
    if isinstance(value, bool) or value is None:
        raise ValueError(f"must be a duration: {HINT}")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an integer of hundreds of digits has no float
            raise ValueError("is far too long for a duration") from None
        if not math.isfinite(seconds):
            raise ValueError(f"must be a finite duration: {HINT}")
        return seconds
    if not isinstance(value, str):
        raise ValueError(f"must be a duration: {HINT}")
    text = value.strip().lower().replace(" ", "")
    if text.startswith("-"):
        raise ValueError(f"{_show(value)} is negative: a duration must be greater than zero")
    if _NUMBER.fullmatch(text):
        seconds = float(text)
    elif _WHOLE.fullmatch(text):
        seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(text))
    else:
        raise ValueError(f"{_show(value)} is not a duration: {HINT}")
    # float() reads hundreds of digits as infinity rather than failing: say so, never pass it on.
    if not math.isfinite(seconds):
        raise ValueError(f"{_show(value)} is far too long for a duration")
    # ... and 1e-400 as zero, which is not what was written.
    if seconds == 0 and re.search(r"[1-9]", re.split(r"e", text)[0]):
        raise ValueError(f"{_show(value)} is far too short for a duration")
    return seconds


def parse_typed_duration(text: str) -> float:
    """A duration a person typed, in seconds; ValueError when it has no unit (NEEDS_UNIT) or is not a duration."""
    if _NUMBER.fullmatch(text.strip()):
        raise ValueError(NEEDS_UNIT)
    return parse_duration(text)


def format_duration(seconds: float) -> str:
    """The shortest of the forms `parse_duration` reads back to the same value (for summaries)."""
    if seconds < 1 and seconds != 0:
        return f"{seconds * 1000:g}ms"
    whole = round(seconds)
    if whole != seconds:
        return f"{seconds:g}s"
    if whole and whole % 3600 == 0:
        return f"{whole // 3600}h"
    if whole and whole % 60 == 0:
        return f"{whole // 60}m"
    if whole > 60:
        minutes, rest = divmod(whole, 60)
        return f"{minutes}m{rest}s"
    return f"{whole}s"


def _show(value: str) -> str:
    # A config value can hold anything, a newline included: keep an error to one short line.
    return f"'{shortened(value)}'"
