"""Named fault points in a move, switched on only by tests (the idea of etcd's gofail and
FreeBSD's fail points).

A point is a name the move transaction passes through: `hit(name)` does nothing unless a
test armed that name. Tests arm a point in-process with `armed(name, action)`, or in a child
process with the environment variable LASTHOP_FAULTS, e.g. `after_add=kill,before_save=exit`:

- `kill`: the process sends itself SIGKILL there (no cleanup, no finally blocks);
- `exit`: `os._exit(9)`, the same from the store's point of view;
- `pause`: it prints `fault-point NAME` on stderr and waits, up to 120 s, for the file named by
  LASTHOP_FAULTS_GO to exist, so a test can cut a link or change a route at that exact step.

No production path sets either. Nothing here sleeps for a calibrated time: a paused process
waits for the test's signal, not for a guess at how long a step takes.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

# Where a move can be stopped, in the order a move passes them.
POINTS = (
    "before_apply",  # pre-checks passed, the change record says applying, nothing sent yet
    "after_add",  # the new route is configured and in the FIB, the old one still there
    "after_remove",  # the old route is gone; the commit is not yet verified
    "before_verify",  # the commit was taken; lasthop has not read the FIB yet
    "before_save",  # verified (and confirmed); the configuration is not saved yet
)
ENV = "LASTHOP_FAULTS"
GO_ENV = "LASTHOP_FAULTS_GO"
PAUSE_LIMIT = 120.0

Action = Callable[[str], None]
_armed: dict[str, Action] = {}
_lock = threading.Lock()


def hit(point: str) -> None:
    """Pass fault point `point`: whatever a test armed there happens now."""
    with _lock:
        action = _armed.get(point)
    if action is not None:
        action(point)


@contextmanager
def armed(point: str, action: Action) -> Iterator[None]:
    """Run `action(point)` whenever the move passes `point`, inside the block only."""
    if point not in POINTS:
        raise ValueError(f"no fault point {point!r} (there are: {', '.join(POINTS)})")
    with _lock:
        _armed[point] = action
    try:
        yield
    finally:
        with _lock:
            _armed.pop(point, None)


def _kill(point: str) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _exit(point: str) -> None:
    os._exit(9)


def _pause(point: str) -> None:
    print(f"fault-point {point}", file=sys.stderr, flush=True)
    go = os.environ.get(GO_ENV, "")
    deadline = time.monotonic() + PAUSE_LIMIT
    while go and not Path(go).exists() and time.monotonic() < deadline:
        time.sleep(0.02)


ACTIONS: dict[str, Action] = {"kill": _kill, "exit": _exit, "pause": _pause}


def parse(spec: str) -> dict[str, Action]:
    """`point=action,...` from LASTHOP_FAULTS; ValueError names a point or action that does not exist."""
    out: dict[str, Action] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        point, _, action = item.partition("=")
        if point not in POINTS:
            raise ValueError(f"{ENV}: no fault point {point!r} (there are: {', '.join(POINTS)})")
        if action not in ACTIONS:
            raise ValueError(f"{ENV}: no action {action!r} for {point} (there are: {', '.join(ACTIONS)})")
        out[point] = ACTIONS[action]
    return out


def arm_from_env() -> None:
    """Arm what LASTHOP_FAULTS names; called once at start-up by the CLI."""
    spec = os.environ.get(ENV, "")
    if spec:
        points = parse(spec)
        with _lock:
            _armed.update(points)
