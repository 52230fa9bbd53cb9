"""One-shot checks against real servers on loopback: HTTP, HTTPS with and without verification, TCP."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from support.http_servers import http_server, https_server

from bot.health.checks import http_check, run_check, tcp_check
from bot.inventory import CheckSpec

LOOP = IPv4Address("127.0.0.1")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow":
            threading.Event().wait(2)
        body = f"web1 host={self.headers.get('Host')}\n".encode()
        self.send_response(503 if self.path == "/sick" else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def port() -> Iterator[int]:
    yield from http_server(Handler)


@pytest.fixture
def tls_port(tmp_path: Path) -> Iterator[int]:
    yield from https_server(Handler, tmp_path)


def spec(**kw: object) -> CheckSpec:
    return CheckSpec(**{"kind": "http", "timeout": 0.5, **kw})  # type: ignore[arg-type]


def test_http_ok_status_body_and_host_header(port: int) -> None:
    assert http_check(LOOP, spec(port=port)).ok
    got = http_check(LOOP, spec(port=port, body="host=www.example.test", host_header="www.example.test"))
    assert got.ok, got.detail
    missing = http_check(LOOP, spec(port=port, body="web2"))
    assert not missing.ok and missing.detail.endswith("body lacks 'web2'")
    sick = http_check(LOOP, spec(port=port, path="/sick"))
    assert not sick.ok and "status 503, expected 200" in sick.detail


def test_http_timeout_and_refused_are_short_failures(port: int) -> None:
    slow = http_check(LOOP, spec(port=port, path="/slow", timeout=0.3))
    assert not slow.ok and slow.detail.endswith("no answer within 0.3s")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    refused = run_check(LOOP, spec(port=closed))
    assert not refused.ok and "refused" in refused.detail.lower()


def test_https_verifies_certificates_by_default(tls_port: int) -> None:
    strict = http_check(LOOP, spec(kind="https", port=tls_port))
    assert not strict.ok and "TLS error" in strict.detail
    lax = http_check(LOOP, spec(kind="https", port=tls_port, tls_verify=False))
    assert lax.ok, lax.detail


def test_tcp_check(port: int) -> None:
    assert tcp_check(LOOP, port, 0.5).ok
    assert run_check(LOOP, spec(kind="tcp", port=port)).detail == f"tcp 127.0.0.1:{port}: open"
