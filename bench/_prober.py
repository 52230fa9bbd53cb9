"""The outage prober: GET http://VIP/ for each VIP every `every` seconds, each on a new connection.

Run inside the lab's client namespace (`python -m bench._prober --every 0.02 VIP...`), so that
every request crosses r1 as a customer's would. One asyncio loop starts a request per VIP per tick
whether the earlier ones have finished or not: a request into a dead link waits for its time-out
while the next ones go out, so the end of an outage is seen within one tick.

Each finished request is one JSON line on stdout: `{"vip", "sent", "done", "host", "error"}`, the
times in `time.monotonic()` seconds (CLOCK_MONOTONIC is one clock for every namespace, so the
benchmark compares them with its own), `host` the body the lab's web server answers (its name) or
null, `error` null or a short reason. It stops when stdin closes, or after `--seconds` at most.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from ipaddress import IPv4Address


async def _get(vip: str, timeout: float) -> tuple[str | None, str | None]:
    request = f"GET / HTTP/1.0\r\nHost: {vip}\r\n\r\n".encode()
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(vip, 80)
            writer.write(request)
            data = await reader.read(4096)
            while chunk := await reader.read(4096):
                data += chunk
    except TimeoutError:
        return None, "timeout"
    except OSError as e:
        return None, e.strerror or type(e).__name__
    finally:
        if writer is not None:
            writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1:2]
    if status != [b"200"]:
        return None, f"HTTP {status[0].decode(errors='replace') if status else '?'}"
    return body.decode(errors="replace").strip(), None


async def _one(vip: str, timeout: float) -> None:
    sent = time.monotonic()
    host, error = await _get(vip, timeout)
    line = json.dumps({"vip": vip, "sent": sent, "done": time.monotonic(), "host": host, "error": error})
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def probe(vips: Sequence[str], every: float, timeout: float, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    closed = asyncio.Event()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def watch_stdin() -> None:
        while await reader.read(1024):
            pass
        closed.set()

    watcher = asyncio.create_task(watch_stdin())
    tasks: set[asyncio.Task[None]] = set()
    start = next_tick = loop.time()
    while not closed.is_set() and loop.time() - start < seconds:
        for vip in vips:
            task = asyncio.create_task(_one(vip, timeout))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        next_tick += every
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closed.wait(), max(0.0, next_tick - loop.time()))
    watcher.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=timeout + 1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._prober")
    parser.add_argument("vips", nargs="+", type=IPv4Address)
    parser.add_argument("--every", type=float, default=0.02, help="seconds between rounds of requests")
    parser.add_argument("--timeout", type=float, default=1.0, help="one request's limit, seconds")
    parser.add_argument("--seconds", type=float, default=60.0, help="stop after this long at most")
    ns = parser.parse_args(argv)
    if not 0.001 <= ns.every <= 10 or not 0.01 <= ns.timeout <= 30 or not 0 < ns.seconds <= 600:
        parser.error("--every 0.001-10, --timeout 0.01-30 and --seconds up to 600")
    asyncio.run(probe([str(v) for v in ns.vips], ns.every, ns.timeout, ns.seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
