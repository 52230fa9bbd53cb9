"""Installing what the lab runs (FRR, sshd) when the machine does not have it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from lab.proc import run

REQUIRED = (Path("/usr/lib/frr/zebra"), Path("/usr/sbin/sshd"))
PACKAGES = ("frr", "openssh-server")


def ensure_installed(report: Callable[[str], None]) -> bool:
    """apt-get install the packages if a binary is missing; True if it installed them."""
    missing = [str(p) for p in REQUIRED if not p.exists()]
    if not missing:
        return False
    report(f"installing {' and '.join(PACKAGES)} ({', '.join(missing)} missing)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update"], timeout=600, env=env)
    run(["apt-get", "install", "-y", *PACKAGES], timeout=1200, env=env)
    return True
