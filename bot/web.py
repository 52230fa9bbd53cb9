"""The process's small HTTP face: /healthz, /metrics, and any POST routes given (Slack's events)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bot.metrics import Metrics

# body, headers, query string -> status, headers, body
PostRoute = Callable[[bytes, Mapping[str, str], str], tuple[int, dict[str, str], bytes]]
MAX_BODY = 1 << 20


def make_server(host: str, port: int, metrics: Metrics, healthy: Callable[[], bool],
                post_routes: Mapping[str, PostRoute] | None = None) -> ThreadingHTTPServer:
    routes = dict(post_routes or {})

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            path, _, query = self.path.partition("?")
            route = routes.get(path)
            length = int(self.headers.get("Content-Length") or 0)
            if route is None or length > MAX_BODY:
                status, headers, body = (404 if route is None else 413), {"Content-Type": "text/plain"}, b"no\n"
            else:
                raw = self.rfile.read(length)
                status, headers, body = route(raw, {k: v for k, v in self.headers.items()}, query)
            self.send_response(status)
            for k, v in headers.items():
                if k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/metrics":
                body, ctype, code = metrics.render(), "text/plain; version=0.0.4", 200
            elif self.path == "/healthz":
                ok = healthy()
                body, ctype, code = (b"ok\n" if ok else b"stopping\n"), "text/plain", 200 if ok else 503
            else:
                body, ctype, code = b"not found\n", "text/plain", 404
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # scrapes every few seconds would drown the log

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.timeout = 5
    return server


def serve_in_background(server: ThreadingHTTPServer) -> threading.Thread:
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5}, name="lasthop-http",
                         daemon=True)
    t.start()
    return t
