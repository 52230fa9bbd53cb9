"""keepalived on the lab's web hosts, as a team would run it instead of lasthop: VRRP on the server LAN.

The anchor's design, on the same hosts as lasthop and at the same time: r1 routes one VIP to a
VRRP address on the server LAN (not to a host), the web hosts elect one VRRP master with keepalived,
and the master holds that address on its eth0. A `vrrp_script` checks the host's own web server,
as `lasthop serve` checks it (an HTTP GET with the same time-out, the same interval and fall); a
master whose script fails, or whose link dies, stops advertising and the next host takes the
address over, announcing it with gratuitous ARP. Every host has the VIP on its loopback already,
so the takeover moves traffic the way a route rewrite does in lasthop.

Each host's keepalived runs in its namespace in the foreground (`-n`, VRRP only), with files of its
own under the run's directory; its state changes arrive on a FIFO (`notify_fifo`) that the
benchmark reads, so each is timed on arrival with the benchmark's clock.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

from lab.proc import in_namespace
from lab.proc import run as lab_run

KEEPALIVED = "/usr/sbin/keepalived"
CURL = "/usr/bin/curl"
PACKAGES = ("keepalived", "curl")
INSTANCE = "lasthop_bench"
VRID = 51  # the VRRP group; each lab's server LAN is a bridge of its own, so labs never meet
_STOP_SECONDS = 10.0


class KeepalivedError(RuntimeError):
    """keepalived could not be installed, configured or started."""


@dataclass(frozen=True)
class VrrpSettings:
    advert_int: float = 1.0  # seconds between the master's advertisements
    interval: int = 1  # seconds between two runs of the check script (keepalived takes whole seconds)
    fall: int = 2  # failed checks in a row before the host gives up the address
    rise: int = 2
    timeout: float = 0.5  # one check's limit (curl's --max-time)


def ensure_installed(report: Callable[[str], None]) -> bool:
    """apt-get install keepalived and curl if missing (Debian 12 has keepalived 2.2.7); True if it did."""
    if Path(KEEPALIVED).exists() and Path(CURL).exists():
        return False
    if os.geteuid() != 0:
        raise KeepalivedError(f"{KEEPALIVED} or {CURL} is missing; run as root so apt can install "
                              f"{' and '.join(PACKAGES)}")
    report(f"installing {' and '.join(PACKAGES)} from Debian's packages")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    lab_run(["apt-get", "update", "-qq"], timeout=600, env=env)
    lab_run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES], timeout=1200, env=env)
    return True


def version() -> str:
    out = subprocess.run([KEEPALIVED, "--version"], capture_output=True, text=True, timeout=10)
    first = (out.stdout + out.stderr).strip().splitlines()
    return first[0] if first else "keepalived (version unknown)"


def config(*, host: str, priority: int, interface: str, address: IPv4Interface, fifo: Path,
           check_url: str, vrrp: VrrpSettings) -> str:
    """keepalived.conf for one host: one VRRP instance holding `address`, tracked by an HTTP check."""
    if not 1 <= priority <= 254:
        raise ValueError(f"VRRP priority {priority} is not 1-254")
    # Every host starts as BACKUP: the one with the highest priority wins the first election.
    return f"""\
# keepalived for the lasthop benchmark on {host}; written by bench/_keepalived.py
global_defs {{
    router_id {host}
    enable_script_security
    script_user root
    notify_fifo {fifo}
}}

vrrp_script check_web {{
    script "{CURL} --silent --fail --max-time {vrrp.timeout:g} --output /dev/null {check_url}"
    interval {vrrp.interval}
    timeout {max(1, round(vrrp.timeout + 0.5))}
    fall {vrrp.fall}
    rise {vrrp.rise}
}}

vrrp_instance {INSTANCE} {{
    state BACKUP
    interface {interface}
    virtual_router_id {VRID}
    priority {priority}
    advert_int {vrrp.advert_int:g}
    virtual_ipaddress {{
        {address.with_prefixlen} dev {interface}
    }}
    track_script {{
        check_web
    }}
}}
"""


@dataclass(frozen=True)
class StateChange:
    host: str
    state: str  # MASTER, BACKUP, FAULT, STOP
    at: float  # time.monotonic() when the benchmark read it


def parse_fifo_line(line: str) -> str | None:
    """The state in a notify_fifo line of our instance (`INSTANCE "lasthop_bench" MASTER 150`), else None."""
    parts = line.split()
    if len(parts) >= 3 and parts[0] == "INSTANCE" and parts[1].strip('"') == INSTANCE:
        return parts[2]
    return None


@dataclass
class Vrrp:
    """keepalived running on several hosts of one lab; `changes` is every state change, in order."""

    directory: Path
    changes: list[StateChange] = field(default_factory=list)
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _fifos: dict[int, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _reader: threading.Thread | None = None

    def start(self, host: str, namespace: str, conf: str, fifo: Path) -> None:
        d = self.directory
        (d / f"{host}.conf").write_text(conf)
        if not fifo.exists():
            os.mkfifo(fifo, 0o600)
        # Opened read-write by us before keepalived starts: its writes never block or fail for lack of a
        # reader, and our reads never see an end of file while it restarts.
        fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        self._fifos[fd] = host
        argv = [KEEPALIVED, "--dont-fork", "--log-console", "--log-detail", "--no-syslog", "--vrrp",
                "--use-file", str(d / f"{host}.conf"), "--pid", str(d / f"{host}.pid"),
                "--vrrp_pid", str(d / f"{host}.vrrp.pid")]
        with open(d / f"{host}.log", "ab") as log:
            self._procs[host] = subprocess.Popen(in_namespace(namespace, argv), stdout=log, stderr=subprocess.STDOUT,
                                                 stdin=subprocess.DEVNULL, start_new_session=True)
        if self._reader is None:
            self._reader = threading.Thread(target=self._read, name="keepalived-fifo", daemon=True)
            self._reader.start()

    def _read(self) -> None:
        pending: dict[int, str] = {}
        while not self._stop.is_set():
            fds = list(self._fifos)
            ready, _, _ = select.select(fds, [], [], 0.1) if fds else ([], [], [])
            now = time.monotonic()
            for fd in ready:
                with contextlib.suppress(BlockingIOError, OSError):
                    pending[fd] = pending.get(fd, "") + os.read(fd, 65536).decode(errors="replace")
                *lines, pending[fd] = pending.get(fd, "").split("\n")
                for line in lines:
                    state = parse_fifo_line(line)
                    if state is not None:
                        with self._lock:
                            self.changes.append(StateChange(self._fifos[fd], state, now))

    def state(self, host: str) -> str | None:
        with self._lock:
            for change in reversed(self.changes):
                if change.host == host:
                    return change.state
        return None

    def since(self, t: float) -> list[StateChange]:
        with self._lock:
            return [c for c in self.changes if c.at >= t]

    def wait_state(self, host: str, state: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.state(host) != state:
            dead = [h for h, p in self._procs.items() if p.poll() is not None]
            if dead:
                raise KeepalivedError(f"keepalived on {', '.join(dead)} exited: see {self.directory}/{dead[0]}.log")
            if time.monotonic() >= deadline:
                raise KeepalivedError(f"keepalived on {host} is {self.state(host) or 'silent'}, not {state}, "
                                      f"after {timeout:g}s: see {self.directory}/{host}.log")
            time.sleep(0.05)

    def stop(self) -> list[str]:
        """Stop every keepalived (it removes the VRRP address as it stops); what could not be stopped."""
        problems: list[str] = []
        for proc in self._procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for host, proc in self._procs.items():
            try:
                proc.wait(_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                try:
                    proc.wait(_STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    problems.append(f"keepalived on {host} (pid {proc.pid}) would not stop")
        self._procs.clear()
        self._stop.set()
        if self._reader is not None:
            self._reader.join(5)
        for fd in self._fifos:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fifos.clear()
        return problems


@contextlib.contextmanager
def running(directory: Path, hosts: list[tuple[str, str, int]], *, address: IPv4Interface, vip: IPv4Address,
            vrrp: VrrpSettings, interface: str = "eth0") -> Iterator[Vrrp]:
    """keepalived on each (host, namespace, priority), the first the master once this returns."""
    if shutil.which(KEEPALIVED) is None:
        raise KeepalivedError(f"{KEEPALIVED} is not installed")
    group = Vrrp(directory)
    try:
        for host, namespace, priority in hosts:
            fifo = directory / f"{host}.fifo"
            conf = config(host=host, priority=priority, interface=interface, address=address, fifo=fifo,
                          check_url=f"http://{vip}:80/", vrrp=vrrp)
            group.start(host, namespace, conf, fifo)
        # An election takes about three advertisement intervals; the check must pass `rise` times first.
        group.wait_state(hosts[0][0], "MASTER", timeout=10 * vrrp.advert_int + 2 * vrrp.rise * vrrp.interval + 10)
        yield group
    finally:
        problems = group.stop()
        if problems:
            raise KeepalivedError("; ".join(problems))
