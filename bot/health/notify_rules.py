"""Which health transitions are news, as one explicit table (the way Uptime Kuma decides).

A table rather than if-statements so that each row can be read, reviewed and tested on
its own, and a test can prove no transition the state machine makes is missing.

The key has a third part, `announced`: whether people were told this target is down and
not yet told it is back. The state machine forgets (maintenance ends in INIT, a restart
starts in INIT), people do not: a host alerted DOWN, put in maintenance and found UP
afterwards must be reported recovered, and one found DOWN again is still down, not new.
"""

from __future__ import annotations

from enum import StrEnum

from bot.health.machine import Transition
from bot.health.state import Health

N, U, F, D, R, X = Health.INIT, Health.UP, Health.FALLING, Health.DOWN, Health.RISING, Health.DISABLED


class Notice(StrEnum):
    NONE = "none"
    DOWN = "down"
    STILL_DOWN = "still_down"
    RECOVERED = "recovered"
    MAINTENANCE_ON = "maintenance_on"
    MAINTENANCE_OFF = "maintenance_off"


TABLE: dict[tuple[Health, Health, bool], Notice] = {
    # The first known state is not news...
    (N, U, False): Notice.NONE,
    # ...unless people were told it was down: after maintenance, or a restart, it is back.
    (N, U, True): Notice.RECOVERED,
    # A host found down at start is news; one already announced down is still down.
    (N, D, False): Notice.DOWN,
    (N, D, True): Notice.STILL_DOWN,
    # In doubt and re-checked fast; alerting now would page on every lost packet.
    (U, F, False): Notice.NONE,
    (U, F, True): Notice.NONE,
    # A blip that never reached `fall` failures.
    (F, U, False): Notice.NONE,
    (F, U, True): Notice.RECOVERED,
    (F, D, False): Notice.DOWN,
    (F, D, True): Notice.NONE,
    # fall == 1: no doubt phase.
    (U, D, False): Notice.DOWN,
    (U, D, True): Notice.NONE,
    (D, R, False): Notice.NONE,
    (D, R, True): Notice.NONE,
    # Still down: a second alert would be noise, and a first one (nobody was told) is the down row's job.
    (R, D, False): Notice.DOWN,
    (R, D, True): Notice.NONE,
    (R, U, True): Notice.RECOVERED,
    # Back from a down nobody was told about (flapping kept quiet, say): not news either way.
    (R, U, False): Notice.NONE,
    # rise == 1: no doubt phase.
    (D, U, True): Notice.RECOVERED,
    (D, U, False): Notice.NONE,
    (N, X, False): Notice.MAINTENANCE_ON,
    (N, X, True): Notice.MAINTENANCE_ON,
    (U, X, False): Notice.MAINTENANCE_ON,
    (U, X, True): Notice.MAINTENANCE_ON,
    (F, X, False): Notice.MAINTENANCE_ON,
    (F, X, True): Notice.MAINTENANCE_ON,
    (D, X, False): Notice.MAINTENANCE_ON,
    (D, X, True): Notice.MAINTENANCE_ON,
    (R, X, False): Notice.MAINTENANCE_ON,
    (R, X, True): Notice.MAINTENANCE_ON,
    # Maintenance over; whether the target is healthy is news only once the checks say so.
    (X, N, False): Notice.MAINTENANCE_OFF,
    (X, N, True): Notice.MAINTENANCE_OFF,
}


def decide(t: Transition, announced: bool = False) -> Notice:
    """The notice for a transition; a key missing from TABLE is not news (a test keeps TABLE complete)."""
    return TABLE.get((t.old, t.new, announced), Notice.NONE)
