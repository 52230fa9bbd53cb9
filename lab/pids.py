"""Finding and stopping the lab's processes.

A pid file can be stale and its pid reused by an unrelated process, so a pid is
only trusted when the process's command line still names a path of this lab.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from lab.proc import run


def cmdline(pid: int) -> str | None:
    """The process's command line joined by spaces; None if it is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    # A zombie has an empty cmdline: it is already dead for our purposes.
    if not raw:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def read_pidfile(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def pidfile_process(pidfile: Path, token: str) -> int | None:
    """The pid in `pidfile` if that process is alive and its command line contains `token`."""
    pid = read_pidfile(pidfile)
    if pid is None:
        return None
    line = cmdline(pid)
    return pid if line is not None and token in line else None


def namespace_pids(namespace: str) -> set[int]:
    """Every process whose network namespace is `namespace` (per `ip netns pids`)."""
    done = run(["ip", "netns", "pids", namespace], check=False)
    return {int(tok) for tok in done.stdout.split() if tok.isdigit()}


def pids_matching(tokens: Iterable[str]) -> set[int]:
    """Processes whose command line contains any of `tokens` (never us or our parents)."""
    wanted = [t for t in tokens if t]
    mine = _own_lineage()
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid in mine:
            continue
        line = cmdline(pid)
        if line is not None and any(t in line for t in wanted):
            found.add(pid)
    return found


def terminate(pids: Iterable[int], *, grace: float = 3.0) -> None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL whatever is left."""
    targets = set(pids) - _own_lineage()
    if not targets:
        return
    _signal_all(targets, signal.SIGTERM)
    left = _wait_gone(targets, grace)
    if left:
        _signal_all(left, signal.SIGKILL)
        _wait_gone(left, 2.0)


def _signal_all(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_gone(pids: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    left = {p for p in pids if cmdline(p) is not None}
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = {p for p in left if cmdline(p) is not None}
    return left


def _own_lineage() -> set[int]:
    lineage = {os.getpid()}
    pid = os.getppid()
    while pid > 1 and pid not in lineage:
        lineage.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        # The command name may contain spaces and parentheses; fields follow the last ')'.
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return lineage
