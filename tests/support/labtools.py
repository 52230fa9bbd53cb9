"""Small helpers the lab tests share: polling what the client sees, finding a namespace's processes."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from lab import Lab


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """The first truthy value of `predicate`, polled every 0.1 s; AssertionError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def client_answer(lab: Lab, vip: IPv4Address, want: str, timeout: float = 10.0) -> str:
    """What the client gets from `vip`, polled until it is `want` or the time is up (then the last answer)."""
    deadline = time.monotonic() + timeout
    got = ""
    while time.monotonic() < deadline:
        try:
            got = lab.client_get(vip, timeout=1.0)
        except Exception as e:  # the lab's own error type; keep polling until the deadline
            got = f"error: {e}"
        if got == want:
            break
        time.sleep(0.1)
    return got


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:  # the process ended since the listing
        return ""


def comm(pid: int | str) -> str:
    return _read(f"/proc/{pid}/comm").strip()


def parent(pid: int | str) -> int:
    stat = _read(f"/proc/{pid}/stat")
    try:
        return int(stat.rsplit(")", 1)[1].split()[1])
    except (IndexError, ValueError):
        return 0


def cmdline(pid: int | str) -> str:
    return _read(f"/proc/{pid}/cmdline")


def namespace_pids(lab: Lab, ns: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", f"{lab.plan.prefix}-{ns}"], capture_output=True, text=True,
                         timeout=5).stdout.split()
    return [int(p) for p in out]


def ssh_session_pids(lab: Lab, ns: str) -> list[int]:
    """sshd processes serving a connection (children of an sshd), not the listener."""
    return [p for p in namespace_pids(lab, ns) if comm(p) == "sshd" and comm(parent(p)) == "sshd"]
