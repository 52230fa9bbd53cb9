"""A loopback TCP forwarder that can go silent: the takeover benchmark's database cut.

The minimal part of tests/support/tcp_proxy.py that bench needs (bench does not import tests/):
`stall()` holds every byte in both directions while the TCP connections stay up (a network cut,
not a close, so nobody sees an error until their own timeouts), `resume()`, `cut()` closes every
connection open now, `stop()`. Every wait wakes at least every TICK seconds to see stop().
"""

from __future__ import annotations

import contextlib
import socket
import threading

TICK = 0.1
CHUNK = 65536


class TcpProxy:
    def __init__(self, target: tuple[str, int], *, max_connections: int = 64) -> None:
        self.target = target
        self.max_connections = max_connections
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._flowing = threading.Event()
        self._flowing.set()
        self._server: socket.socket | None = None
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> TcpProxy:
        server = socket.create_server(("127.0.0.1", 0))
        server.settimeout(TICK)
        self._server = server
        self._spawn(self._accept_loop)
        return self

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        host, port = self._server.getsockname()[:2]
        return str(host), int(port)

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def cut(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()

    def stop(self) -> None:
        self._stop.set()
        self._flowing.set()  # stalled pumps wake and see the stop
        self.cut()
        if self._server is not None:
            self._server.close()
        for t in list(self._threads):
            t.join(timeout=5 * TICK)

    def _spawn(self, target: object, *args: object) -> None:
        t = threading.Thread(target=target, args=args, daemon=True, name="bench-tcp-proxy")  # type: ignore[arg-type]
        with self._lock:
            self._threads = [x for x in self._threads if x.is_alive()]
            self._threads.append(t)
        t.start()

    def _accept_loop(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed by stop()
            with self._lock:
                full = len(self._pairs) >= self.max_connections
            if full:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5.0)
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.settimeout(TICK)
            with self._lock:
                self._pairs.append((client, upstream))
            self._spawn(self._pump, client, upstream)
            self._spawn(self._pump, upstream, client)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while not self._stop.is_set():
            # Stalled: read nothing, so the sender's data waits in the kernel as on a dead link.
            if not self._flowing.wait(TICK):
                if src.fileno() == -1 or dst.fileno() == -1:
                    break  # cut while stalled
                continue
            try:
                data = src.recv(CHUNK)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break  # this side closed: close the other one too
            # A chunk read just before a stall is held until resume, as a link would hold it.
            while not self._flowing.wait(TICK):
                if self._stop.is_set() or dst.fileno() == -1:
                    return
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
