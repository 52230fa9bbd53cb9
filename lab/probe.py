"""HTTP GET from inside the client namespace: what a user behind the routers would see."""

from __future__ import annotations

import sys
from ipaddress import IPv4Address

from lab.errors import CommandError, LabError
from lab.plan import WEB_PORT, LabPlan
from lab.proc import in_namespace, run

# Runs in the client namespace. No proxy: a proxy from the environment would
# send the request out of the lab instead of through its routers.
_GET = """
import sys, urllib.request
url, timeout = sys.argv[1], float(sys.argv[2])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(url, timeout=timeout) as answer:
        sys.stdout.write(answer.read(4096).decode("utf-8", "replace"))
except Exception as exc:
    reason = getattr(exc, "reason", None) or exc
    sys.stderr.write(f"{type(exc).__name__}: {reason}\\n")
    sys.exit(1)
"""
# Interpreter start-up on top of the request's own timeout.
_STARTUP_SLACK = 5.0


class ClientGetError(LabError):
    """The client's GET failed: refused, unreachable or timed out."""


def client_get(plan: LabPlan, address: IPv4Address, timeout: float) -> str:
    url = f"http://{address}/" if WEB_PORT == 80 else f"http://{address}:{WEB_PORT}/"
    argv = in_namespace(plan.client_ns, [sys.executable, "-I", "-c", _GET, url, f"{timeout:g}"])
    try:
        done = run(argv, timeout=timeout + _STARTUP_SLACK, check=False)
    except CommandError as exc:
        raise ClientGetError(f"GET {url} from {plan.client_ns} failed: {exc}") from exc
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
        why = lines[-1].strip() if lines else f"exit {done.returncode}"
        raise ClientGetError(f"GET {url} from {plan.client_ns} failed: {why}")
    return done.stdout.strip()
