"""Health states, as in ExaBGP's healthcheck: a target is in doubt before it is down."""

from __future__ import annotations

from enum import StrEnum


class Health(StrEnum):
    INIT = "init"  # no result yet: health unknown
    UP = "up"
    FALLING = "falling"  # was up, has failed fewer than `fall` times in a row
    DOWN = "down"
    RISING = "rising"  # was down, has passed fewer than `rise` times in a row
    DISABLED = "disabled"  # maintenance: not checked, never a target

    @property
    def known_good(self) -> bool:
        return self is Health.UP

    @property
    def serving(self) -> bool:
        """Counts as healthy for 'is traffic being moved away from a working host'."""
        return self in (Health.UP, Health.FALLING)
