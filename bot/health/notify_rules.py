"""Which health transitions are news, as one explicit table (the way Uptime Kuma decides).

A table rather than if-statements so that each row can be read, reviewed and tested
on its own, and a test can prove no transition the state machine makes is missing.
"""

from __future__ import annotations

from enum import StrEnum

from bot.health.machine import Transition
from bot.health.state import Health


class Notice(StrEnum):
    NONE = "none"
    DOWN = "down"
    RECOVERED = "recovered"
    MAINTENANCE_ON = "maintenance_on"
    MAINTENANCE_OFF = "maintenance_off"


TABLE: dict[tuple[Health, Health], Notice] = {
    # The first known state is not news...
    (Health.INIT, Health.UP): Notice.NONE,
    # ...unless it is down: a host found down at start is.
    (Health.INIT, Health.DOWN): Notice.DOWN,
    # In doubt and re-checked fast; alerting now would page on every lost packet.
    (Health.UP, Health.FALLING): Notice.NONE,
    # A blip that never reached `fall` failures.
    (Health.FALLING, Health.UP): Notice.NONE,
    (Health.FALLING, Health.DOWN): Notice.DOWN,
    # fall == 1: no doubt phase.
    (Health.UP, Health.DOWN): Notice.DOWN,
    (Health.DOWN, Health.RISING): Notice.NONE,
    # Still down, as already alerted: a second alert would be noise.
    (Health.RISING, Health.DOWN): Notice.NONE,
    (Health.RISING, Health.UP): Notice.RECOVERED,
    # rise == 1: no doubt phase.
    (Health.DOWN, Health.UP): Notice.RECOVERED,
    (Health.INIT, Health.DISABLED): Notice.MAINTENANCE_ON,
    (Health.UP, Health.DISABLED): Notice.MAINTENANCE_ON,
    (Health.FALLING, Health.DISABLED): Notice.MAINTENANCE_ON,
    (Health.DOWN, Health.DISABLED): Notice.MAINTENANCE_ON,
    (Health.RISING, Health.DISABLED): Notice.MAINTENANCE_ON,
    # Maintenance over; whether the target is healthy is news only once the checks say so.
    (Health.DISABLED, Health.INIT): Notice.MAINTENANCE_OFF,
}


def decide(t: Transition) -> Notice:
    """The notice for a transition; a pair missing from TABLE is not news (a test keeps TABLE complete)."""
    return TABLE.get((t.old, t.new), Notice.NONE)
