"""The process's small HTTP face: /healthz, /metrics, and any POST routes given (Slack's events).

Every request gets an answer: a body that is missing, too long, shorter than its Content-Length
or too slow to arrive is a 4xx, and a route that fails is a 500 with one log line, never a
dropped connection or a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bot.metrics import Metrics

# body, headers, query string -> status, headers, body
PostRoute = Callable[[bytes, Mapping[str, str], str], tuple[int, dict[str, str], bytes]]
MAX_BODY = 1 << 20
READ_TIMEOUT = 10.0  # seconds a client may take between bytes before it is answered 408
LINGER = 2.0  # seconds to wait for the rest of a body nobody will read
_LENGTH = re.compile(r"\d{1,12}")
_TEXT = {"Content-Type": "text/plain; charset=utf-8"}

log = logging.getLogger("lasthop.web")


class Activity:
    """How many HTTP requests this process is answering right now.

    Work handed off after an ack waits (boundedly) for a moment with none, so that when fifty
    people type a command at once each gets its ack before anyone's work competes with the acks
    for the interpreter: Slack gives an ack 3 s, and the answers that follow have no such limit.
    """

    def __init__(self) -> None:
        self._n = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        with self._cond:
            self._n += 1
        try:
            yield
        finally:
            with self._cond:
                self._n -= 1
                if self._n == 0:
                    self._cond.notify_all()

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._n

    def wait_quiet(self, limit: float) -> bool:
        """Until no request is being answered, or `limit` seconds; whether it went quiet."""
        with self._cond:
            return self._cond.wait_for(lambda: self._n == 0, timeout=limit)


class _BadRequest(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def make_server(host: str, port: int, metrics: Metrics, healthy: Callable[[], bool],
                post_routes: Mapping[str, PostRoute] | None = None, *,
                read_timeout: float = READ_TIMEOUT, activity: Activity | None = None) -> ThreadingHTTPServer:
    """`activity`, if given, counts every connection from its thread's start to its close (one
    request each: the server speaks HTTP/1.0)."""
    routes = dict(post_routes or {})
    counting = activity or Activity()

    class Handler(BaseHTTPRequestHandler):
        timeout = read_timeout  # StreamRequestHandler sets it on the socket: no thread waits forever

        def handle(self) -> None:
            with counting.request():
                super().handle()

        def do_POST(self) -> None:
            path, _, query = self.path.partition("?")
            route = routes.get(path)
            try:
                raw = self._body()
                if route is None:
                    raise _BadRequest(404, "not found")
            except _BadRequest as e:
                self.close_connection = True
                self._send(e.status, dict(_TEXT), f"{e.reason}\n".encode())
                self._linger()
                return
            try:
                status, headers, body = route(raw, {k: v for k, v in self.headers.items()}, query)
            except Exception as e:  # a bug in the route: say so once, answer, keep serving
                log.error("POST %s failed: %s", path, type(e).__name__)
                status, headers, body = 500, dict(_TEXT), b"internal error\n"
            self._send(status, headers, body)

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding"):
                raise _BadRequest(411, "Content-Length required, not Transfer-Encoding")
            given = self.headers.get_all("Content-Length") or []
            if not given:
                raise _BadRequest(411, "Content-Length required")
            if len(set(given)) != 1 or not _LENGTH.fullmatch(given[0].strip()):
                raise _BadRequest(400, "bad Content-Length")
            length = int(given[0])
            if length > MAX_BODY:
                raise _BadRequest(413, "body too large")
            try:
                raw = self.rfile.read(length)
            except TimeoutError:
                raise _BadRequest(408, "body too slow") from None
            except OSError:
                raise _BadRequest(400, "body unreadable") from None
            if len(raw) < length:
                raise _BadRequest(400, "body shorter than Content-Length")
            return raw

        def _send(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
            try:
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                if self.close_connection:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the client left before the answer: nobody to tell
                self.close_connection = True

        def _linger(self) -> None:
            """After an early answer, read what the client still sends (boundedly) before closing: a
            close with unread bytes is a reset, which can destroy the answer before the client reads it."""
            try:
                self.connection.shutdown(socket.SHUT_WR)
                self.connection.settimeout(min(read_timeout, LINGER))
                left = MAX_BODY
                while left > 0 and (chunk := self.connection.recv(min(left, 65536))):
                    left -= len(chunk)
            except OSError:
                pass  # gone, or too slow: either way the answer has been sent

        def do_GET(self) -> None:
            if self.path == "/metrics":
                body, ctype, code = metrics.render(), "text/plain; version=0.0.4", 200
            elif self.path == "/healthz":
                ok = healthy()
                body, ctype, code = (b"ok\n" if ok else b"stopping\n"), "text/plain", 200 if ok else 503
            else:
                body, ctype, code = b"not found\n", "text/plain", 404
            self._send(code, {"Content-Type": ctype}, body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # scrapes every few seconds would drown the log

    server = _Server((host, port), Handler)
    server.daemon_threads = True
    server.timeout = 5
    return server


class _Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: a burst of connections (Slack's retries, a
    # channel of people tapping at once) overflows it, and every dropped SYN costs its client
    # a 1 s, then 2 s, then 4 s retransmission: past Slack's 3 s for an ack. The kernel caps
    # this at net.core.somaxconn.
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints a traceback to stderr; one line is enough for a client that broke off.
        kind = sys.exc_info()[0]
        log.warning("HTTP connection from %s ended: %s", client_address[0] if client_address else "?",
                    kind.__name__ if kind else "error")


def serve_in_background(server: ThreadingHTTPServer) -> threading.Thread:
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5}, name="lasthop-http",
                         daemon=True)
    t.start()
    return t
