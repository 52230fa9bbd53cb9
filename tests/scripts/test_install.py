"""scripts/install.sh, run again on the machine it already set up: it must change nothing.

`make test` runs the install first, so by the time this runs, everything is in place and a
second run must be silent (no apt, no pip, no relinking) and leave `lasthop` on root's PATH,
which sudo resets to one that has /usr/local/bin.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv"
SUDO_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # Debian's sudo secure_path

needs_installed = pytest.mark.skipif(
    Path(sys.prefix).resolve() != VENV.resolve() or os.geteuid() != 0,
    reason="runs only under `make test` as root (this Python is not the project's .venv, or not root)",
)


@needs_installed
def test_a_second_install_changes_nothing_and_says_nothing() -> None:
    stamp = VENV / ".lasthop-test"
    before = stamp.stat().st_mtime_ns
    done = subprocess.run(["bash", "scripts/install.sh", "test"], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={"PATH": SUDO_PATH, "HOME": "/root"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == "" and done.stderr == ""
    assert stamp.stat().st_mtime_ns == before


@needs_installed
def test_lasthop_is_on_the_path_sudo_gives_and_runs_this_checkout() -> None:
    done = subprocess.run(["lasthop", "--help"], capture_output=True, text=True, timeout=60,
                          env={"PATH": SUDO_PATH, "HOME": "/root"})
    assert done.returncode == 0 and "usage: lasthop" in done.stdout
    assert Path("/usr/local/bin/lasthop").resolve() == (VENV / "bin" / "lasthop").resolve()


def test_an_unknown_target_is_a_usage_error_that_installs_nothing() -> None:
    done = subprocess.run(["bash", "scripts/install.sh", "everything"], cwd=REPO, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2
    assert done.stderr.strip() == "usage: scripts/install.sh [demo|test]"
