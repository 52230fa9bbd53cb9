"""Benchmark 5, health-check scale: N HTTP endpoints on loopback, each checked at a fixed interval.

The checker is lasthop's own code path, as `lasthop serve` runs it: `LoopScheduler` (one asyncio
loop that schedules and runs each check as a probe, a new TCP connection and a GET on a
non-blocking socket; one writer thread), a `HealthMachine` per target fed on the writer thread,
which re-arms the target with `set_next`, and the Prometheus metrics the daemon keeps. The endpoints are served by
another process (bench/_httpd.py), so its CPU is not counted as the checker's.

For each N, the offered rate (N / interval) climbs a ladder until a step fails: lateness p99
(how late a check starts against its schedule) at or over `lateness_p99`, or more than 0.1 % of
checks failing. The figure is the highest sustained rate, checks started per second in the
measured window, of a step that passed; that step is repeated for the repetitions. First checks
are spread over one interval (the daemon starts them all at once; that start-up burst is not
what is measured here) and a step is measured after one interval of warm-up.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from bench.results import Measurement, Target, percentile
from bot.health.checks import CheckResult, run_check
from bot.health.loop_scheduler import LoopScheduler, Probe
from bot.health.machine import HealthMachine, TargetKey
from bot.health.scheduler import CheckJob
from bot.inventory import CheckSpec
from bot.metrics import Metrics

SUMMARY = "health-check scale: N loopback HTTP endpoints, lasthop's scheduler; top rate with lateness p99 < 100 ms"

TARGET_RATE = 2000.0  # checks per second
TARGET_CPU = 0.2  # CPU-seconds of the checker per 1,000 checks
ERROR_BUDGET = 0.001  # a step with more failed checks than this share did not sustain its rate
ADDRESS = IPv4Address("127.0.0.1")
STAGES = ("lateness", "check", "handover", "consume")


@dataclass
class Settings:
    sizes: tuple[int, ...] = field(default=(100, 1000, 10000), metadata={"help": "numbers of endpoints N"})
    rates: tuple[float, ...] = field(default=(250.0, 500.0, 1000.0, 1500.0, 2000.0, 2500.0, 3000.0, 4000.0, 5000.0),
                                     metadata={"help": "offered checks per second to step through, per N"})
    window: float = field(default=8.0, metadata={"help": "seconds measured per step, after the warm-up"})
    max_step: float = field(default=20.0, metadata={"help": "bound on one step's seconds, warm-up included"})
    workers: int = field(default=8, metadata={"help": "pool threads for checks that are not probes (as the daemon)"})
    inflight: int = field(default=512, metadata={"help": "probes in flight at most (as the daemon)"})
    timeout: float = field(default=2.0, metadata={"help": "check timeout, cut to 90%% of a shorter interval"})
    ports: int = field(default=50, metadata={"help": "server ports the endpoints are spread over"})
    lateness_p99: float = field(default=0.1, metadata={"help": "a step passes with lateness p99 under this"})
    repetitions: int = field(default=3, metadata={"help": "runs of the best step (the first included)"})
    profile_checks: int = field(default=2000, metadata={"help": "checks in the CPU breakdown (0: none)"})

    def __post_init__(self) -> None:
        if not self.sizes or any(n < 1 or n > 50_000 for n in self.sizes):
            raise ValueError("sizes must be 1 to 50,000 endpoints each")
        if not self.rates or any(r <= 0 or r > 100_000 for r in self.rates):
            raise ValueError("rates must be positive, at most 100,000 checks/s")
        if not 0.5 <= self.window < self.max_step <= 120:
            raise ValueError("need 0.5 <= window < max_step <= 120 seconds")
        if not 1 <= self.workers <= 1024 or not 1 <= self.ports <= 1000 or not 1 <= self.repetitions <= 20:
            raise ValueError("workers 1-1024, ports 1-1000 and repetitions 1-20")
        if not 1 <= self.inflight <= 100_000:
            raise ValueError("inflight must be 1-100,000")
        if self.timeout <= 0 or self.lateness_p99 <= 0 or not 0 <= self.profile_checks <= 100_000:
            raise ValueError("timeout and lateness_p99 must be positive, profile_checks 0-100,000")

    @classmethod
    def tiny(cls) -> Settings:
        return cls(sizes=(20,), rates=(40.0, 80.0), window=1.0, max_step=3.0, ports=4, repetitions=1,
                   profile_checks=50)


@dataclass(frozen=True)
class Endpoint:
    key: TargetKey
    port: int
    path: str


class Recorder:
    """Every check of one step that started in the window [t0, t1). Called by one thread at a time."""

    def __init__(self) -> None:
        self.t0 = float("inf")
        self.t1 = float("inf")
        self.rows: list[tuple[float, float, float, float, bool]] = []  # lateness, check, handover, consume, ok
        self.failures: dict[str, int] = {}  # why checks failed: a few distinct reasons, counted

    def record(self, start: float, lateness: float, check: float, handover: float, consume: float, ok: bool,
               detail: str = "") -> None:
        if self.t0 <= start < self.t1:
            self.rows.append((lateness, check, handover, consume, ok))
            if not ok:
                # The reason without the endpoint, so one cause is one entry.
                reason = detail.split(": ", 1)[-1]
                if reason in self.failures or len(self.failures) < 5:
                    self.failures[reason] = self.failures.get(reason, 0) + 1


# An engine runs the checks of `endpoints` every `interval` until `stop_at` (monotonic), recording each.
Engine = Callable[[list[Endpoint], float, float, float, Recorder, "Settings"], None]
CheckFn = Callable[[IPv4Address, CheckSpec, IPv4Address | None], CheckResult]


def lasthop_engine(endpoints: list[Endpoint], interval: float, timeout: float, stop_at: float, rec: Recorder,
                   settings: Settings, check: CheckFn = run_check) -> None:
    """What `lasthop serve` does per check, minus incidents: scheduler, probe, machine, metrics.

    With `check` other than run_check (the CPU breakdown's no-op), checks run in the scheduler's
    pool through it, as the daemon's do when given a check function."""
    metrics = Metrics()
    specs = {e.key: CheckSpec(kind="http", port=e.port, path=e.path, body="ok", interval=interval, timeout=timeout,
                              fast_interval=interval, fall=2, rise=2) for e in endpoints}
    machines = {e.key: HealthMachine(e.key, fall=2, rise=2) for e in endpoints}
    ran: dict[TargetKey, tuple[float, float]] = {}  # one check per target in flight, so one slot each

    def run(job: CheckJob) -> tuple[bool, str]:
        start = time.monotonic()
        result = check(ADDRESS, specs[job.key], None)
        end = time.monotonic()
        metrics.check_seconds.labels("host").observe(end - start)
        ran[job.key] = (start, end)
        return result.ok, result.detail

    def checked(job: CheckJob, started: float, ended: float) -> None:
        # A probe's times, as the daemon's _checked observes them (on the writer, before on_result).
        metrics.check_seconds.labels("host").observe(ended - started)
        ran[job.key] = (started, ended)

    def on_result(job: CheckJob, ok: bool, detail: str, lateness: float) -> None:
        seen = time.monotonic()
        machine = machines[job.key]
        machine.observe(ok, detail, seen)
        scheduler.set_next(job.key, machine.next_delay(job.interval, job.fast_interval))
        metrics.set_health(job.key[0], job.key[1], machine.state.value)
        start, end = ran[job.key]
        rec.record(start, lateness, end - start, seen - end, time.monotonic() - seen, ok, detail)

    probe = (lambda job: Probe((ADDRESS,), specs[job.key])) if check is run_check else None
    scheduler = LoopScheduler(run, on_result, probe=probe, max_workers=settings.workers,
                              max_inflight=settings.inflight, on_check=checked)
    scheduler.on_lateness = metrics.lateness.observe
    for i, e in enumerate(endpoints):
        scheduler.add(CheckJob(e.key, interval, interval, timeout), first_delay=interval * i / len(endpoints))
    scheduler.start()
    gc.freeze()  # as Daemon.start, once its state is built
    try:
        _sleep_until(stop_at)
    finally:
        scheduler.stop(timeout=10.0)
        gc.unfreeze()  # as Daemon.stop


@dataclass
class Step:
    n: int
    interval: float
    offered: float
    timeout: float
    window: float
    checks: int
    errors: int
    achieved: float
    lateness_p50: float
    lateness_p99: float
    lateness_max: float
    cpu_per_1000: float  # the checker process, user and system
    cpu_user_per_1000: float
    cpu_system_per_1000: float
    server_cpu_per_1000: float
    stages: dict[str, float]
    failures: dict[str, int]
    passed: bool


class Server:
    """The endpoint server process; `ports` once it listens."""

    def __init__(self, ports: int) -> None:
        root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen([sys.executable, "-m", "bench._httpd", "--ports", str(ports)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the server prints once it listens, or exits
        try:
            self.ports: list[int] = json.loads(line)["ports"]
        except (ValueError, KeyError):
            self.close()
            raise RuntimeError(f"the endpoint server did not start (said {line.strip()!r})") from None

    def cpu(self) -> float:
        """CPU-seconds the server has used so far."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


def endpoints(n: int, ports: list[int]) -> list[Endpoint]:
    # Spread over many ports: each (address, port) pair has its own ephemeral-port space.
    return [Endpoint((f"svc{i}", "host"), ports[i % len(ports)], f"/ep/{i}") for i in range(n)]


def step(engine: Engine, server: Server, n: int, rate: float, settings: Settings) -> Step | None:
    """One measured step at N endpoints and an offered rate, or None if it cannot fit in max_step."""
    interval = n / rate
    warmup = interval + 0.5
    window = min(settings.window, settings.max_step - warmup)
    if window < 0.5:
        return None
    timeout = min(settings.timeout, 0.9 * interval)
    rec = Recorder()
    begin = time.monotonic()
    rec.t0, rec.t1 = begin + warmup, begin + warmup + window
    failure: list[BaseException] = []

    def go() -> None:
        try:
            engine(endpoints(n, server.ports), interval, timeout, rec.t1, rec, settings)
        except BaseException as e:
            failure.append(e)

    worker = threading.Thread(target=go, name=f"bench-checks-{n}", daemon=True)
    worker.start()
    _sleep_until(rec.t0)
    cpu0, srv0 = os.times(), server.cpu()
    _sleep_until(rec.t1)
    cpu1, srv1 = os.times(), server.cpu()
    worker.join(30.0)
    if failure:
        raise RuntimeError(f"the checker failed at N={n}: {failure[0]!r}") from failure[0]
    if worker.is_alive():
        raise RuntimeError(f"the checker did not stop within 30 s at N={n}")
    rows = rec.rows
    count = len(rows)
    errors = sum(1 for r in rows if not r[4])
    late = [r[0] for r in rows] or [0.0]
    stages = {name: statistics.median([r[i] for r in rows]) if rows else 0.0 for i, name in enumerate(STAGES)}
    per = 1000.0 / count if count else 0.0
    p99 = percentile(late, 0.99)
    return Step(n=n, interval=round(interval, 6), offered=rate, timeout=round(timeout, 6), window=round(window, 3),
                checks=count, errors=errors, achieved=round(count / window, 1), lateness_p50=percentile(late, 0.5),
                lateness_p99=p99, lateness_max=max(late),
                cpu_per_1000=round((cpu1.user + cpu1.system - cpu0.user - cpu0.system) * per, 4),
                cpu_user_per_1000=round((cpu1.user - cpu0.user) * per, 4),
                cpu_system_per_1000=round((cpu1.system - cpu0.system) * per, 4),
                server_cpu_per_1000=round((srv1 - srv0) * per, 4), stages=stages, failures=dict(rec.failures),
                passed=count > 0 and p99 < settings.lateness_p99 and errors <= ERROR_BUDGET * count)


def measure(settings: Settings, engine: Engine, label: str) -> Measurement:
    """The ladder, the repetitions of the best step, and (for lasthop's engine) the CPU breakdown."""
    server = Server(settings.ports)
    steps: list[Step] = []
    notes: list[str] = []
    try:
        for n in settings.sizes:
            for rate in sorted(settings.rates):
                s = step(engine, server, n, rate, settings)
                if s is None:
                    notes.append(f"N={n} at {rate:g}/s skipped: its interval {n / rate:g}s does not fit a step")
                    continue
                steps.append(s)
                _progress(label, s)
                if not s.passed:
                    break  # a higher offered rate at this N only loads the checker more
        passed = [s for s in steps if s.passed]
        if not steps:
            raise RuntimeError("no step could run: every interval is longer than a step allows")
        best = max(passed, key=lambda s: s.achieved) if passed else min(steps, key=lambda s: s.lateness_p99)
        runs = [best]
        for _ in range(settings.repetitions - 1):
            again = step(engine, server, best.n, best.offered, settings)
            assert again is not None  # it fitted before
            _progress(label + " again", again)
            runs.append(again)
        profile = cpu_breakdown(server, settings) if settings.profile_checks and engine is lasthop_engine else {}
    finally:
        server.close()
    samples = [r.achieved if r.passed else 0.0 for r in runs]
    cpu = statistics.median(r.cpu_per_1000 for r in runs)
    if not passed:
        notes.append(f"no step kept lateness p99 under {settings.lateness_p99 * 1000:g} ms; the figures are of the "
                     f"least late step (N={best.n}, {best.offered:g}/s offered), which counts as 0 checks/s")
    failed = [r for r in runs if not r.passed]
    if passed and failed:
        notes.append(f"{len(failed)} of {len(runs)} repetitions of the best step failed (lateness p99 or errors; "
                     "counted as 0 checks/s): the rate is at the edge")
    notes.append(f"best step: N={best.n}, interval {best.interval:g}s ({best.offered:g}/s offered); lateness p99 "
                 f"{statistics.median(r.lateness_p99 for r in runs) * 1000:.1f} ms, server CPU "
                 f"{statistics.median(r.server_cpu_per_1000 for r in runs):.3f} s per 1,000 (not counted)")
    return Measurement(
        metric="sustained checks per second with lateness p99 under "
               f"{settings.lateness_p99 * 1000:g} ms", unit="checks/s", better="higher", samples=samples,
        stages={k: statistics.median(r.stages[k] for r in runs) for k in STAGES},
        targets=[Target.judge("checks per second", statistics.median(samples), TARGET_RATE, "checks/s", at_least=True),
                 Target.judge("checker CPU per 1,000 checks", cpu, TARGET_CPU, "CPU-s", at_least=False)],
        notes=notes,
        details={"engine": label, "steps": [asdict(s) for s in steps], "repeats": [asdict(r) for r in runs[1:]],
                 "profile": profile},
    )


def run(settings: Settings) -> Measurement:
    return measure(settings, lasthop_engine, "lasthop")


def cpu_breakdown(server: Server, settings: Settings) -> dict[str, Any]:
    """Where the checker's CPU goes: one run_check alone (the blocking check, for the CLI and the
    engine's pre-check), then the scheduler with checks that do nothing (run in its pool)."""
    import cProfile
    import pstats

    k = settings.profile_checks
    spec = CheckSpec(kind="http", port=server.ports[0], path="/ep/0", body="ok", interval=5.0, timeout=2.0)
    profiler = cProfile.Profile()
    cpu0, wall0 = time.process_time(), time.monotonic()
    for _ in range(k):
        run_check(ADDRESS, spec)
    cpu1, wall1 = time.process_time(), time.monotonic()
    profiler.enable()
    for _ in range(min(k, 500)):
        run_check(ADDRESS, spec)
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:12]  # type: ignore[attr-defined]
    top = [f"{func[2]} ({Path(func[0]).name}:{func[1]}): {tt / min(k, 500) * 1e6:.1f} us/check own time"
           for func, (_cc, _nc, tt, _ct, _callers) in rows]

    def noop(address: IPv4Address, check: CheckSpec, source: IPv4Address | None) -> CheckResult:
        return CheckResult(True, "noop", 0.0)

    # Scheduling alone: the same N and rate as a mid-size step, checks answering at once.
    n, rate = min(1000, max(settings.sizes)), 1000.0
    rec = Recorder()
    begin = time.monotonic()
    warmup = n / rate + 0.5
    window = min(3.0, settings.window)
    rec.t0, rec.t1 = begin + warmup, begin + warmup + window
    worker = threading.Thread(
        target=lambda: lasthop_engine(endpoints(n, server.ports), n / rate, min(2.0, 0.9 * n / rate), rec.t1, rec,
                                      settings, check=noop), daemon=True)
    worker.start()
    _sleep_until(rec.t0)
    c0 = time.process_time()
    _sleep_until(rec.t1)
    c1 = time.process_time()
    worker.join(30.0)
    count = max(1, len(rec.rows))
    return {
        "run_check_alone": {"checks": k, "cpu_per_1000": round((cpu1 - cpu0) / k * 1000, 4),
                            "wall_ms_per_check": round((wall1 - wall0) / k * 1000, 3)},
        "scheduler_noop_checks": {"n": n, "offered": rate, "achieved": round(len(rec.rows) / window, 1),
                                  "cpu_per_1000": round((c1 - c0) / count * 1000, 4),
                                  "lateness_p99": percentile([r[0] for r in rec.rows] or [0.0], 0.99)},
        "run_check_top_own_time": top,
    }


def plot(result: Any, figure: Any) -> None:
    """Achieved against offered rate per N, and lateness p99, step by step."""
    steps = result.details.get("steps", [])
    rate_ax, late_ax = figure.subplots(1, 2)
    for n in sorted({s["n"] for s in steps}):
        mine = [s for s in steps if s["n"] == n]
        rate_ax.plot([s["offered"] for s in mine], [s["achieved"] for s in mine], marker="o", label=f"N={n}")
        late_ax.plot([s["offered"] for s in mine], [s["lateness_p99"] * 1000 for s in mine], marker="o",
                     label=f"N={n}")
    rate_ax.axhline(TARGET_RATE, linestyle="--", color="grey", label="target")
    rate_ax.set(xlabel="offered checks/s", ylabel="sustained checks/s", title=f"{result.name}: rate")
    late_ax.axhline(result.settings.get("lateness_p99", 0.1) * 1000, linestyle="--", color="grey", label="bound")
    late_ax.set(xlabel="offered checks/s", ylabel="lateness p99 (ms)", title=f"{result.name}: lateness p99",
                yscale="log")
    rate_ax.legend()
    late_ax.legend()


def _progress(label: str, s: Step) -> None:
    print(f"  [{label}] N={s.n:<6} offered {s.offered:7.0f}/s  achieved {s.achieved:7.1f}/s  lateness p50 "
          f"{s.lateness_p50 * 1000:7.1f} ms p99 {s.lateness_p99 * 1000:7.1f} ms  cpu/1000 {s.cpu_per_1000:.3f}s "
          f"(sys {s.cpu_system_per_1000:.3f})  "
          f"errors {s.errors}{' ' + str(s.failures) if s.failures else ''}  {'ok' if s.passed else 'FAILED'}",
          file=sys.stderr, flush=True)


def _sleep_until(t: float) -> None:
    while (left := t - time.monotonic()) > 0:
        time.sleep(min(left, 0.5))
