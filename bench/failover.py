"""Benchmark 1, outage to restored: lasthop's automatic failover against keepalived, in one run on one lab.

Both tools guard a service on the same three web hosts at the same time, and each break hits both:
- **lasthop** (`Daemon`, as `lasthop serve` runs it, in this process) guards www-a, whose /27 r1
  routes to web1; on DOWN it moves the route to web2 (pre-check, make before break, FIB verify);
- **keepalived** (bench/_keepalived.py, one per host in its namespace) guards a /32 that r1 routes to
  a VRRP address on the server LAN, held by the VRRP master (web1, priority 150), tracked by an HTTP
  check of the host's own web server; on failure web2 (100) takes the address over.

Both check at the same interval, fall and time-out. A break is either **service** death (web1's web
server stopped: both VIPs die at once) or **link** death (web1's eth0 down). Each break comes at a
random phase against both tools' timers, after a settled period. A prober in the client namespace
(bench/_prober.py) requests each VIP every 20 ms on a new connection through r1; a tool's outage is
from the break to the first answer from another host. Between breaks web1 is healed, www-a moved
back with lasthop's engine (keepalived preempts by itself), and both are seen serving from web1.

The lab gets, for the run only, the keepalived VIP on each host's loopback and its route on r1;
both are removed at the end, on failure too, and r1's configuration saved again if lasthop's moves
saved it with that route.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

import yaml

from bench import _keepalived as ka
from bench._lab import lab_up, vtysh
from bench.click import HOME, SERVICE, Traced, move_home
from bench.results import Measurement, Result, Target
from bot.config import ConfigError, load_inventory
from bot.health.state import Health
from bot.inventory import Inventory
from bot.notify import LogOut
from bot.serve import Daemon, ServeSettings
from bot.state import StateStore
from lab import Lab, frr, netns
from lab.errors import LabError
from lab.plan import SERVER_LAN, LabPlan
from lab.proc import in_namespace
from lab.proc import run as lab_run

SUMMARY = "outage to restored, automatic: lasthop against keepalived (VRRP) on the same lab, service and link death"

# The keepalived service: a /32 free in the lab plan (its services are .32/27, .64/27, .96/27 and
# .200/32; drain uses .128/26), routed by r1 to a VRRP address free on the server LAN (.1 is r1,
# .2-.4 the hosts, .30 r2).
K_VIP = IPv4Address("198.51.100.240")
K_PREFIX = IPv4Network("198.51.100.240/32")
VRRP_ADDRESS = IPv4Interface(f"198.51.100.29/{SERVER_LAN.prefixlen}")
PRIORITIES = {"web1": 150, "web2": 100, "web3": 50}
TOOLS = ("lasthop", "keepalived")
BREAKS = ("service", "link")
# Targets of the issue: lasthop's median outage at most this share of keepalived's, per break;
# and lasthop's own part, from DOWN decided to the new next hop in the FIB.
TARGET_RATIO = {"service": 0.35, "link": 0.5}
TARGET_DECIDED_TO_FIB = 0.15
LASTHOP_STAGES = ("detect", "confirm", "decide", "plan", "precheck", "route", "fib_verify")
KEEPALIVED_STAGES = ("detect", "takeover", "arp")
_WAIT = 30.0  # seconds: the bound on any one wait of the run


@dataclass
class Settings:
    repetitions: int = field(default=5, metadata={"help": "breaks of each kind"})
    breaks: tuple[str, ...] = field(default=BREAKS, metadata={"help": "kinds of break: service, link"})
    interval: float = field(default=1.0, metadata={"help": "seconds between checks, both tools (whole seconds)"})
    fall: int = field(default=2, metadata={"help": "failed checks before a host is down, both tools"})
    timeout: float = field(default=0.5, metadata={"help": "one check's limit, both tools"})
    fast_interval: float = field(default=0.2, metadata={"help": "lasthop's re-check interval while a host changes"})
    advert_int: float = field(default=1.0, metadata={"help": "keepalived's VRRP advertisement interval"})
    probe_every: float = field(default=0.02, metadata={"help": "seconds between the client's requests to each VIP"})
    settle: float = field(default=2.0, metadata={"help": "seconds of calm before each break (plus a random phase)"})
    seed: int = field(default=0, metadata={"help": "seed of the random phases (0: from the clock)"})
    lab_prefix: str = field(default="lh", metadata={"help": "the lab's prefix (`lasthop lab up` makes lh)"})
    lab_slot: int = field(default=0, metadata={"help": "the lab's slot"})

    def __post_init__(self) -> None:
        if not 1 <= self.repetitions <= 50:
            raise ValueError("repetitions must be 1 to 50")
        if not self.breaks or any(b not in BREAKS for b in self.breaks) or len(set(self.breaks)) != len(self.breaks):
            raise ValueError(f"breaks must be some of {', '.join(BREAKS)}, each once")
        # keepalived's vrrp_script interval is a whole number of seconds.
        if self.interval != int(self.interval) or not 1 <= self.interval <= 10:
            raise ValueError("interval must be a whole number of seconds, 1 to 10")
        if not 1 <= self.fall <= 10:
            raise ValueError("fall must be 1 to 10")
        if not 0.05 <= self.timeout < self.interval:
            raise ValueError("timeout must be at least 0.05 s and shorter than the interval")
        if not 0.05 <= self.fast_interval <= self.interval:
            raise ValueError("fast_interval must be 0.05 s to the interval")
        if not 0.1 <= self.advert_int <= 10:
            raise ValueError("advert_int must be 0.1 to 10 s")
        if not 0.005 <= self.probe_every <= 1:
            raise ValueError("probe_every must be 0.005 to 1 s")
        if not 0 <= self.settle <= 60:
            raise ValueError("settle must be 0 to 60 s")
        LabPlan(self.lab_prefix, self.lab_slot)  # a bad prefix or slot is refused by the plan itself

    @classmethod
    def tiny(cls) -> Settings:
        return cls(repetitions=1, breaks=("service",), settle=0.5)


# -- what the client saw -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Answer:
    vip: str
    sent: float
    done: float
    host: str | None
    error: str | None


@dataclass(frozen=True)
class Window:
    """One VIP's outage as the client saw it, in seconds after the break."""

    restored: float  # the first answer from a host other than the broken one
    settled: float  # the first answer after the last failure (make before break may mix both for a moment)
    last_old: float | None  # the last answer from the broken host (a stopping server may still answer)
    failures: int


def window(answers: Sequence[Answer], vip: str, broke: float, broken: str) -> Window | None:
    """The outage of `vip` after a break at `broke`; None if no other host answered."""
    mine = sorted((a for a in answers if a.vip == vip and a.sent >= broke), key=lambda a: a.done)
    restored = next((a.done for a in mine if a.host is not None and a.host != broken), None)
    if restored is None:
        return None
    failed = [a for a in mine if a.host is None]
    # By the time a request was sent, not when it ended: a request sent into the outage ends in its
    # time-out well after service is back, and the requests sent after it were answered.
    last_failure = max((a.sent for a in failed), default=None)
    later = [a.done for a in mine if a.host is not None and a.host != broken
             and (last_failure is None or a.sent > last_failure)]
    settled = min(later) if later else restored
    old = [a.done for a in mine if a.host == broken]
    return Window(restored=restored - broke, settled=max(restored, settled) - broke,
                  last_old=(max(old) - broke) if old else None, failures=len(failed))


class Prober:
    """bench/_prober.py in the client namespace; `answers` fills as its lines arrive."""

    def __init__(self, plan: LabPlan, vips: Sequence[IPv4Address], every: float) -> None:
        argv = [sys.executable, "-m", "bench._prober", "--every", f"{every:g}", "--timeout", "1",
                "--seconds", "120", *map(str, vips)]
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(in_namespace(plan.client_ns, argv), stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, name="prober-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                d = json.loads(line)
                answer = Answer(str(d["vip"]), float(d["sent"]), float(d["done"]), d["host"], d["error"])
                with self._lock:
                    self.answers.append(answer)

    def seen(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def wait(self, what: str, ok: Any, timeout: float = _WAIT) -> None:
        deadline = time.monotonic() + timeout
        while not ok(self.seen()):
            if self._proc.poll() is not None:
                err = self._proc.stderr.read() if self._proc.stderr else ""
                raise LabError(f"the prober exited ({self._proc.returncode}): {err.strip()[-300:]}")
            if time.monotonic() >= deadline:
                raise LabError(f"the client did not see {what} within {timeout:g}s")
            time.sleep(0.02)

    def stop(self) -> list[Answer]:
        with contextlib.suppress(OSError):
            assert self._proc.stdin is not None
            self._proc.stdin.close()  # the prober stops at the end of its stdin
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
        self._reader.join(5)
        return self.seen()


# -- lasthop's side: the daemon, and the times of its decisions ---------------------------------------

@dataclass
class Decisions:
    """When lasthop saw what, for the broken host's www-a target (monotonic times, appended in order)."""

    failed_checks: list[float] = field(default_factory=list)
    down: list[float] = field(default_factory=list)
    queued: list[float] = field(default_factory=list)


def watch(daemon: Daemon, decisions: Decisions) -> None:
    """Wrap the daemon instance's result, transition and queue steps to time them; its code runs unchanged."""
    key = (SERVICE, HOME)
    on_result, on_transition, queue_move = daemon.scheduler._on_result, daemon._on_transition, daemon._queue

    def timed_result(job: Any, ok: bool, detail: str, lateness: float) -> None:
        if job.key == key and not ok:
            decisions.failed_checks.append(time.monotonic())
        on_result(job, ok, detail, lateness)

    def timed_transition(t: Any) -> None:
        if t.key == key and t.new is Health.DOWN:
            decisions.down.append(time.monotonic())
        on_transition(t)

    def timed_queue(request: Any) -> None:
        decisions.queued.append(time.monotonic())
        queue_move(request)

    daemon.scheduler._on_result = timed_result
    setattr(daemon, "_on_transition", timed_transition)  # noqa: B010 - this instance only, for the run
    setattr(daemon, "_queue", timed_queue)  # noqa: B010


def inventory_for(lab: Lab, settings: Settings, directory: Path) -> Inventory:
    """The lab's inventory with www-a alone, automatic, checked at the run's settings."""
    doc = yaml.safe_load(lab.inventory.read_text())
    svc = doc["services"][SERVICE]
    svc["auto_failover"] = True
    svc["check"] = {"kind": "http", "port": 80, "interval": f"{settings.interval:g}s",
                    "timeout": f"{settings.timeout * 1000:g}ms", "fall": settings.fall, "rise": 2,
                    "fast_interval": f"{settings.fast_interval * 1000:g}ms"}
    doc["services"] = {SERVICE: svc}
    # Every repetition breaks web1 twice (break, heal): neither the move cap nor the flapping rule may
    # hold the moves back. Both are tested elsewhere; here they would only end the run early.
    doc["policy"] = {"auto_failover": {"enabled": True, "max_moves": 1000, "window": "1h", "failback": False},
                     "flapping": {"changes": 1000, "window": "1m"}}
    doc["state_url"] = f"sqlite:///{directory / 'lasthop.db'}"
    path = directory / "lasthop.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    try:
        return load_inventory(path)
    except ConfigError as e:
        raise LabError(f"the benchmark's copy of {lab.inventory} is not a valid inventory: {e}") from None


# -- the lab: keepalived's service, and taking it away -----------------------------------------------

def k_leftovers(plan: LabPlan) -> list[str]:
    found = [f"r1 routes {K_PREFIX}" for p in netns.routes(plan.frr_pathspace) if p == K_PREFIX]
    for host in plan.hosts:
        for name, iface in netns.interfaces(host.namespace).items():
            ips = {a.ip for a in iface.addresses}
            if K_VIP in ips or VRRP_ADDRESS.ip in ips:
                found.append(f"{host.name} has {K_VIP if K_VIP in ips else VRRP_ADDRESS.ip} on {name}")
    return found


def add_k(plan: LabPlan) -> None:
    for host in plan.hosts:
        lab_run(["ip", "-n", host.namespace, "address", "add", f"{K_VIP}/32", "dev", "lo"])
    vtysh(plan, ["configure terminal", f"ip route {K_PREFIX} {VRRP_ADDRESS.ip}", "end"])


def remove_k(plan: LabPlan, saved_before: str) -> list[str]:
    problems: list[str] = []
    try:
        vtysh(plan, ["configure terminal", f"no ip route {K_PREFIX} {VRRP_ADDRESS.ip}", "end"])
    except LabError as e:
        if "There is no such route" not in str(e) and "not found" not in str(e).lower():
            problems.append(str(e))
    for host in plan.hosts:
        lo = netns.interfaces(host.namespace).get("lo")
        if lo is not None and K_VIP in {a.ip for a in lo.addresses}:
            try:
                lab_run(["ip", "-n", host.namespace, "address", "del", f"{K_VIP}/32", "dev", "lo"])
            except LabError as e:
                problems.append(f"{host.name}: {e}")
    try:
        saved = frr.config_file(plan).read_text()
        if saved != saved_before and str(K_PREFIX) in saved:
            vtysh(plan, ["write memory"])
    except (OSError, LabError) as e:
        problems.append(f"r1's saved configuration: {e}")
    return problems


@contextlib.contextmanager
def k_service(plan: LabPlan) -> Iterator[None]:
    found = k_leftovers(plan)
    if found:
        raise LabError(f"the lab already has the benchmark's keepalived service: {'; '.join(found[:3])} "
                       "(an interrupted run? `lasthop lab down` and up clears it)")
    saved_before = frr.config_file(plan).read_text()
    add_k(plan)
    failed: BaseException | None = None
    try:
        yield
    except BaseException as e:
        failed = e
        raise
    finally:
        problems = remove_k(plan, saved_before)
        if problems and failed is None:
            raise LabError("could not remove what the benchmark added: " + "; ".join(problems))


# -- one break -----------------------------------------------------------------------------------------

def serving_from(answers: Sequence[Answer], vips: Sequence[str], host: str, after: float) -> bool:
    return all(any(a.vip == v and a.host == host and a.sent >= after for a in answers) for v in vips)


def steady(lab: Lab, daemon: Daemon, vrrp: ka.Vrrp, vips: Sequence[IPv4Address]) -> None:
    """Until both tools serve from web1 and lasthop sees every host UP, with no move in flight."""
    vrrp.wait_state(HOME, "MASTER", _WAIT)
    deadline = time.monotonic() + _WAIT
    while True:
        ups = all(m.state is Health.UP for k, m in daemon.machines.items() if k[0] == SERVICE)
        changes = daemon.store.recent_changes(limit=1)
        idle = not changes or changes[0].status not in ("planned", "applying", "verifying")
        answers = [_client(lab, v) for v in vips]
        if ups and idle and answers == [HOME] * len(vips) and not daemon.store.open_incidents():
            return
        if time.monotonic() >= deadline:
            raise LabError(f"not steady after {_WAIT:g}s: every {SERVICE} target UP: {ups}, no move in "
                           f"flight: {idle}, the client gets {answers}, open incidents: "
                           f"{len(daemon.store.open_incidents())}")
        time.sleep(0.1)


def _client(lab: Lab, vip: IPv4Address) -> str:
    try:
        return lab.client_get(vip, timeout=0.5)
    except LabError:
        return "-"


def one_break(lab: Lab, daemon: Daemon, traced: Traced, decisions: Decisions, vrrp: ka.Vrrp, settings: Settings,
              kind: str, rng: random.Random) -> dict[str, Any]:
    plan = lab.plan
    vip_a = str(daemon.inv.services[SERVICE].vips[0])
    vips = [vip_a, str(K_VIP)]
    steady(lab, daemon, vrrp, [IPv4Address(v) for v in vips])
    phase = rng.uniform(0, settings.interval)
    prober = Prober(plan, [IPv4Address(v) for v in vips], settings.probe_every)
    try:
        started = time.monotonic()
        prober.wait("web1 answering both VIPs", lambda seen: serving_from(seen, vips, HOME, started), 10)
        time.sleep(settings.settle + phase)
        trace = traced.reset()
        n_failed, n_down, n_queued = len(decisions.failed_checks), len(decisions.down), len(decisions.queued)
        broke = time.monotonic()
        lab.break_host(HOME, link=kind == "link")
        prober.wait("both VIPs answered by another host",
                    lambda seen: all(any(a.vip == v and a.sent >= broke and a.host not in (None, HOME) for a in seen)
                                     for v in vips))
        time.sleep(0.5)  # a moment more, to see the answers settle (make before break mixes both)
    finally:
        answers = prober.stop()
    if not trace.done.wait(_WAIT):
        raise LabError(f"lasthop's move of {SERVICE} did not finish within {_WAIT:g}s")
    out = trace.outcome
    if out is None or out.status != "done":
        raise LabError(f"lasthop's automatic move ended {out.status if out else '?'}: "
                       + "; ".join(out.lines[-3:] if out else []))
    wa, wk = window(answers, vip_a, broke, HOME), window(answers, str(K_VIP), broke, HOME)
    if wa is None or wk is None:
        raise LabError("the prober saw no answer from another host")
    first_failed = _first(decisions.failed_checks[n_failed:], broke)
    down = _first(decisions.down[n_down:], broke)
    queued = _first(decisions.queued[n_queued:], broke)
    ms = out.timings_ms
    precheck = ms.get("precheck_ms", 0) / 1000
    restored_at = broke + wa.restored
    lasthop = {
        "outage": wa.restored, "settled": wa.settled, "failures": wa.failures, "last_old": wa.last_old,
        "detect": first_failed - broke,  # the break to the first failed check's result
        "confirm": down - first_failed,  # the re-checks until `fall` failures: DOWN
        "decide": queued - down,  # the other hosts re-checked, the policy, the move queued
        "plan": trace.start - queued,  # the mover thread: Engine.run plans (reads r1 live) before it executes
        "precheck": precheck,
        "route": restored_at - trace.start - precheck,  # the apply, up to the client's first answer from web2
        "fib_verify": trace.fib - trace.start - precheck,  # the apply and lasthop's FIB verification
        "decided_to_fib": trace.fib - down,  # DOWN decided to the new next hop verified in the FIB
        "decided_to_restored": restored_at - down,
        "apply": ms.get("apply_ms", 0) / 1000,
    }
    changes = vrrp.since(broke)
    master = next((c.at for c in changes if c.state == "MASTER" and c.host != HOME), None)
    gave_up = next((c.at for c in changes if c.host == HOME and c.state in ("FAULT", "BACKUP")), None)
    if master is None:
        raise LabError("no other keepalived became master")
    k_restored = broke + wk.restored
    keepalived = {
        "outage": wk.restored, "settled": wk.settled, "failures": wk.failures, "last_old": wk.last_old,
        # For a service death web1's own check gives up the address (FAULT, a priority-0 advert);
        # for a link death web1 cannot tell anyone: web2 waits out the master-down interval.
        "detect": (gave_up - broke) if gave_up is not None and gave_up < master else master - broke,
        "takeover": master - gave_up if gave_up is not None and gave_up < master else 0.0,
        "arp": k_restored - master,  # the VRRP address set, gratuitous ARP, r1 forwarding to web2
        "new_master": next(c.host for c in changes if c.state == "MASTER" and c.host != HOME),
    }
    return {"break": kind, "phase": round(phase, 4), "lasthop": lasthop, "keepalived": keepalived,
            "moved_to": out.plan.moves[0].to_host if out.plan and out.plan.moves else None}


def _first(times: Sequence[float], after: float) -> float:
    found = [t for t in times if t >= after]
    if not found:
        raise LabError("lasthop's daemon did not record the step it took (no failed check or DOWN after the break)")
    return found[0]


def restore(lab: Lab, daemon: Daemon) -> None:
    lab.heal(HOME)
    move_home(lab, daemon.engine)


# -- the run -----------------------------------------------------------------------------------------

def run(settings: Settings) -> Measurement:
    ka.ensure_installed(lambda m: print(m, file=sys.stderr))
    with lab_up(settings.lab_prefix, settings.lab_slot) as lab:
        return _measure(lab, settings)


def _measure(lab: Lab, settings: Settings) -> Measurement:
    plan = lab.plan
    rng = random.Random(settings.seed or time.time_ns())
    vrrp_settings = ka.VrrpSettings(advert_int=settings.advert_int, interval=int(settings.interval),
                                    fall=settings.fall, rise=2, timeout=settings.timeout)
    rows: list[dict[str, Any]] = []
    lab.heal(HOME)
    with tempfile.TemporaryDirectory(prefix="lasthop-bench-failover-") as tmp, k_service(plan):
        directory = Path(tmp)
        inv = inventory_for(lab, settings, directory)
        store = StateStore(inv.state_url)
        daemon = Daemon(inv, store, LogOut(io.StringIO()), channel="alerts",
                        settings=ServeSettings(startup_grace=10.0))
        decisions = Decisions()
        watch(daemon, decisions)
        traced = Traced(daemon.engine)
        hosts = [(h.name, h.namespace, PRIORITIES[h.name]) for h in plan.hosts]
        try:
            with ka.running(directory, hosts, address=VRRP_ADDRESS, vip=K_VIP, vrrp=vrrp_settings) as vrrp:
                daemon.start()
                _wait(lambda: daemon._ready, "lasthop's complete health view")
                restore(lab, daemon)
                for kind in settings.breaks:
                    for _ in range(settings.repetitions):
                        try:
                            rows.append(one_break(lab, daemon, traced, decisions, vrrp, settings, kind, rng))
                        finally:
                            restore(lab, daemon)
                steady(lab, daemon, vrrp, [inv.services[SERVICE].vips[0], K_VIP])
                version = ka.version()
        finally:
            daemon.stop()
            store.close()
            lab.heal(HOME)
    return summarise(settings, rows, version)


def _wait(ok: Any, what: str) -> None:
    deadline = time.monotonic() + _WAIT
    while not ok():
        if time.monotonic() >= deadline:
            raise LabError(f"no {what} within {_WAIT:g}s")
        time.sleep(0.05)


def summarise(settings: Settings, rows: list[dict[str, Any]], version: str) -> Measurement:
    def med(kind: str, tool: str, key: str) -> float:
        values = [r[tool][key] for r in rows if r["break"] == kind]
        return statistics.median(values) if values else 0.0

    by_break: dict[str, Any] = {}
    targets: list[Target] = []
    for kind in settings.breaks:
        mine = [r for r in rows if r["break"] == kind]
        entry: dict[str, Any] = {"breaks": len(mine)}
        for tool, stages in (("lasthop", LASTHOP_STAGES), ("keepalived", KEEPALIVED_STAGES)):
            outages = [r[tool]["outage"] for r in mine]
            entry[tool] = {"samples": outages, "median": statistics.median(outages), "min": min(outages),
                           "max": max(outages), "settled_median": med(kind, tool, "settled"),
                           "stages": {s: med(kind, tool, s) for s in stages}}
        entry["lasthop"]["decided_to_fib"] = med(kind, "lasthop", "decided_to_fib")
        entry["lasthop"]["decided_to_restored"] = med(kind, "lasthop", "decided_to_restored")
        ratio = entry["lasthop"]["median"] / entry["keepalived"]["median"]
        entry["ratio"] = ratio
        by_break[kind] = entry
        targets.append(Target.judge(f"{kind} death: lasthop's median outage / keepalived's", ratio,
                                    TARGET_RATIO[kind], "x", at_least=False))
    decided = [r["lasthop"]["decided_to_fib"] for r in rows]
    targets.append(Target.judge("DOWN decided to new route in the FIB, median", statistics.median(decided),
                                TARGET_DECIDED_TO_FIB, "s", at_least=False))
    main = settings.breaks[0]
    samples = [r["lasthop"]["outage"] for r in rows if r["break"] == main]
    notes = [
        f"both tools in one run on the same hosts and the same breaks: lasthop ({SERVICE}, a route rewrite on r1) "
        f"and {version} (VRRP, r1 routing {K_PREFIX} to {VRRP_ADDRESS.ip})",
        f"checks: interval {settings.interval:g} s, fall {settings.fall}, time-out {settings.timeout:g} s for both; "
        f"lasthop re-checks at {settings.fast_interval:g} s, keepalived advertises every {settings.advert_int:g} s",
        f"outage: the break to the client's first answer from another host (a request every "
        f"{settings.probe_every * 1000:g} ms per VIP from the client namespace); each break at a random phase",
        f"samples are lasthop's {main}-death outages; all of both tools are in details.by_break",
    ]
    for kind, e in by_break.items():
        notes.append(f"{kind} death: lasthop {e['lasthop']['median']:.2f} s, keepalived "
                     f"{e['keepalived']['median']:.2f} s (median of {e['breaks']}), ratio {e['ratio']:.2f}")
    return Measurement(
        metric=f"outage to restored after a {main} death, lasthop automatic", unit="s", better="lower",
        samples=samples, stages=by_break[main]["lasthop"]["stages"], targets=targets, notes=notes,
        details={"by_break": by_break, "breaks": rows, "keepalived_version": version,
                 "vrrp_address": str(VRRP_ADDRESS), "keepalived_prefix": str(K_PREFIX)},
    )


def plot(result: Result, figure: Any) -> None:
    """Per break kind: each tool's outage windows (dots) and median (bar); then lasthop's stages."""
    figure.set_size_inches(13, 4.8)
    by_break = result.details.get("by_break", {})
    kinds = [b for b in BREAKS if b in by_break]
    ax = figure.add_subplot(1, 2, 1)
    width = 0.38
    for i, tool in enumerate(TOOLS):
        xs = [k + (i - 0.5) * width for k in range(len(kinds))]
        ax.bar(xs, [by_break[k][tool]["median"] for k in kinds], width=width, alpha=0.5, label=f"{tool}, median")
        for x, k in zip(xs, kinds, strict=True):
            samples = by_break[k][tool]["samples"]
            ax.scatter([x] * len(samples), samples, color="black", s=8)
    ax.set_xticks(range(len(kinds)), [f"{k} death" for k in kinds])
    ax.set_ylabel("seconds from the break to the first answer from another host")
    ax.set_title("outage windows, same lab, same breaks")
    ax.legend(fontsize="small")
    ax2 = figure.add_subplot(1, 2, 2)
    left = [0.0] * len(kinds)
    for stage in LASTHOP_STAGES[:-1]:  # fib_verify overlaps route: the stages up to the client's answer
        widths = [by_break[k]["lasthop"]["stages"][stage] for k in kinds]
        ax2.barh([f"lasthop, {k}" for k in kinds], widths, left=left, label=stage)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    left = [0.0] * len(kinds)
    for stage in KEEPALIVED_STAGES:
        widths = [by_break[k]["keepalived"]["stages"][stage] for k in kinds]
        ax2.barh([f"keepalived, {k}" for k in kinds], widths, left=left, label=f"keepalived {stage}", hatch="//")
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax2.set_xlabel("seconds, medians per stage")
    ax2.set_title("where the time goes")
    ax2.legend(fontsize="x-small", ncol=2, loc="lower right")


def summary_table(result: Result) -> str:
    """lasthop against keepalived per break: the medians, the ratio and its target, the stages."""
    by_break = result.details.get("by_break", {})
    version = str(result.details.get("keepalived_version", "keepalived")).split(" (")[0]
    lines = [f"| Break | lasthop, outage | {version}, outage | Ratio (target) | lasthop: where the time goes |",
             "|---|---|---|---|---|"]
    for kind in [b for b in BREAKS if b in by_break]:
        e = by_break[kind]
        lh, kd = e["lasthop"], e["keepalived"]
        ratio, target = e["ratio"], TARGET_RATIO.get(kind, 0.0)
        verdict = "met" if ratio <= target else f"**missed by {ratio / target - 1:.0%}**"
        stages = ", ".join(f"{s} {lh['stages'][s] * 1000:.0f}" for s in LASTHOP_STAGES[:-1])
        lines.append(f"| {kind} death | **{lh['median']:.2f} s** ({lh['min']:.2f}–{lh['max']:.2f}) | "
                     f"**{kd['median']:.2f} s** ({kd['min']:.2f}–{kd['max']:.2f}) | {ratio:.2f} (≤ {target:g}): "
                     f"{verdict} | {stages} ms; DOWN to FIB {lh['decided_to_fib'] * 1000:.0f} ms |")
    load, commit = result.machine.load_average[0], result.machine.commit
    commit = commit[:7] + ("-dirty" if commit.endswith("-dirty") else "")
    lines.append("")
    lines.append(f"_Medians of {result.repetitions} breaks of each kind, {result.when[:16].replace('T', ' ')} UTC, "
                 f"commit {commit}, load average {load:.2f} on {result.machine.cpus} CPUs._")
    return "\n".join(lines) + "\n"
