"""What lasthop knows of the world at one moment: the inputs of every target choice and alert view."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from bot.health.state import Health


@dataclass(frozen=True)
class Situation:
    health: Mapping[tuple[str, str], Health] = field(default_factory=dict)  # (service, host) -> state
    serving: Mapping[str, str | None] = field(default_factory=dict)  # service -> host its route points at
    maintenance: AbstractSet[str] = frozenset()
    flapping: AbstractSet[str] = frozenset()
