"""A web server that names itself: every GET or HEAD gets 200 and the body "<name>\\n".

Run inside a web host's namespace, it tells the client which host answered a VIP.
Standard library only, and runnable as `python3 -m lab.webserver` or by path.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import socketserver
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType


class _Handler(BaseHTTPRequestHandler):
    body = b""
    server_version = "lasthop-lab"
    sys_version = ""

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def _answer(self, *, with_body: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        if with_body:
            self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        # Quiet: the log file is for failures, not for every probe.
        pass


class _Server(ThreadingHTTPServer):
    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the FQDN of the hostname; in a lab
        # namespace that is a DNS query with nowhere to go, 5 s per start.
        socketserver.TCPServer.server_bind(self)
        self.server_name = socket.gethostname()
        self.server_port = self.server_address[1]


def make_server(name: str, port: int, bind: str = "") -> ThreadingHTTPServer:
    handler = type("Handler", (_Handler,), {"body": f"{name}\n".encode()})
    return _Server((bind, port), handler)


def _write_pidfile(path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    tmp.replace(path)


def _remove_pidfile(path: Path) -> None:
    try:
        if path.read_text().strip() == str(os.getpid()):
            path.unlink()
    except OSError:
        pass


def _daemonize(pidfile: Path) -> None:
    """Detach (double fork, new session); the starter exits only once the pid file is written.

    So whoever started us knows, when we return, that the port is bound and the
    pid file is there, without polling.
    """
    ready_r, ready_w = os.pipe()
    if os.fork() > 0:
        os.close(ready_w)
        with os.fdopen(ready_r, "rb") as ready:
            ok = ready.read() == b"ready"
        os._exit(0 if ok else 1)
    os.close(ready_r)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    _write_pidfile(pidfile)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.write(ready_w, b"ready")
    os.close(ready_w)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--name", required=True, help="the body every request gets")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--bind", default="", help="address to listen on (default: all)")
    parser.add_argument("--pidfile", type=Path, required=True)
    parser.add_argument("--daemon", action="store_true", help="detach once listening")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Bind before detaching: a busy port is reported to the starter as a failure.
    try:
        server = make_server(args.name, args.port, args.bind)
    except OSError as exc:
        where = f"{args.bind or '*'}:{args.port}"
        print(f"webserver {args.name}: cannot listen on {where}: {exc}", file=sys.stderr)
        return 1
    if args.daemon:
        _daemonize(args.pidfile)
    else:
        _write_pidfile(args.pidfile)
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        _remove_pidfile(args.pidfile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
