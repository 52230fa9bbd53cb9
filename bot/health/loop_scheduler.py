"""Runs health checks on one asyncio loop and hands every result to one consumer thread.

The contract of bot/health/scheduler.py (it replaced the APScheduler-based CheckScheduler there):

* at most one check per target is in flight, so results per target arrive in order;
* the consumer decides the next delay from the very result it just saw (`set_next` inside
  `on_result`), and that delay is the one used: a target is armed again only once its result
  has been consumed;
* one slow or black-holed target delays only itself.

What differs is how. One event loop, on its own thread, keeps a `call_at` timer per target (a
heap: no job object, trigger or job store per check) and runs the checks itself: a check the
daemon describes as a `Probe` (HTTP, HTTPS or TCP against addresses) is a non-blocking socket
driven by the loop's reader and writer callbacks, with its own timeout. Anything else (a check
function given by a test, SSH to a host, a router read) runs in a small thread pool, as before.
At most `max_inflight` probes have sockets open at once; beyond that a due check waits, and its
lateness says so. On the benchmark's loopback endpoints this costs about a quarter of the CPU the
thread-pool design did (bench/README.md, `checks`).

Results are handed to a single writer thread in batches (one queue put per HANDOFF_DELAY, not
per check), so `on_result`, which may write to the database and post to chat, never blocks the
loop and is never called concurrently: the consumer needs no locks. What the writer asks of the
scheduler (`set_next`, `add`, `remove` and the re-arming after each result) goes back to the loop
in one `call_soon_threadsafe` per batch. `call_soon` hands work from other threads to the writer.

Threads: the loop thread owns every slot's timer, the waiting queue and the open sockets; the
writer thread owns nothing of the scheduler's but reads slot membership; `_lock` guards the
membership (`_slots`) and the phase, which the loop reads without it (a dict lookup and an
attribute read are atomic under the GIL, and a stale read only delays a drop by one check).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import queue
import socket
import ssl
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from ipaddress import IPv4Address

from bot.health.machine import TargetKey
from bot.health.scheduler import DETAIL_MAX, LATENESS_SAMPLES, CheckJob, OnResult, RunCheck
from bot.inventory import CheckSpec

log = logging.getLogger(__name__)

# As run_check: at most this much of an answer's body is read and searched.
MAX_BODY = 65536
# An answer whose head is longer than this is not a health check's answer.
MAX_HEAD = 65536
USER_AGENT = "lasthop-healthcheck"
# Results wait this long on the loop before they go to the writer together: one queue put, one
# writer wake-up and one call back to the loop per batch instead of per check (at thousands of
# checks a second, those wake-ups and the GIL hand-overs they cause cost more than the checks).
# It delays consuming a result, never starting a check; delays count from consumption anyway.
HANDOFF_DELAY = 0.002


@dataclass(frozen=True)
class Probe:
    """A check the loop runs itself: `spec` against each address in turn; all must pass, and the
    detail is the first failure's, else the first address's (as the daemon's VIP checks)."""

    addresses: tuple[IPv4Address, ...]
    spec: CheckSpec
    source: IPv4Address | None = None


# Which jobs the loop checks itself: a Probe, or None to call `run` in the pool.
ProbeFor = Callable[[CheckJob], Probe | None]
# Called on the writer thread before on_result for a probe's result: (job, started, ended), monotonic.
OnCheck = Callable[[CheckJob, float, float], None]


class _Phase(Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class _Target:
    """One address of a probe, with what a check of it sends, worked out once at add()."""

    __slots__ = ("host", "prefix", "request")

    def __init__(self, address: IPv4Address, spec: CheckSpec) -> None:
        self.host = (str(address), spec.port)
        if spec.kind == "tcp":
            self.prefix = f"tcp {address}:{spec.port}"
            self.request = b""
            return
        self.prefix = f"{spec.kind}://{address}:{spec.port}{spec.path}"
        if spec.host_header:
            host = spec.host_header
        else:  # what http.client sends: the port only when it is not the scheme's
            host = str(address) if spec.port == (443 if spec.kind == "https" else 80) else f"{address}:{spec.port}"
        # Connection: close, so the server closes first and keeps the TIME_WAIT, not the checker.
        self.request = (f"GET {spec.path} HTTP/1.1\r\nHost: {host}\r\nAccept-Encoding: identity\r\n"
                        f"User-Agent: {USER_AGENT}\r\nConnection: close\r\n\r\n").encode("ascii")


class _Slot:
    """One scheduled target. `handle` is its waiting timer (loop thread only); `delay` is what the
    next arming uses (None: the interval)."""

    __slots__ = ("delay", "due", "handle", "job", "probe", "targets")

    def __init__(self, job: CheckJob, delay: float, probe: Probe | None) -> None:
        self.job = job
        self.delay: float | None = delay
        self.handle: asyncio.TimerHandle | None = None
        self.due = 0.0
        self.probe = probe
        self.targets = tuple(_Target(a, probe.spec) for a in probe.addresses) if probe is not None else ()


# slot, ok, detail, lateness, started, ended, whether the loop ran it (a probe)
_Result = tuple[_Slot, bool, str, float, float, float, bool]
_Item = list[_Result] | Callable[[], None] | None  # None: the writer's end marker
_Op = Callable[[], None]  # work for the loop, from the writer, sent in batches


def judge(spec: CheckSpec, buf: bytes | bytearray, eof: bool) -> tuple[bool, str] | None:
    """An HTTP answer read so far against `spec`, as run_check judges it; None: read more first.

    The reasons are run_check's without the URL: `status 503, expected 200`, `body lacks 'x'`,
    http.client's for an empty or malformed answer.
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if not eof and len(buf) < MAX_HEAD:
            return None
        if not buf:
            return False, "Remote end closed connection without response"
        head, body = bytes(buf), b""
    else:
        head, body = bytes(buf[:end]), bytes(buf[end + 4:])
    line_end = head.find(b"\r\n")
    line = head if line_end < 0 else head[:line_end]
    parts = line.split(None, 2)
    status = int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() and len(parts[1]) == 3 else 0
    if not parts[0].startswith(b"HTTP/") or not 100 <= status <= 999:
        return False, repr(line.decode("iso-8859-1") + "\r\n")  # http.client's BadStatusLine
    if status != spec.expect_status:
        return False, f"status {status}, expected {spec.expect_status}"
    if not spec.body:
        return True, str(status)  # nothing in the body is asked for: no need to wait for it
    length, chunked = -1, False
    for field in head[line_end + 2:].split(b"\r\n") if line_end >= 0 else ():
        name, _, value = field.partition(b":")
        name = name.strip().lower()
        if name == b"content-length" and value.strip().isdigit():
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        body, complete = _dechunk(body)
    else:
        complete = len(body) >= (min(length, MAX_BODY) if length >= 0 else MAX_BODY)
        if length >= 0:
            body = body[:length]
    if not (complete or eof or len(body) >= MAX_BODY):
        return None
    if spec.body in body[:MAX_BODY].decode("utf-8", "replace"):
        return True, str(status)
    return False, f"body lacks {spec.body!r}"


def _dechunk(data: bytes) -> tuple[bytes, bool]:
    """The body of a chunked answer read so far, and whether its last chunk has come."""
    out, pos = bytearray(), 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return bytes(out), False
        try:
            size = int(data[pos:eol].split(b";", 1)[0].strip() or b"x", 16)
        except ValueError:
            return bytes(out), True  # garbage: judge what came
        if size == 0:
            return bytes(out), True
        start = eol + 2
        out += data[start:start + size]
        if start + size + 2 > len(data) or len(out) >= MAX_BODY:
            return bytes(out), len(out) >= MAX_BODY
        pos = start + size + 2


class _Check:
    """One probe of one address on a bare non-blocking socket, driven by the loop's reader and
    writer callbacks: no Task, transport or future, since per check those cost more CPU than the
    socket calls themselves. `done` is called once, on the loop, unless the check is aborted."""

    __slots__ = ("buf", "done", "fd", "first", "handle", "index", "lateness", "loop", "out", "reading",
                 "slot", "sock", "spec", "started", "target", "writing")

    def __init__(self, loop: asyncio.AbstractEventLoop, slot: _Slot, index: int, lateness: float, started: float,
                 first: str, done: Callable[[_Check, bool, str], None]) -> None:
        assert slot.probe is not None
        self.loop = loop
        self.slot = slot
        self.index = index
        self.lateness = lateness
        self.started = started
        self.first = first  # the detail of the first address, once passed
        self.done: Callable[[_Check, bool, str], None] | None = done
        self.spec = slot.probe.spec
        self.target = slot.targets[index]
        self.buf = bytearray()
        self.out = b""
        self.sock: socket.socket | None = None
        self.fd = -1
        self.reading = self.writing = False
        self.handle: asyncio.TimerHandle | None = None

    def begin(self, source: IPv4Address | None) -> None:
        loop, spec = self.loop, self.spec
        self.handle = loop.call_at(loop.time() + spec.timeout, self._finish, False,
                                   f"no answer within {spec.timeout:g}s")
        try:
            self.sock = sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            self.fd = sock.fileno()
            if source is not None:
                sock.bind((str(source), 0))  # the probe's own address, as run_check's source_address
            err = sock.connect_ex(self.target.host)
        except OSError as e:
            loop.call_soon(self._finish, False, e.strerror or str(e))
            return
        if err not in (0, errno.EINPROGRESS):
            loop.call_soon(self._finish, False, os.strerror(err))
            return
        loop.add_writer(self.fd, self._connected)
        self.writing = True

    def _connected(self) -> None:
        assert self.sock is not None
        self.loop.remove_writer(self.fd)
        self.writing = False
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._finish(False, os.strerror(err))
            return
        if self.spec.kind == "tcp":
            self._finish(True, "open")
            return
        self.out = self.target.request
        self._send()

    def _send(self) -> None:
        assert self.sock is not None
        try:
            sent = self.sock.send(self.out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as e:
            self._finish(False, e.strerror or str(e))
            return
        self.out = self.out[sent:]
        if self.out:  # a long request and a full buffer: the rest when the socket can take it
            if not self.writing:
                self.loop.add_writer(self.fd, self._send)
                self.writing = True
            return
        if self.writing:
            self.loop.remove_writer(self.fd)
            self.writing = False
        self.loop.add_reader(self.fd, self._readable)
        self.reading = True

    def _readable(self) -> None:
        assert self.sock is not None
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._finish(False, e.strerror or str(e))
            return
        self.buf += data
        verdict = judge(self.spec, self.buf, not data)
        if verdict is not None:
            self._finish(*verdict)

    def _finish(self, ok: bool, reason: str) -> None:
        done, self.done = self.done, None
        if done is None:
            return  # the timeout and the answer raced; the first one counted
        self.close()
        done(self, ok, f"{self.target.prefix}: {reason}")

    def abort(self) -> None:
        self.done = None
        self.close()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        if self.reading:
            self.loop.remove_reader(self.fd)
            self.reading = False
        if self.writing:
            self.loop.remove_writer(self.fd)
            self.writing = False
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class _TlsCheck(_Check):
    """An HTTPS probe: asyncio's streams and its ssl layer on the same loop. Dearer per check than
    the bare socket, but HTTPS health checks are few, and TLS by hand (MemoryBIO) is easy to get wrong."""

    __slots__ = ("task",)

    def begin_tls(self, source: IPv4Address | None, context: ssl.SSLContext) -> None:
        self.task: asyncio.Task[tuple[bool, str]] | None = self.loop.create_task(self._run(source, context))
        self.task.add_done_callback(self._ran)

    async def _run(self, source: IPv4Address | None, context: ssl.SSLContext) -> tuple[bool, str]:
        spec, (host, port) = self.spec, self.target.host
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(spec.timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=context, server_hostname=host,
                    local_addr=(str(source), 0) if source is not None else None)
                writer.write(self.target.request)
                buf = bytearray()
                while True:
                    data = await reader.read(65536)
                    buf += data
                    verdict = judge(spec, buf, not data)
                    if verdict is not None:
                        return verdict
        except TimeoutError:
            return False, f"no answer within {spec.timeout:g}s"
        except ssl.SSLError as e:  # before OSError: it is one
            return False, f"TLS error: {e.reason or e}"
        except OSError as e:
            return False, e.strerror or str(e) or type(e).__name__
        finally:
            if writer is not None:
                # abort, not close: a graceful TLS close waits for the peer (up to 30 s by default).
                writer.transport.abort()

    def _ran(self, task: asyncio.Task[tuple[bool, str]]) -> None:
        self.task = None
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._finish(False, f"check error: {type(exc).__name__}: {exc}")
        else:
            self._finish(*task.result())

    def abort(self) -> None:
        self.done = None
        task = getattr(self, "task", None)  # None until begin_tls
        if task is not None:
            task.cancel()


class LoopScheduler:
    def __init__(
        self,
        run: RunCheck,
        on_result: OnResult,
        *,
        probe: ProbeFor | None = None,
        max_inflight: int = 512,
        max_workers: int = 8,
        clock: Callable[[], float] = time.monotonic,
        on_lateness: Callable[[float], None] | None = None,
        on_check: OnCheck | None = None,
    ) -> None:
        if max_inflight < 1 or max_workers < 1:
            raise ValueError(f"max_inflight and max_workers must be at least 1 (got {max_inflight}, {max_workers})")
        self._run = run
        self._on_result = on_result
        self._probe_for = probe
        self._cap = max_inflight
        self._workers = max_workers
        # Public so they can be wired after construction (metrics); called on the writer thread.
        self.on_lateness = on_lateness
        self.on_check = on_check
        self._clock = clock
        self._loop_clock = clock is time.monotonic  # then the loop's own time serves, one call fewer
        self._lock = threading.Lock()
        self._slots: dict[TargetKey, _Slot] = {}
        self._phase = _Phase.NEW
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._writer: threading.Thread | None = None
        self._writer_ident = -1
        self._pool: ThreadPoolExecutor | None = None
        self._results: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        # Loop thread only:
        self._out: list[_Result] = []
        self._flushing = False
        self._waiting: deque[_Slot] = deque()  # due, but max_inflight probes are running
        self._live: set[_Check] = set()
        self._pool_busy = 0
        self._idle: asyncio.Event | None = None  # set by the loop once stopping and nothing runs
        self._tls: dict[bool, ssl.SSLContext] = {}
        # Writer thread only: what it asked of the loop during the item it is handling.
        self._ops: list[_Op] = []
        self._stats_lock = threading.Lock()
        self._late: deque[float] = deque(maxlen=LATENESS_SAMPLES)
        self._late_count = 0
        self._late_last = 0.0

    # -- the consumer's API --------------------------------------------------------
    def add(self, job: CheckJob, *, first_delay: float = 0.0) -> None:
        """Schedule `job`, first run after `first_delay` seconds (counted from start() if not started yet)."""
        name = f"{job.key[0]}/{job.key[1]}"
        if job.interval <= 0 or job.fast_interval <= 0 or job.timeout <= 0:
            raise ValueError(f"{name}: interval, fast_interval and timeout must be positive")
        if job.timeout >= job.interval:
            # Otherwise a target that always times out would be checked back to back, never on time.
            raise ValueError(
                f"{name}: check timeout {job.timeout:g}s must be shorter than its interval {job.interval:g}s"
            )
        if first_delay < 0:
            raise ValueError(f"{name}: first_delay must not be negative (got {first_delay:g})")
        probe = self._probe_for(job) if self._probe_for is not None else None
        if probe is not None and not probe.addresses:
            probe = None
        try:
            slot = _Slot(job, first_delay, probe)
        except UnicodeEncodeError:
            # A path or Host header http.client would have to encode: leave that check to run.
            slot = _Slot(job, first_delay, None)
        with self._lock:
            if self._phase in (_Phase.STOPPING, _Phase.STOPPED):
                raise RuntimeError("the check scheduler is stopped")
            if job.key in self._slots:
                raise ValueError(f"{name} is already scheduled; remove it first")
            self._slots[job.key] = slot
            if self._phase is _Phase.RUNNING:
                self._to_loop(lambda: self._arm(slot, slot.delay))

    def remove(self, key: TargetKey) -> None:
        """Stop checking `key`. A result already being handed over on the writer thread may still
        arrive (none can when remove is called from on_result itself); later ones never do."""
        with self._lock:
            slot = self._slots.pop(key, None)
            if slot is not None and self._phase is _Phase.RUNNING:
                self._to_loop(lambda: self._disarm(slot))

    def set_next(self, key: TargetKey, delay: float) -> None:
        """Run `key`'s next check `delay` seconds from now (once; later runs go back to the interval).

        From on_result this sets the delay of the check after the one just reported; while the
        next check is already waiting, it is moved. An unknown key is ignored: it may have just
        been removed by another thread.
        """
        if delay < 0:
            raise ValueError(f"delay must not be negative (got {delay:g})")
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                return
            if self._phase is _Phase.NEW:
                slot.delay = delay
            elif self._phase is _Phase.RUNNING:
                self._to_loop(lambda: self._set(slot, delay))

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the writer thread, in turn with the results: how another thread (a timer, a
        command) changes what on_result owns without a lock. Dropped once the scheduler has stopped."""
        with self._lock:
            if self._phase is _Phase.STOPPED:
                return
        self._results.put(fn)

    def start(self) -> None:
        with self._lock:
            if self._phase is not _Phase.NEW:
                raise RuntimeError("a check scheduler starts once")
            self._phase = _Phase.RUNNING
            self._loop = loop = asyncio.new_event_loop()
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="health-check")
            self._writer = threading.Thread(target=self._write, name="health-results", daemon=True)
            self._loop_thread = threading.Thread(target=self._serve, name="health-loop", daemon=True)
            slots = list(self._slots.values())
            # Under the lock, so an add() from another thread is armed after these, not before.
            loop.call_soon_threadsafe(self._arm_all, slots)
        self._writer.start()
        self._loop_thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop scheduling, let running checks finish and their results be delivered, for up to
        `timeout` seconds in all (plus a moment to close what is left). After stop() returns,
        on_result is never called again, and no socket or thread of the scheduler's is left,
        but for a pool thread inside a `run` that ignores its own timeout: it ends when that returns."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._phase in (_Phase.STOPPING, _Phase.STOPPED):
                return
            started = self._phase is _Phase.RUNNING
            self._phase = _Phase.STOPPING
        loop, loop_thread = self._loop, self._loop_thread
        if started and loop is not None and loop_thread is not None:
            if threading.current_thread() is loop_thread:
                raise RuntimeError("stop() cannot be called on the check loop: it would wait for itself")
            drained = asyncio.run_coroutine_threadsafe(self._drain(deadline), loop)
            try:
                # The drain gives up on running checks at the deadline and then only closes sockets.
                drained.result(max(0.0, deadline - time.monotonic()) + 2.0)
            except Exception:
                log.exception("the health loop did not drain")
            # After every finished check's result, so those are still delivered.
            self._results.put(None)
            writer = self._writer
            if writer is not None and writer is not threading.current_thread():
                writer.join(max(0.0, deadline - time.monotonic()))
            loop.call_soon_threadsafe(loop.stop)
            loop_thread.join(max(1.0, deadline - time.monotonic()))
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            self._phase = _Phase.STOPPED

    def lateness_stats(self) -> dict[str, float]:
        """How late checks started versus their scheduled time, in seconds: `count` of all checks
        ever, `last`, and `max` and `p50` over the last LATENESS_SAMPLES checks."""
        with self._stats_lock:
            samples = list(self._late)
            count, last = self._late_count, self._late_last
        if not samples:
            return {"count": 0.0, "max": 0.0, "last": 0.0, "p50": 0.0}
        return {"count": float(count), "max": max(samples), "last": last, "p50": statistics.median(samples)}

    # -- hand-offs between threads -------------------------------------------------------
    def _to_loop(self, op: _Op) -> None:
        # From the writer: kept for the end of the item it is handling, then sent in one wake-up.
        if threading.get_ident() == self._writer_ident:
            self._ops.append(op)
        elif self._loop is not None:
            self._loop.call_soon_threadsafe(op)

    def _apply(self, ops: list[_Op]) -> None:
        for op in ops:
            try:
                op()
            except Exception:
                log.exception("scheduling work on the health loop failed")

    # -- the loop thread -------------------------------------------------------------------
    def _serve(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            # Only what a drain that ran out of time left: cancelled HTTPS checks finish closing here.
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                gathered = asyncio.gather(*tasks, return_exceptions=True)
                with contextlib.suppress(Exception):
                    loop.run_until_complete(asyncio.wait_for(gathered, 1.0))
            loop.close()

    def _current(self, slot: _Slot) -> bool:
        return self._phase is _Phase.RUNNING and self._slots.get(slot.job.key) is slot

    def _arm_all(self, slots: list[_Slot]) -> None:
        for slot in slots:
            if self._current(slot) and slot.handle is None:
                self._arm(slot, slot.delay)

    def _arm(self, slot: _Slot, delay: float | None) -> None:
        if not self._current(slot):
            return
        if slot.handle is not None:
            slot.handle.cancel()
        if delay is None:
            delay = slot.job.interval if slot.delay is None else slot.delay
        slot.delay = None
        loop = self._loop
        assert loop is not None
        now = loop.time()
        slot.due = (now if self._loop_clock else self._clock()) + delay
        slot.handle = loop.call_at(now + delay, self._fire, slot)

    def _rearm(self, slot: _Slot) -> None:
        # After its result was consumed: the delay set_next gave, else the interval.
        if slot.handle is None:
            self._arm(slot, None)

    def _set(self, slot: _Slot, delay: float) -> None:
        if not self._current(slot):
            return
        if slot.handle is not None:
            self._arm(slot, delay)  # waiting: moved
        else:
            slot.delay = delay  # running or being consumed: the next arming uses it

    def _disarm(self, slot: _Slot) -> None:
        if slot.handle is not None:
            slot.handle.cancel()
            slot.handle = None

    def _fire(self, slot: _Slot) -> None:
        slot.handle = None
        if not self._current(slot):
            return
        if slot.probe is None:
            self._submit(slot)
        elif len(self._live) >= self._cap:
            self._waiting.append(slot)
        else:
            self._start(slot)

    def _late_by(self, slot: _Slot, now: float) -> float:
        lateness = max(0.0, now - slot.due)
        with self._stats_lock:
            self._late.append(lateness)
            self._late_count += 1
            self._late_last = lateness
        return lateness

    def _start(self, slot: _Slot) -> None:
        loop = self._loop
        assert loop is not None and slot.probe is not None
        now = loop.time()
        lateness = self._late_by(slot, now if self._loop_clock else self._clock())
        self._begin(slot, 0, lateness, now, "")

    def _begin(self, slot: _Slot, index: int, lateness: float, started: float, first: str) -> None:
        loop = self._loop
        assert loop is not None and slot.probe is not None
        spec = slot.probe.spec
        if spec.kind == "https":
            tls = _TlsCheck(loop, slot, index, lateness, started, first, self._checked)
            self._live.add(tls)
            tls.begin_tls(slot.probe.source, self._context(spec.tls_verify))
        else:
            check = _Check(loop, slot, index, lateness, started, first, self._checked)
            self._live.add(check)
            check.begin(slot.probe.source)

    def _context(self, verify: bool) -> ssl.SSLContext:
        # One context per kind, made once: loading the CA store costs milliseconds per check.
        ctx = self._tls.get(verify)
        if ctx is None:
            ctx = ssl.create_default_context()
            if not verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self._tls[verify] = ctx
        return ctx

    def _checked(self, check: _Check, ok: bool, detail: str) -> None:
        self._live.discard(check)
        slot = check.slot
        if ok and check.index + 1 < len(slot.targets):
            if self._current(slot):
                self._begin(slot, check.index + 1, check.lateness, check.started, check.first or detail)
            return
        loop = self._loop
        assert loop is not None
        self._deliver((slot, ok, check.first or detail if ok else detail, check.lateness, check.started,
                       loop.time(), True))
        waiting = self._waiting
        while waiting and len(self._live) < self._cap:
            nxt = waiting.popleft()
            if self._current(nxt):
                self._start(nxt)
        self._check_idle()

    def _deliver(self, result: _Result) -> None:
        self._out.append(result)
        if not self._flushing:
            self._flushing = True
            assert self._loop is not None
            self._loop.call_later(HANDOFF_DELAY, self._flush)

    def _flush(self) -> None:
        self._flushing = False
        if self._out:
            batch, self._out = self._out, []
            self._results.put(batch)

    def _submit(self, slot: _Slot) -> None:
        assert self._pool is not None
        self._pool_busy += 1
        try:
            self._pool.submit(self._blocking, slot)
        except RuntimeError:  # the pool is shut down: stopping
            self._pool_busy -= 1

    def _pool_returned(self) -> None:
        self._pool_busy -= 1
        self._check_idle()

    def _check_idle(self) -> None:
        if self._idle is not None and not self._live and self._pool_busy == 0:
            self._idle.set()

    async def _drain(self, deadline: float) -> None:
        with self._lock:
            slots = list(self._slots.values())
        for slot in slots:
            self._disarm(slot)
        self._waiting.clear()
        self._idle = asyncio.Event()
        self._check_idle()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), max(0.0, deadline - time.monotonic()))
        # Out of time: what still runs is dropped and its socket closed.
        tls = [c.task for c in self._live if isinstance(c, _TlsCheck) and c.task is not None]
        for check in list(self._live):
            check.abort()
        self._live.clear()
        if tls:
            await asyncio.wait(tls, timeout=1.0)
        self._flush()

    # -- the pool (checks the loop does not run itself) -----------------------------------------
    def _blocking(self, slot: _Slot) -> None:
        loop = self._loop
        assert loop is not None
        try:
            if not self._current(slot):
                return
            lateness = self._late_by(slot, self._clock())
            started = time.monotonic()
            ok, detail = False, "check did not run"
            try:
                ok, detail = self._run(slot.job)
                ok, detail = bool(ok), str(detail)
            except Exception as e:
                log.warning("health check %s/%s raised", *slot.job.key, exc_info=True)
                ok, detail = False, _short(f"check error: {type(e).__name__}: {e}")
            # Queued before the loop hears it returned, so stop() puts its end marker after this result.
            self._results.put([(slot, ok, detail, lateness, started, time.monotonic(), False)])
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is closed: stop() gave up on this check
                loop.call_soon_threadsafe(self._pool_returned)

    # -- the writer thread -------------------------------------------------------------------
    def _write(self) -> None:
        self._writer_ident = threading.get_ident()
        while True:
            try:
                # Bounded, though only stop()'s end marker ends this loop: no wait without a timeout.
                item = self._results.get(timeout=5.0)
            except queue.Empty:
                continue
            if item is None:
                return
            if isinstance(item, list):
                for result in item:
                    self._consume(result)
            else:
                self._call(item)
            if self._ops:
                ops, self._ops = self._ops, []
                loop = self._loop
                if loop is not None:
                    with contextlib.suppress(RuntimeError):  # closed: stop() has given up on us
                        loop.call_soon_threadsafe(self._apply, ops)

    def _consume(self, result: _Result) -> None:
        slot, ok, detail, lateness, started, ended, probed = result
        with self._lock:
            deliver = self._phase is not _Phase.STOPPED and self._slots.get(slot.job.key) is slot
        if not deliver:
            return
        on_lateness = self.on_lateness
        if on_lateness is not None:
            try:
                on_lateness(lateness)
            except Exception:
                log.exception("lateness callback failed")
        on_check = self.on_check
        if probed and on_check is not None:
            try:
                on_check(slot.job, started, ended)
            except Exception:
                log.exception("check callback failed")
        try:
            self._on_result(slot.job, ok, detail, lateness)
        except Exception:
            # A consumer bug must not end health checking for every target.
            log.exception("health result handler failed for %s/%s", *slot.job.key)
        self._ops.append(lambda: self._rearm(slot))

    def _call(self, fn: Callable[[], None]) -> None:
        with self._lock:
            if self._phase is _Phase.STOPPED:
                return
        try:
            fn()
        except Exception:
            log.exception("work handed to the health writer thread failed")


def _short(text: str) -> str:
    one = " ".join(text.split())
    return one if len(one) <= DETAIL_MAX else one[: DETAIL_MAX - 1] + "…"


__all__ = ["MAX_BODY", "LoopScheduler", "OnCheck", "Probe", "ProbeFor", "judge"]
