"""`lasthop console`, scripted end to end on the lab: the phone flow in a terminal, with no Slack.

The real command in a child process, on the real lab: status, a break, the alert and its
buttons, a tap by number of label, the client served by the other host, the heal, the
recovery with Fail back offered, and the two-person rule with two console users.
Needs root (the lab); CI runs these as root.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.inventory import Inventory
from lab import Lab

pytestmark = pytest.mark.lab

SCRIPT = """
# status first, as someone would look before doing anything
/lasthop status
/lasthop lab break web1
# web1 serves www-a and www-d (through r2), and its checks fail in any order: wait until every
# one has (the thread's line lists them sorted), or the press may come first and move www-a
# only, leaving the incident open for www-d
wait "web1 is down for www-a, www-b, www-c and www-d" 40s
# the parent's update that carries the button may come just before or just after that line
wait button "Fail over all" 20s
press Fail over all
wait "Done" 40s
wait "MITIGATED" 20s
/lasthop lab client www-a
wait "got web2" 10s
/lasthop lab heal web1
wait "RESOLVED" 60s
wait "Fail back www-a to web1" 10s
# a risky move: the asker cannot approve it, a second person can
/failover www-b to web3
wait "needs a second person" 30s
press Approve
wait "two-person rule" 20s
as bob press Approve
wait "approved by @bob, asked by @alice" 40s
/lasthop lab client www-b
wait "got web3" 10s
"""


def test_a_scripted_console_session_tells_the_whole_story(lab: Lab, lab_inv: Inventory, lab_home: None,
                                                          tmp_path: Path) -> None:
    config = tmp_path / "lasthop.yaml"
    text = lab.inventory.read_text().replace(f"sqlite:///{lab.state_dir}/lasthop.db", lab_inv.state_url)
    config.write_text(text.replace("auto_failover: true", "auto_failover: false"))
    script = tmp_path / "story.txt"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    try:
        done = subprocess.run([sys.executable, "-m", "bot.cli", "--config", str(config), "console", "--user", "alice",
                               "--lab", lab.plan.prefix, "--script", str(script)],
                              capture_output=True, text=True, timeout=300, env=env)
    finally:
        lab.heal("web1")
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Traceback" not in out + done.stderr
    assert "www-a → web1 (" in out  # the status, before the break
    assert "alice pressed [" in out and "] Fail over" in out
    assert "lab: the client asked 198.51.100.33 (www-a) and got web2" in out
    assert "web1 is back up" in out
    assert "You cannot approve your own request" in out
    assert "lab: the client asked 198.51.100.65 (www-b) and got web3" in out
