"""The endpoints the checks benchmark checks: one asyncio process answering on many loopback ports.

Run apart from the checker (`python -m bench._httpd --ports 50`) so that its CPU is not counted
as the checker's. Every request gets `200 ok` and the connection is closed, as a health check
wants: each check is a new TCP connection. It prints one JSON line, {"ports": [...]}, once every
port listens, and exits on SIGTERM or when stdin closes (so it never outlives the benchmark).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
            b"Connection: close\r\n\r\nok\n")
# One request head at most: anything longer is not a health check.
MAX_HEAD = 8192


class _Answer(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.transport is not None and (b"\r\n\r\n" in self.buf or len(self.buf) > MAX_HEAD):
            self.transport.write(RESPONSE)
            self.transport.close()
            self.transport = None


async def serve(host: str, ports: int) -> None:
    loop = asyncio.get_running_loop()
    servers = [await loop.create_server(_Answer, host, 0, backlog=4096, reuse_address=True) for _ in range(ports)]
    bound = [s.sockets[0].getsockname()[1] for s in servers]
    print(json.dumps({"ports": bound}), flush=True)
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_signal_handler(signal.SIGINT, done.set)
    # stdin closing means the benchmark is gone, however it went.
    stdin = sys.stdin.fileno()
    loop.add_reader(stdin, lambda: done.set() if not os.read(stdin, 4096) else None)
    await done.wait()
    for s in servers:
        s.close()


def main() -> None:
    p = argparse.ArgumentParser(description="HTTP endpoints for the checks benchmark")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--ports", type=int, default=50)
    a = p.parse_args()
    if not 1 <= a.ports <= 1000:
        sys.exit("--ports must be 1 to 1000")
    asyncio.run(serve(a.host, a.ports))


if __name__ == "__main__":
    main()
