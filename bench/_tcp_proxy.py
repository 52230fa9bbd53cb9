"""A TCP forwarder that can be made slow, silent or cut while connections run through it.

    proxy = TcpProxy(("127.0.0.1", 2222)).start()   # listens on proxy.address
    proxy.set_delay(0.2)       # each chunk waits 200 ms before it is passed on
    proxy.stall()              # nothing more is passed on (TCP stays up: a silent link)
    proxy.blackhole()          # the same, by the name the failover tests use for a database cut
    proxy.stall(after=4096)    # ... once another 4096 bytes have gone through, either way
    proxy.resume()             # back to forwarding
    proxy.cut()                # close both sides of every connection now
    proxy.stop()               # or proxy.close()

Stalled data is not dropped: at most one chunk per direction is read and held, the
rest is not read at all, so the senders see a link that went quiet. Every thread is
bounded: at most `max_connections` connections, two pumps each, and every wait wakes
at least every `TICK` seconds to see `stop()`.

From a shell (the lab runs it inside a network namespace):

    python -m bench._tcp_proxy 127.0.0.1:2022 198.51.100.1:22

then type `delay 0.5`, `stall`, `stall 4096`, `resume`, `cut` or `quit` on its stdin.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from collections.abc import Sequence

TICK = 0.1
CHUNK = 65536


class TcpProxy:
    def __init__(self, target: tuple[str, int], listen: tuple[str, int] = ("127.0.0.1", 0),
                 *, max_connections: int = 16) -> None:
        self.target = target
        self.listen = listen
        self.max_connections = max_connections
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._flowing = threading.Event()
        self._flowing.set()
        self._delay = 0.0
        self._budget: int | None = None  # bytes still allowed through before a stall
        self._server: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self.connections = 0  # accepted so far, for tests and logs

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> TcpProxy:
        server = socket.create_server(self.listen)
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

    def stop(self) -> None:
        self._stop.set()
        self._flowing.set()  # wakes stalled pumps so they see the stop
        self.cut()
        if self._server is not None:
            self._server.close()
        for t in list(self._threads):
            t.join(timeout=5 * TICK + self._delay)

    def close(self) -> None:
        """stop(), by the name a socket-like object has."""
        self.stop()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- runtime switches ----------------------------------------------------------------------

    def set_delay(self, seconds: float) -> None:
        self._delay = max(0.0, seconds)

    def stall(self, after: int | None = None) -> None:
        """Stop forwarding now, or once `after` more bytes have gone through (both ways counted)."""
        with self._lock:
            if after is None or after <= 0:
                self._budget = None
                self._flowing.clear()
            else:
                self._budget = after

    def blackhole(self) -> None:
        """Stop forwarding both ways at once, closing nothing: a link that went silent (a cut cable)."""
        self.stall()

    def resume(self) -> None:
        with self._lock:
            self._budget = None
            self._flowing.set()

    @property
    def stalled(self) -> bool:
        return not self._flowing.is_set()

    def cut(self) -> None:
        """Close both sides of every connection open now; later connections are forwarded as usual."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()

    # -- inside -----------------------------------------------------------------------------

    def _spawn(self, target: object, *args: object) -> None:
        t = threading.Thread(target=target, args=args, daemon=True, name="tcp-proxy")  # type: ignore[arg-type]
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
                self.connections += 1
            self._spawn(self._pump, client, upstream)
            self._spawn(self._pump, upstream, client)

    def _take(self, n: int) -> int:
        """How many of `n` bytes may pass now (0 while stalled); starts the stall when the budget runs out."""
        with self._lock:  # stall() clears under the same lock: no chunk slips through after it
            if not self._flowing.is_set():
                return 0
            if self._budget is None:
                return n
            allowed = min(n, self._budget)
            self._budget -= allowed
            if self._budget <= 0:
                self._budget = None
                self._flowing.clear()
            return allowed

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        pending = b""
        while not self._stop.is_set():
            if not pending:
                try:
                    pending = src.recv(CHUNK)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not pending:
                    break  # this side closed: close the other one too
                if self._delay and self._stop.wait(self._delay):
                    break
                continue
            n = self._take(len(pending))
            if n == 0:  # stalled: hold the chunk, read nothing more
                if src.fileno() == -1 or dst.fileno() == -1:
                    break  # cut while stalled: nothing left to forward
                self._flowing.wait(TICK)
                continue
            try:
                dst.sendall(pending[:n])
            except OSError:
                break
            pending = pending[n:]
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m bench._tcp_proxy LISTEN_HOST:PORT TARGET_HOST:PORT", file=sys.stderr)
        return 2
    proxy = TcpProxy(_hostport(args[1]), _hostport(args[0])).start()
    print(f"forwarding {proxy.address[0]}:{proxy.address[1]} -> {args[1]}; "
          "commands: delay SECONDS, stall [BYTES], resume, cut, quit", flush=True)
    try:
        for line in sys.stdin:
            word, *rest = line.split() or [""]
            if word == "delay" and rest:
                proxy.set_delay(float(rest[0]))
            elif word == "stall":
                proxy.stall(int(rest[0]) if rest else None)
            elif word == "resume":
                proxy.resume()
            elif word == "cut":
                proxy.cut()
            elif word == "quit":
                break
            elif word:
                print(f"unknown command {word!r}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        proxy.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
