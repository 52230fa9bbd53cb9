"""The client side of bench ack, in a process of its own: Slack's requests are not lasthop's CPU.

Reads one JSON object from stdin: {"port": N, "requests": [raw HTTP request as latin-1 text, ...]}.
Opens one connection per request from as many threads, released together, and writes to stdout a
JSON list of [status, seconds] per request (status 0: no HTTP answer), seconds from just before
the request's bytes are sent to its whole answer read. Standard library only.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time

WAIT = 10.0  # seconds: the bound on one request


def exchange(port: int, raw: bytes) -> tuple[int, float]:
    data = b""
    start = time.monotonic()  # the connection counts: a full listen queue shows there
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
        s.sendall(raw)
        while len(data) < 1 << 20:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        took = time.monotonic() - start
    if not data.startswith(b"HTTP/1."):
        return 0, took
    return int(data.split(b" ", 2)[1]), took


def main() -> int:
    job = json.load(sys.stdin)
    port: int = job["port"]
    raws = [r.encode("latin-1") for r in job["requests"]]
    results: list[tuple[int, float]] = [(0, 0.0)] * len(raws)
    gate = threading.Barrier(len(raws))

    def send(i: int) -> None:
        try:
            gate.wait(timeout=WAIT)
            results[i] = exchange(port, raws[i])
        except (OSError, threading.BrokenBarrierError):
            results[i] = (0, 0.0)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(raws))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=2 * WAIT)
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
