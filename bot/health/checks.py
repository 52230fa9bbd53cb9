"""One-shot health checks: TCP connect and HTTP(S) GET against one address.

Each check has a hard timeout and never raises: a failure is a result with a
short reason, because a check's job is to report, not to crash the scheduler.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from ipaddress import IPv4Address

from bot.inventory import CheckSpec


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str
    seconds: float
    body: str = ""


def _source(source: IPv4Address | None) -> tuple[str, int] | None:
    return (str(source), 0) if source is not None else None


def tcp_check(address: IPv4Address, port: int, timeout: float, source: IPv4Address | None = None) -> CheckResult:
    start = time.monotonic()
    try:
        with socket.create_connection((str(address), port), timeout=timeout, source_address=_source(source)):
            pass
    except TimeoutError:
        return CheckResult(False, f"tcp {address}:{port}: no answer within {timeout:g}s", time.monotonic() - start)
    except OSError as e:
        return CheckResult(False, f"tcp {address}:{port}: {e.strerror or e}", time.monotonic() - start)
    return CheckResult(True, f"tcp {address}:{port}: open", time.monotonic() - start)


def http_check(address: IPv4Address, check: CheckSpec, source: IPv4Address | None = None) -> CheckResult:
    start = time.monotonic()
    url = f"{check.kind}://{address}:{check.port}{check.path}"
    conn: http.client.HTTPConnection
    try:
        if check.kind == "https":
            ctx = ssl.create_default_context()
            if not check.tls_verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            conn = http.client.HTTPSConnection(
                str(address), check.port, timeout=check.timeout, source_address=_source(source), context=ctx
            )
        else:
            conn = http.client.HTTPConnection(
                str(address), check.port, timeout=check.timeout, source_address=_source(source)
            )
        try:
            headers = {"Host": check.host_header} if check.host_header else {}
            headers["User-Agent"] = "lasthop-healthcheck"
            conn.request("GET", check.path, headers=headers)
            resp = conn.getresponse()
            body = resp.read(65536).decode("utf-8", "replace")
        finally:
            conn.close()
    except TimeoutError:
        return CheckResult(False, f"{url}: no answer within {check.timeout:g}s", time.monotonic() - start)
    except ssl.SSLError as e:
        return CheckResult(False, f"{url}: TLS error: {e.reason or e}", time.monotonic() - start)
    except (OSError, http.client.HTTPException) as e:
        reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
        return CheckResult(False, f"{url}: {reason}", time.monotonic() - start)
    elapsed = time.monotonic() - start
    if resp.status != check.expect_status:
        return CheckResult(False, f"{url}: status {resp.status}, expected {check.expect_status}", elapsed, body)
    if check.body and check.body not in body:
        return CheckResult(False, f"{url}: body lacks {check.body!r}", elapsed, body)
    return CheckResult(True, f"{url}: {resp.status}", elapsed, body)


def run_check(address: IPv4Address, check: CheckSpec, source: IPv4Address | None = None) -> CheckResult:
    if check.kind == "tcp":
        return tcp_check(address, check.port, check.timeout, source)
    return http_check(address, check, source)
