"""Bounded polling: every wait in the lab ends, and says what it waited for."""

from __future__ import annotations

import time
from collections.abc import Callable

from lab.errors import LabError


def wait_until(
    ready: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> None:
    """Call `ready` until it returns True; LabError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        if ready():
            return
        now = time.monotonic()
        if now >= deadline:
            raise LabError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(min(delay, deadline - now))
        # Most waits end in milliseconds; back off only for the slow ones.
        delay = min(delay * 1.5, 0.5)
