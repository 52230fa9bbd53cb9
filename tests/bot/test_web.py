"""bot.web: every request is answered, a failing route is one log line and a 500, never a traceback."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from http.server import ThreadingHTTPServer

import pytest

from bot.metrics import Metrics
from bot.web import Activity, PostRoute, make_server, serve_in_background

Answer = tuple[int, dict[str, str], bytes]


def echo(body: bytes, headers: Mapping[str, str], query: str) -> Answer:
    return 200, {"Content-Type": "text/plain", "Content-Length": "999"}, body + query.encode()


def broken(body: bytes, headers: Mapping[str, str], query: str) -> Answer:
    raise KeyError("a secret-looking key")


@pytest.fixture
def serve() -> Iterator[Callable[[dict[str, PostRoute]], int]]:
    servers: list[ThreadingHTTPServer] = []

    def start(routes: dict[str, PostRoute]) -> int:
        server = make_server("127.0.0.1", 0, Metrics(), lambda: True, routes, read_timeout=2.0)
        serve_in_background(server)
        servers.append(server)
        return int(server.server_address[1])

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_a_route_gets_the_body_and_query_and_its_length_header_is_the_real_one(serve: Callable[..., int]) -> None:
    port = serve({"/in": echo})
    assert request(port, "POST", "/in?x=1", b"hello") == (200, b"hellox=1")


def test_a_failing_route_is_a_500_and_one_log_line(serve: Callable[..., int],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    port = serve({"/in": broken})
    status, body = request(port, "POST", "/in", b"x")
    assert (status, body) == (500, b"internal error\n")
    [record] = [r for r in caplog.records if r.name == "lasthop.web"]
    assert record.getMessage() == "POST /in failed: KeyError" and record.exc_info is None


def test_an_unknown_path_is_a_404_for_post_and_get(serve: Callable[..., int]) -> None:
    port = serve({})
    assert request(port, "POST", "/nowhere", b"abc")[0] == 404
    assert request(port, "GET", "/nowhere")[0] == 404
    assert request(port, "GET", "/healthz") == (200, b"ok\n")


def test_a_broken_connection_is_one_warning_not_a_traceback(caplog: pytest.LogCaptureFixture,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    server = make_server("127.0.0.1", 0, Metrics(), lambda: True)
    try:
        try:
            raise ConnectionResetError("peer reset")
        except ConnectionResetError:
            server.handle_error(None, ("127.0.0.1", 5555))  # what socketserver calls from its except block
    finally:
        server.server_close()
    assert "Traceback" not in capsys.readouterr().err
    [record] = [r for r in caplog.records if r.name == "lasthop.web"]
    assert record.getMessage() == "HTTP connection from 127.0.0.1 ended: ConnectionResetError"


def test_a_burst_of_connections_waits_in_the_queue_instead_of_losing_its_syns() -> None:
    """With socketserver's backlog of 5, the 7th connection to a busy server had its SYN dropped and
    waited 1 s, 2 s, 4 s for retransmissions (bench ack: 50 slash commands at once, p99 3.5 s).
    The server here accepts nothing, so every connection must wait in the kernel's queue."""
    server = make_server("127.0.0.1", 0, Metrics(), lambda: True, {}, read_timeout=2.0)
    clients: list[socket.socket] = []
    try:
        for i in range(60):
            s = socket.socket()
            clients.append(s)
            # Under TCP's first retransmission (1 s): a connection in the queue completes at once,
            # one whose SYN was dropped cannot complete before it.
            s.settimeout(0.9)
            try:
                s.connect(server.server_address)
            except TimeoutError:
                pytest.fail(f"connection {i + 1} was not queued (listen backlog too small)")
    finally:
        for s in clients:
            s.close()
        server.server_close()


def test_activity_counts_each_request_while_it_is_answered_and_then_goes_quiet() -> None:
    activity = Activity()
    inside, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def slow(body: bytes, headers: Mapping[str, str], query: str) -> Answer:
        seen.append(activity.in_flight)
        inside.set()
        release.wait(10)
        return 200, {}, b"ok"

    server = make_server("127.0.0.1", 0, Metrics(), lambda: True, {"/slow": slow}, read_timeout=2.0,
                         activity=activity)
    serve_in_background(server)
    try:
        port = int(server.server_address[1])
        answer: list[tuple[int, bytes]] = []
        client = threading.Thread(target=lambda: answer.append(request(port, "POST", "/slow", b"x")))
        client.start()
        assert inside.wait(10)
        assert seen == [1] and activity.in_flight == 1
        assert activity.wait_quiet(0.05) is False  # still answering: the wait ends at its bound
        release.set()
        assert activity.wait_quiet(10) is True
        client.join(10)
        assert answer == [(200, b"ok")] and activity.in_flight == 0
        # The client may have its answer a moment before the server's thread has closed the connection.
        assert request(port, "GET", "/healthz")[0] == 200 and activity.wait_quiet(10) is True
    finally:
        release.set()
        server.shutdown()
        server.server_close()
