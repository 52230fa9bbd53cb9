"""Small helpers the lab tests share: polling what the client sees, finding a namespace's processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from bot.inventory import Inventory
from lab import Lab


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """The first truthy value of `predicate`, polled every 0.1 s; AssertionError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def client_answer(lab: Lab, vip: IPv4Address, want: str, timeout: float = 10.0) -> str:
    """What the client gets from `vip`, polled until it is `want` or the time is up (then the last answer)."""
    deadline = time.monotonic() + timeout
    got = ""
    while time.monotonic() < deadline:
        try:
            got = lab.client_get(vip, timeout=1.0)
        except Exception as e:  # the lab's own error type; keep polling until the deadline
            got = f"error: {e}"
        if got == want:
            break
        time.sleep(0.1)
    return got


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:  # the process ended since the listing
        return ""


def comm(pid: int | str) -> str:
    return _read(f"/proc/{pid}/comm").strip()


def parent(pid: int | str) -> int:
    stat = _read(f"/proc/{pid}/stat")
    try:
        return int(stat.rsplit(")", 1)[1].split()[1])
    except (IndexError, ValueError):
        return 0


def cmdline(pid: int | str) -> str:
    return _read(f"/proc/{pid}/cmdline")


def namespace_pids(lab: Lab, ns: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", f"{lab.plan.prefix}-{ns}"], capture_output=True, text=True,
                         timeout=5).stdout.split()
    return [int(p) for p in out]


def ssh_session_pids(lab: Lab, ns: str) -> list[int]:
    """sshd processes serving a connection (children of an sshd), not the listener."""
    return [p for p in namespace_pids(lab, ns) if comm(p) == "sshd" and comm(parent(p)) == "sshd"]


ROOT = Path(__file__).resolve().parents[2]


def lasthop(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real CLI in a child process, from this checkout, with no Slack settings; `env` adds variables."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "LASTHOP_CONFIG", "LASTHOP_FAULTS"))}
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env=base | (env or {}), stdin=subprocess.DEVNULL)


def inventory_copy(lab: Lab, lab_inv: Inventory, tmp_path: Path, *, known_hosts: str | None = None,
                   key_file: Path | None = None) -> Path:
    """The lab's inventory file with the test's own state database (and known_hosts or key, if given)."""
    text = lab.inventory.read_text().replace(f"sqlite:///{lab.state_dir}/lasthop.db", lab_inv.state_url)
    if known_hosts is not None:
        kh = tmp_path / "known_hosts"
        kh.write_text(known_hosts)
        text = text.replace(f"known_hosts: {lab.known_hosts}", f"known_hosts: {kh}")
    if key_file is not None:
        text = text.replace(f"key_file: {lab.key_file}", f"key_file: {key_file}")
    config = tmp_path / "lasthop.yaml"
    config.write_text(text)
    return config


def assert_www_a_home(lab: Lab, inv: Inventory) -> None:
    """www-a is routed to web1 alone in r1's FIB, read by lasthop's own driver, and the client gets web1."""
    from bot.engine.pipeline import Engine
    from bot.state import StateStore

    svc = inv.services["www-a"]
    engine = Engine(inv, StateStore(inv.state_url))
    try:
        assert engine.devices.router("r1").fib_next_hops(svc.prefix) == {inv.hosts["web1"].address}
    finally:
        engine.close()
        engine.store.close()
    assert client_answer(lab, svc.vips[0], "web1") == "web1"
