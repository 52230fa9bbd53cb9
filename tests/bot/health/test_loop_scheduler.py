"""The loop scheduler's own checks (probes) against real servers on loopback.

Each probe's verdict is compared with run_check's on the same server and spec: the loop's check
must say what the blocking one says. No assertion is about elapsed time; waits are bounded.
"""

from __future__ import annotations

import http.server
import os
import socket
import threading
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from support.http_servers import http_server, https_server

from bot.health.checks import run_check
from bot.health.loop_scheduler import LoopScheduler, Probe, judge
from bot.health.scheduler import CheckJob
from bot.inventory import CheckSpec

LOOP = IPv4Address("127.0.0.1")
LOOP2 = IPv4Address("127.0.0.2")  # on lo as well (127/8), so a source to bind to
ABSENT = IPv4Address("192.0.2.1")  # TEST-NET: not on this machine, so binding to it fails
WAIT = 10.0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    gate: threading.Barrier | None = None
    lock = threading.Lock()
    inside = 0
    peak = 0

    def do_GET(self) -> None:
        cls = type(self)
        with cls.lock:
            cls.inside += 1
            cls.peak = max(cls.peak, cls.inside)
        try:
            if self.path == "/slow":
                threading.Event().wait(2)
            if self.path == "/gate" and cls.gate is not None:
                cls.gate.wait(WAIT)
            body = f"web1 host={self.headers.get('Host')} from={self.client_address[0]}\n".encode()
            if self.path == "/chunked":
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for part in (body[:5], body[5:]):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")
                return
            self.send_response(503 if self.path == "/sick" else 200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        finally:
            with cls.lock:
                cls.inside -= 1

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def port() -> Iterator[int]:
    yield from http_server(Handler)


@pytest.fixture
def tls_port(tmp_path: Path) -> Iterator[int]:
    yield from https_server(Handler, tmp_path)


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that completes the TCP handshake (the kernel's backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spec(**kw: object) -> CheckSpec:
    return CheckSpec(**{"kind": "http", "timeout": 0.5, "interval": 60.0, **kw})  # type: ignore[arg-type]


def never(job: CheckJob) -> tuple[bool, str]:
    raise AssertionError("a probe must run on the loop, not in the pool")


class Results:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.got: dict[tuple[str, str], list[tuple[bool, str, float]]] = {}
        self.checked: list[float] = []

    def on_result(self, job: CheckJob, ok: bool, detail: str, lateness: float) -> None:
        with self.cond:
            self.got.setdefault(job.key, []).append((ok, detail, lateness))
            self.cond.notify_all()

    def wait(self, n: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: sum(map(len, self.got.values())) >= n, WAIT), "results did not come"


def probe_once(check: CheckSpec, addresses: tuple[IPv4Address, ...] = (LOOP,),
               source: IPv4Address | None = None) -> tuple[bool, str]:
    """One probe through a real LoopScheduler: its first result."""
    res = Results()
    s = LoopScheduler(never, res.on_result, probe=lambda j: Probe(addresses, check, source))
    s.on_check = lambda job, started, ended: res.checked.append(ended - started)
    s.add(CheckJob(("www-a", "web1"), check.interval, check.fast_interval, check.timeout))
    s.start()
    try:
        res.wait(1)
    finally:
        s.stop(timeout=2.0)
    (ok, detail, lateness), *_ = res.got[("www-a", "web1")]
    assert lateness >= 0.0 and res.checked and res.checked[0] >= 0.0  # on_check saw the probe
    return ok, detail


def same_as_run_check(check: CheckSpec, address: IPv4Address = LOOP,
                      source: IPv4Address | None = None) -> tuple[bool, str]:
    got = probe_once(check, (address,), source)
    blocking = run_check(address, check, source)
    assert got == (blocking.ok, blocking.detail)
    return got


def test_http_ok_status_body_and_the_default_host_header(port: int) -> None:
    assert same_as_run_check(spec(port=port)) == (True, f"http://127.0.0.1:{port}/: 200")
    assert same_as_run_check(spec(port=port, body=f"host=127.0.0.1:{port} "))[0]
    assert same_as_run_check(spec(port=port, body="web2")) == (False, f"http://127.0.0.1:{port}/: body lacks 'web2'")
    assert same_as_run_check(spec(port=port, path="/sick")) == (
        False, f"http://127.0.0.1:{port}/sick: status 503, expected 200")
    assert same_as_run_check(spec(port=port, path="/sick", expect_status=503))[0]
    assert same_as_run_check(spec(port=port, path="/chunked", body="from=127.0.0.1"))[0]


def test_the_host_header_is_sent(port: int) -> None:
    ok, detail = same_as_run_check(spec(port=port, body="host=www.example.test ", host_header="www.example.test"))
    assert ok, detail


def test_refused_and_timeout_are_failures_with_run_checks_reasons(port: int, black_hole: int) -> None:
    closed = closed_port()
    ok, detail = same_as_run_check(spec(port=closed))
    assert not ok and detail == f"http://127.0.0.1:{closed}/: Connection refused"
    assert same_as_run_check(spec(kind="tcp", port=closed)) == (False, f"tcp 127.0.0.1:{closed}: Connection refused")
    assert same_as_run_check(spec(kind="tcp", port=port)) == (True, f"tcp 127.0.0.1:{port}: open")
    slow = probe_once(spec(port=port, path="/slow", timeout=0.3))
    assert slow == (False, f"http://127.0.0.1:{port}/slow: no answer within 0.3s")
    # A black hole: connected, no answer; the probe's own timeout ends it.
    assert same_as_run_check(spec(port=black_hole, timeout=0.3)) == (
        False, f"http://127.0.0.1:{black_hole}/: no answer within 0.3s")


def test_the_probe_binds_its_source_address_before_connecting(port: int) -> None:
    ok, detail = same_as_run_check(spec(port=port, body="from=127.0.0.2"), source=LOOP2)
    assert ok, detail
    assert not probe_once(spec(port=port, body="from=127.0.0.2"))[0]  # without it, the default source
    ok, detail = same_as_run_check(spec(port=port), source=ABSENT)
    assert not ok and detail == f"http://127.0.0.1:{port}/: Cannot assign requested address"


def test_https_verifies_certificates_by_default_and_can_skip_it(tls_port: int) -> None:
    ok, detail = same_as_run_check(spec(kind="https", port=tls_port))
    assert not ok and "TLS error" in detail and "CERTIFICATE_VERIFY_FAILED" in detail
    ok, detail = same_as_run_check(spec(kind="https", port=tls_port, tls_verify=False, body="host=127.0.0.1:"))
    assert ok, detail
    ok, detail = same_as_run_check(spec(kind="https", port=tls_port, tls_verify=False, host_header="www.example.test",
                                        body="host=www.example.test ", path="/sick", expect_status=503))
    assert ok, detail


def test_every_address_of_a_probe_must_pass_and_the_first_failure_is_said(port: int) -> None:
    good = spec(port=port)
    assert probe_once(good, (LOOP, LOOP)) == (True, f"http://127.0.0.1:{port}/: 200")
    # The server listens on 127.0.0.1 only: 127.0.0.2 refuses.
    assert probe_once(good, (LOOP, LOOP2)) == (False, f"http://127.0.0.2:{port}/: Connection refused")


def test_no_more_than_max_inflight_probes_run_at_once(port: int) -> None:
    # The server holds each request until two are inside at once; it counts how many ever were.
    Handler.gate = threading.Barrier(2)
    Handler.peak = 0
    res = Results()
    check = spec(port=port, path="/gate", timeout=WAIT / 2, interval=WAIT)
    s = LoopScheduler(never, res.on_result, probe=lambda j: Probe((LOOP,), check), max_inflight=2)
    try:
        for i in range(6):
            s.add(CheckJob(("www-a", f"web{i}"), check.interval, check.fast_interval, check.timeout))
        s.start()
        res.wait(6)  # all due at once: they went through two at a time
    finally:
        s.stop(timeout=2.0)
        Handler.gate = None
    assert all(r[0][0] for r in res.got.values()), res.got
    assert Handler.peak == 2
    # Four of them waited for a free place, and their lateness says so.
    assert s.lateness_stats()["count"] == 6


def test_stop_closes_a_running_probe_and_leaves_no_socket_or_thread(black_hole: int) -> None:
    before_fds = set(os.listdir("/proc/self/fd"))
    before_threads = set(threading.enumerate())
    res = Results()
    check = spec(port=black_hole, timeout=30.0, interval=60.0)
    s = LoopScheduler(never, res.on_result, probe=lambda j: Probe((LOOP,), check))
    s.add(CheckJob(("www-a", "web1"), check.interval, check.fast_interval, check.timeout))
    s.start()
    for _ in range(int(WAIT / 0.05)):  # wait (bounded) until the probe has started: it then hangs
        if s.lateness_stats()["count"] >= 1:
            break
        threading.Event().wait(0.05)
    assert s.lateness_stats()["count"] == 1
    assert set(os.listdir("/proc/self/fd")) - before_fds  # the loop's and the probe's, open
    s.stop(timeout=0.2)
    # stop() is bounded: on a loaded machine its threads may still be on their way out when it
    # returns, so wait for them (bounded) instead of judging at that instant.
    for _ in range(int(WAIT / 0.05)):
        if set(os.listdir("/proc/self/fd")) <= before_fds and set(threading.enumerate()) <= before_threads:
            break
        threading.Event().wait(0.05)
    assert set(os.listdir("/proc/self/fd")) <= before_fds
    assert set(threading.enumerate()) <= before_threads
    assert res.got == {}  # the aborted probe is not reported


def test_judge_reads_what_http_client_would() -> None:
    ok_spec = spec(body="hello")
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    assert judge(ok_spec, head + b"hel", eof=False) is None  # the body is not all there yet
    assert judge(ok_spec, head + b"hello", eof=False) == (True, "200")
    assert judge(ok_spec, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
                 eof=False) == (True, "200")
    assert judge(spec(), b"HTTP/1.1 200 OK\r\n", eof=False) is None
    assert judge(spec(), b"", eof=True) == (False, "Remote end closed connection without response")
    assert judge(spec(), b"SSH-2.0-OpenSSH\r\n\r\n", eof=True) == (False, repr("SSH-2.0-OpenSSH\r\n"))
    assert judge(spec(), b"HTTP/1.0 301 Moved\r\n\r\n", eof=False) == (False, "status 301, expected 200")
