"""A prototype checker, for comparison only: one asyncio loop schedules and runs every check.

Not lasthop's code path: the design the checks benchmark measures against it. Each target is
a `loop.call_at` timer re-armed from its own result (the same rule as CheckScheduler: at most
one check per target in flight, the next delay decided from the last result by the target's
HealthMachine); each check is a new TCP connection and a GET through an asyncio Protocol, with
its own timeout; results are consumed on the loop itself, so there is no pool, no writer
thread and no lock. The loop runs in its own thread so the benchmark's measuring thread
stays free, as it is with the thread-pool engine.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from bot.health.machine import HealthMachine

if TYPE_CHECKING:
    from bench.checks import Endpoint, Recorder, Settings

MAX_BODY = 65536  # as run_check: read at most this much of an answer


class _Probe(asyncio.Protocol):
    """One GET: send on connect, collect the answer until the server closes (or it is complete)."""

    def __init__(self, request: bytes, done: asyncio.Future[bytes]) -> None:
        self.request = request
        self.done = done
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) >= MAX_BODY:
            self._finish()

    def eof_received(self) -> bool | None:
        self._finish()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            if exc is not None:
                self.done.set_exception(exc)
            else:
                self.done.set_result(bytes(self.buf))

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(bytes(self.buf))
        if self.transport is not None:
            self.transport.close()


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


async def _main(endpoints: list[Endpoint], interval: float, timeout: float, stop_at: float, rec: Recorder) -> None:
    loop = asyncio.get_running_loop()
    machines = [HealthMachine(e.key, fall=2, rise=2) for e in endpoints]
    requests = [f"GET {e.path} HTTP/1.1\r\nHost: 127.0.0.1:{e.port}\r\nUser-Agent: lasthop-healthcheck\r\n"
                f"Accept-Encoding: identity\r\n\r\n".encode() for e in endpoints]
    tasks: set[asyncio.Task[None]] = set()
    stopping = False

    async def check(i: int, due: float) -> None:
        start = loop.time()
        lateness = max(0.0, start - due)
        done: asyncio.Future[bytes] = loop.create_future()
        transport: asyncio.BaseTransport | None = None
        try:
            async with asyncio.timeout(timeout):
                transport, _ = await loop.create_connection(lambda: _Probe(requests[i], done), "127.0.0.1",
                                                            endpoints[i].port)
                ok, detail = judge(await done, b"ok")
        except TimeoutError:
            ok, detail = False, f"no answer within {timeout:g}s"
        except OSError as e:
            ok, detail = False, e.strerror or str(e)
        finally:
            if transport is not None:
                transport.close()
        end = loop.time()
        machine = machines[i]
        machine.observe(ok, detail, end)
        if not stopping:
            arm(i, machine.next_delay(interval, interval))
        rec.record(start, lateness, end - start, 0.0, loop.time() - end, ok)

    def fire(i: int, due: float) -> None:
        if stopping:
            return
        task = loop.create_task(check(i, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def arm(i: int, delay: float) -> None:
        due = loop.time() + delay
        loop.call_at(due, fire, i, due)

    for i in range(len(endpoints)):
        arm(i, interval * i / len(endpoints))
    await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
    stopping = True
    if tasks:
        await asyncio.wait(set(tasks), timeout=timeout + 1.0)


def engine(endpoints: list[Endpoint], interval: float, timeout: float, stop_at: float, rec: Recorder,
           settings: Settings) -> None:
    asyncio.run(_main(endpoints, interval, timeout, stop_at, rec))
