"""A prototype checker, for comparison only: one asyncio loop schedules and runs every check.

Not lasthop's code path: the design the checks benchmark measures against it. Each target is
a `loop.call_at` timer re-armed from its own result (the same rule as CheckScheduler: at most
one check per target in flight, the next delay decided from the last result by the target's
HealthMachine); each check is a new TCP connection and a GET on a bare non-blocking socket,
driven by the loop's reader and writer callbacks, with its own timeout; results are consumed
on the loop itself, so there is no pool, no writer thread and no lock. (The same loop with
asyncio's create_connection, a Protocol and a Task per check cost 0.24 CPU-s per 1,000 checks
against this one's 0.13-0.15: asyncio's transport layers are most of a check's Python time.)

The loop runs in its own thread so the benchmark's measuring thread stays free, as it is with the thread-pool engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.health.machine import HealthMachine

if TYPE_CHECKING:
    from bench.checks import Endpoint, Recorder, Settings

MAX_BODY = 65536  # as run_check: read at most this much of an answer


def judge(answer: bytes, expect: bytes) -> tuple[bool, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split(b" ", 2)
    if len(status) < 2 or not status[0].startswith(b"HTTP/"):
        return False, "no HTTP status line"
    if status[1] != b"200":
        return False, f"status {status[1].decode(errors='replace')}, expected 200"
    if expect not in body:
        return False, f"body lacks {expect.decode()!r}"
    return True, "200"


class _RawCheck:
    """One check on a bare non-blocking socket, driven by the loop's reader and writer callbacks:
    no Task, no transport, no future; just what a check needs."""

    __slots__ = ("buf", "done", "fd", "handle", "loop", "request", "sock", "start")

    def __init__(self, loop: asyncio.AbstractEventLoop, port: int, request: bytes, timeout: float,
                 done: Callable[[_RawCheck, bool, str], None]) -> None:
        self.loop = loop
        self.request = request
        self.done: Callable[[_RawCheck, bool, str], None] | None = done
        self.buf = bytearray()
        self.start = loop.time()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.fd = self.sock.fileno()
        self.handle = loop.call_later(timeout, self._finish, False, f"no answer within {timeout:g}s")
        err = self.sock.connect_ex(("127.0.0.1", port))
        if err not in (0, errno.EINPROGRESS):
            self.loop.call_soon(self._finish, False, os.strerror(err))
            return
        loop.add_writer(self.fd, self._connected)

    def _connected(self) -> None:
        self.loop.remove_writer(self.fd)
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._finish(False, os.strerror(err))
            return
        try:
            self.sock.send(self.request)  # a few dozen bytes: the first send takes it all
        except OSError as e:
            self._finish(False, e.strerror or str(e))
            return
        self.loop.add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as e:
            self._finish(False, e.strerror or str(e))
            return
        if data and len(self.buf) + len(data) < MAX_BODY:
            self.buf += data
            return
        self.buf += data
        self._finish(*judge(bytes(self.buf), b"ok"))

    def _finish(self, ok: bool, detail: str) -> None:
        done, self.done = self.done, None
        if done is None:
            return  # the timeout and the answer raced; the first one counted
        self.handle.cancel()
        self.loop.remove_reader(self.fd)
        self.loop.remove_writer(self.fd)
        self.sock.close()
        done(self, ok, detail)


async def _main(endpoints: list[Endpoint], interval: float, timeout: float, stop_at: float,
                    rec: Recorder) -> None:
    loop = asyncio.get_running_loop()
    machines = [HealthMachine(e.key, fall=2, rise=2) for e in endpoints]
    requests = [f"GET {e.path} HTTP/1.1\r\nHost: 127.0.0.1:{e.port}\r\nUser-Agent: lasthop-healthcheck\r\n"
                f"Accept-Encoding: identity\r\nConnection: close\r\n\r\n".encode() for e in endpoints]
    running: dict[_RawCheck, tuple[int, float]] = {}
    stopping = False
    idle = asyncio.Event()

    def done(check: _RawCheck, ok: bool, detail: str) -> None:
        i, lateness = running.pop(check)
        end = loop.time()
        machine = machines[i]
        machine.observe(ok, detail, end)
        if not stopping:
            arm(i, machine.next_delay(interval, interval))
        elif not running:
            idle.set()
        rec.record(check.start, lateness, end - check.start, 0.0, loop.time() - end, ok, detail)

    def fire(i: int, due: float) -> None:
        if stopping:
            return
        lateness = max(0.0, loop.time() - due)
        check = _RawCheck(loop, endpoints[i].port, requests[i], timeout, done)
        running[check] = (i, lateness)

    def arm(i: int, delay: float) -> None:
        due = loop.time() + delay
        loop.call_at(due, fire, i, due)

    for i in range(len(endpoints)):
        arm(i, interval * i / len(endpoints))
    await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
    stopping = True
    if running:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(idle.wait(), timeout + 1.0)


def engine(endpoints: list[Endpoint], interval: float, timeout: float, stop_at: float, rec: Recorder,
               settings: Settings) -> None:
    asyncio.run(_main(endpoints, interval, timeout, stop_at, rec))
