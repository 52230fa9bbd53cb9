"""`lasthop demo`: the lab, and the console on it, with the phone flow spelled out.

`make demo` used to leave `lasthop serve` writing a log, which shows automatic failover and
nothing of what a person does from a phone. The demo is the console instead (the same
workflow and words as Slack, buttons by number) on the lab's own inventory, automatic
failover switched off so the buttons are seen, and a guide that says what to type next.
"""

from __future__ import annotations

from collections.abc import Callable

from lab.cli import DEFAULT_PREFIX
from lab.lab import Lab, require_root
from lab.plan import LabPlan
from lab.state import DEFAULT_STATE_ROOT, StatePaths, recorded_slot


def prepare_lab(prefix: str, slot: int | None, say: Callable[[str], None]) -> Lab:
    """The lab, up and healthy (built or repaired if need be; a broken host is healed). Raises LabError."""
    require_root()
    LabPlan(prefix)  # a bad prefix is refused before it is used in a path
    if slot is None:
        slot = recorded_slot(StatePaths(DEFAULT_STATE_ROOT, prefix))
        if slot is None:
            say(f"lasthop demo: building lab {prefix} (a few seconds; a minute or two if packages need installing)")
            slot = 0
    lab = Lab(prefix, slot, report=lambda message: say(f"lab: {message}"))
    done = lab.up()
    say(f"lasthop demo: lab {prefix} is up" + (f" ({'; '.join(done)})" if done else ""))
    return lab


def guide(prefix: str) -> str:
    """What to do next, concretely, for the lab named `prefix` (see lab/plan.py: www-a starts on web1)."""
    lab = "" if prefix == DEFAULT_PREFIX else f" --prefix {prefix}"
    return f"""\
What to do next:
  This is the chat a phone gets in Slack: type what you would type there; press a button by its number.
  1. Break web1, which serves www-a and www-d:  /lasthop lab break web1
     (or from a second terminal: sudo lasthop lab break web1{lab})
  2. In a few seconds the alert: "web1 is down", what it serves, and numbered buttons such as
     [4] Fail over all  [3] Acknowledge. Tap Fail over by typing its number (4 here).
  3. The lab's client now gets the other host:  /lasthop lab client www-a   (got web2)
  4. Heal web1:  /lasthop lab heal web1   (or sudo lasthop lab heal web1{lab})
     web1 is back up, the incident RESOLVED, and "Fail back www-a to web1" is offered. Moving off a
     healthy host is risky, so a second person approves it: as bob approve N
  5. Replay it as often as you like. Then the automatic path: auto on, break web1 again, and
     lasthop moves its services by itself, no button to press. auto off goes back to buttons.
  Also: /lasthop status, /failover www-b to web3, help.
  Quit with quit or Ctrl-D. The lab stays up; remove it with: sudo lasthop lab down{lab}"""
