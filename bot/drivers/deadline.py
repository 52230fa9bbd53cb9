"""Hard deadlines on device calls: when one passes, the call's connection is cut.

paramiko and netmiko each have time-outs of their own, but none of them bounds a
whole call: a banner time-out, then an auth time-out, then netmiko's prompt
back-off can add up to minutes on a link that went silent. Here every call is
armed with one deadline; when it passes, the watchdog runs the call's `cut`
(close the transport, shut the socket down), so whatever the library is blocked
in returns or raises, and the caller reports the limit that really applied.

One watchdog thread serves every deadline in the process; it is started when a
deadline is armed and ends once none has been pending for `IDLE_EXIT` seconds.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger("lasthop.drivers.deadline")

IDLE_EXIT = 5.0


class Ticket:
    """One armed deadline. `expired` is set, before the cut runs, once it has passed."""

    def __init__(self, seconds: float, cut: Callable[[], None]) -> None:
        self.seconds = seconds
        self.due = time.monotonic() + seconds
        self.cut = cut
        self.expired = False

    def remaining(self) -> float:
        """Seconds left, never below a millisecond (a 0 time-out means 'forever' to some libraries)."""
        return max(0.001, self.due - time.monotonic())


class Watchdog:
    def __init__(self, idle_exit: float = IDLE_EXIT) -> None:
        self.idle_exit = idle_exit
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Ticket]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, cut: Callable[[], None]) -> Ticket:
        ticket = Ticket(seconds, cut)
        with self._cond:
            heapq.heappush(self._heap, (ticket.due, next(self._seq), ticket))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lasthop-deadlines", daemon=True)
                self._thread.start()
            self._cond.notify()
        return ticket

    def cancel(self, ticket: Ticket) -> None:
        with self._cond:
            # Few calls are ever in flight at once, so a linear removal is cheaper than tombstones.
            kept = [entry for entry in self._heap if entry[2] is not ticket]
            if len(kept) != len(self._heap):
                heapq.heapify(kept)
                self._heap = kept

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    @property
    def running(self) -> bool:
        with self._cond:
            return self._thread is not None

    def _next_due(self) -> tuple[bool, Ticket | None]:
        """(still needed, the ticket whose deadline has passed or None after a wait)."""
        with self._cond:
            if not self._heap:
                self._cond.wait(self.idle_exit)
                if not self._heap:
                    self._thread = None  # under the lock: the next arm() starts a new thread
                    return False, None
                return True, None
            due, _, ticket = self._heap[0]
            wait = due - time.monotonic()
            if wait > 0:
                self._cond.wait(wait)
                return True, None
            heapq.heappop(self._heap)
            ticket.expired = True
            return True, ticket

    def _run(self) -> None:
        needed = True
        while needed:
            needed, ticket = self._next_due()
            if ticket is not None:
                try:
                    ticket.cut()
                except Exception as e:  # a cut that fails must not stop every other deadline
                    log.debug("cutting an expired call failed: %s", e)


WATCHDOG = Watchdog()


@contextlib.contextmanager
def deadline(seconds: float, cut: Callable[[], None], watchdog: Watchdog = WATCHDOG) -> Iterator[Ticket]:
    """Run the block with `cut` called if it is still running `seconds` from now."""
    ticket = watchdog.arm(seconds, cut)
    try:
        yield ticket
    finally:
        watchdog.cancel(ticket)


def shut(sock: Any) -> None:
    """Shut a socket down both ways, so a recv blocked on it returns at once, then close it."""
    with contextlib.suppress(OSError, AttributeError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError, AttributeError):
        sock.close()


def cut_transport(transport: Any) -> None:
    """Cut a paramiko transport: its socket first (wakes its reader thread), then its channels."""
    if transport is None:
        return
    shut(getattr(transport, "sock", None))
    with contextlib.suppress(Exception):  # closing a transport that is already failing may raise anything
        transport.close()
