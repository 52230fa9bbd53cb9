"""`lasthop demo`, scripted end to end on the lab: the story the demo's guide tells, as a newcomer would play it.

The real command in a child process, on the real lab (its own inventory and state database, as
`make demo` runs it): break web1, the alert and its buttons, Fail over by tap, the client served
by web2, the heal, recovery and Fail back (approved by a second person); the same story again,
which must still alert (the lab's flapping settings are a demo's); then automatic failover
switched on at run time, and a break that moves www-a with nobody pressing anything.
A script cannot know the buttons' numbers, so it presses by label and the test checks that the
number pressed is the one the alert showed. Needs root (the lab); CI runs these as root.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.state import StateStore
from lab import Lab

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]

ROUND = """
/lasthop lab break web1
wait "www-a → web1 [DOWN] still on web1, which is down" 40s
# the newest Fail over button covers www-a (all, if web1's www-d has joined the incident by now:
# the story waits for nothing about www-d, so it holds either way)
press Fail over
wait "Done" 40s
/lasthop lab client www-a
wait "got web2" 10s
/lasthop lab heal web1
wait "RESOLVED" 60s
wait "Fail back www-a to web1" 10s
# moving off a healthy host is risky: the asker cannot approve it, a second person can
press Fail back www-a
wait "needs a second person" 30s
as bob press Approve
wait "Done" 40s
/lasthop lab client www-a
wait "got web1" 10s
"""

SCRIPT = f"""
wait "every host has been checked: ready" 60s
/lasthop status
{ROUND}
# the newcomer plays it again: alerts must still come
{ROUND}
auto maybe
auto on www-a
/lasthop lab break web1
wait "moved www-a web1 → web2 (lasthop (automatic))" 60s
/lasthop lab client www-a
wait "got web2" 10s
/lasthop lab heal web1
wait "RESOLVED" 60s
"""


def test_the_demo_tells_the_phone_flow_twice_then_fails_over_by_itself(lab: Lab, lab_home: None,
                                                                      tmp_path: Path) -> None:
    # The demo keeps its state in the lab's own database; start it as a fresh lab would.
    db = lab.state_dir / "lasthop.db"
    db.unlink(missing_ok=True)
    script = tmp_path / "demo.txt"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    try:
        done = subprocess.run([sys.executable, "-m", "bot.cli", "demo", "--prefix", lab.plan.prefix,
                               "--slot", str(lab.plan.slot), "--user", "alice", "--script", str(script)],
                              capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    finally:
        lab.heal("web1")
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Traceback" not in out + done.stderr
    # The guide, before anything happens.
    head = out[: out.index("every host has been checked")]
    assert "automatic failover: off (buttons only; `auto on`" in head
    assert "/lasthop lab break web1" in head and f"sudo lasthop lab break web1 --prefix {lab.plan.prefix}" in head
    assert "/lasthop lab client www-a" in head and "/lasthop lab heal web1" in head
    assert f"sudo lasthop lab down --prefix {lab.plan.prefix}" in head
    # Three breaks: each one alerted with its buttons and was resolved, the second as well as the first.
    rounds = out.split("lab: web1: web server stopped")[1:]
    assert len(rounds) == 3
    for story in rounds:
        assert "[DOWN] OPEN web1 is down" in story and "RESOLVED web1 was down" in story
        assert "Fail back www-a to web1" in story
    for story in rounds[:2]:  # by hand: a tap, the client on web2, then fail back approved by bob
        # The press is the number the alert showed next to its Fail over button.
        pressed = re.search(r"alice pressed \[(\d+)\] (Fail over[^\n]*)", story)
        assert pressed is not None, story
        assert f"[{pressed[1]}] {pressed[2]}" in story[: pressed.start()]
        assert story.index("got web2") < story.index("RESOLVED") < story.index("got web1")
        assert "(approved by @bob, asked by @alice)" in story
    assert "flapping" not in out
    # The switch: bad input refused, then on for www-a, and the move nobody pressed for.
    assert "'maybe' is not that. Nothing changed." in out
    assert "alice switched automatic failover on for www-a. automatic failover: on for www-a" in out
    assert "pressed" not in rounds[2]
    assert "moved www-a web1 → web2 (lasthop (automatic))" in rounds[2]
    with StateStore(f"sqlite:///{db}") as store:
        audit = [(r.actor, r.action, r.target, r.result) for r in store.history(limit=200)]
    assert ("console:alice", "auto-failover", "www-a", "on") in audit
