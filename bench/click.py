"""Benchmark 2, click to verified: a signed Slack button click to the FIB verified on FRR.

The operator asked `/failover www-a to web2` while web1's web server is down, so the move is safe
and lasthop offered a plan to confirm. The benchmark clicks Confirm: a signed `block_actions`
request to lasthop's HTTP endpoint, served as `lasthop serve` serves it (bench/_front.py), over a
real Engine on the lab's inventory (SSH to FRR on r1 and to the web hosts, live pre-checks). It
times, per repetition, from the endpoint's handler receiving the click to lasthop's own
verification seeing the new next hop in r1's FIB (the end of `wait_for_fib`, just before the VIP
probe through r1), and the stages between. Between repetitions web1 is healed, www-a moved back
to it, and web1 broken again; at the end web1 is healed and www-a is home.

Warm: the engine's sessions to r1 and the hosts are already logged in (as in a daemon that has
been running). Cold: the engine's Devices are closed just before the click, so the click pays
for the SSH logins.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._front import ROLES, Front, front
from bench.results import Measurement, Target, percentile
from bot.commands import FailoverCommand
from bot.config import load_inventory
from bot.engine.model import MoveRequest, Outcome
from bot.engine.pipeline import Engine
from bot.inventory import Inventory
from bot.state import StateStore
from lab import Lab

SUMMARY = "click to verified: a signed Slack Confirm click to the new next hop verified in FRR's FIB (lab)"

TARGET_WARM = 0.3  # seconds, median with a warm connection
SERVICE, HOME, AWAY = "www-a", "web1", "web2"
# Stages of one click, in order; each is the median over the repetitions of its kind.
STAGES = ("ack", "handoff", "precheck", "apply", "verify_fib", "probe", "save")
PRECHECK = ("precheck_fib", "precheck_health", "precheck_vips", "precheck_compare")  # parts of precheck (overlapping)
_MOVE_WAIT = 30.0  # seconds: the bound on one move (verify_timeout is 10 s)


@dataclass
class Settings:
    warm: int = field(default=10, metadata={"help": "clicks with the engine's sessions already logged in"})
    cold: int = field(default=3, metadata={"help": "clicks with fresh sessions (the first login is timed)"})
    prefix: str = field(default="lh", metadata={"help": "the lab's prefix (used if up, else built and torn down)"})
    slot: int = field(default=0, metadata={"help": "the lab's slot"})

    def __post_init__(self) -> None:
        if not 0 <= self.warm <= 100 or not 0 <= self.cold <= 20 or self.warm + self.cold == 0:
            raise ValueError("warm 0-100 and cold 0-20 clicks, at least one in all")
        if not (self.prefix.isascii() and self.prefix.isalnum() and 1 <= len(self.prefix) <= 4):
            raise ValueError("prefix must be 1-4 letters or digits")
        if not 0 <= self.slot <= 255:
            raise ValueError("slot must be 0-255")

    @classmethod
    def tiny(cls) -> Settings:
        return cls(warm=2, cold=1)


@dataclass
class Trace:
    """Monotonic times of one engine execution, taken by wrappers on the engine instance."""

    start: float = 0.0
    verify_start: float = 0.0
    fib: float = 0.0  # wait_for_fib returned: the FIB shows the new next hop
    verify_end: float = 0.0
    end: float = 0.0
    outcome: Outcome | None = None
    parts: dict[str, float] = field(default_factory=dict)  # seconds inside the pre-check, by call
    done: threading.Event = field(default_factory=threading.Event)


class Traced:
    """Wraps `engine.execute`, `_verify` and `_probe` on one Engine instance to time each execution.

    lasthop's code runs unchanged: the wrappers only read the clock around the same calls.
    """

    def __init__(self, engine: Engine) -> None:
        self.trace = Trace()
        execute, verify, probe = engine.execute, engine._verify, engine._probe
        targets, same, health = engine.targets_problem, engine._same_as_planned, engine.health.check
        unchanged = engine._router_unchanged

        def summed(part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                start = time.monotonic()
                try:
                    return fn(*args, **kwargs)
                finally:
                    parts = self.trace.parts
                    parts[part] = parts.get(part, 0.0) + time.monotonic() - start
            return wrapped

        def timed_execute(*args: Any, **kwargs: Any) -> Outcome:
            t = self.trace
            t.start = time.monotonic()
            try:
                t.outcome = execute(*args, **kwargs)
                return t.outcome
            finally:
                t.end = time.monotonic()
                t.done.set()

        def timed_verify(*args: Any, **kwargs: Any) -> None:
            t = self.trace
            t.verify_start = time.monotonic()
            try:
                verify(*args, **kwargs)
            finally:
                t.verify_end = time.monotonic()
                t.fib = t.fib or t.verify_end  # no VIP probe configured: the FIB wait was all of it

        def timed_probe(*args: Any, **kwargs: Any) -> Any:
            t = self.trace
            t.fib = t.fib or time.monotonic()  # the first probe starts when every FIB wait returned
            return probe(*args, **kwargs)

        setattr(engine, "execute", timed_execute)  # noqa: B010 - an instance attribute, for this engine only
        setattr(engine, "_verify", timed_verify)  # noqa: B010
        setattr(engine, "_probe", timed_probe)  # noqa: B010
        # targets_problem: what the pre-check calls for the targets (target_problem goes through it too).
        setattr(engine, "targets_problem", summed("target", targets))  # noqa: B010
        setattr(engine, "_router_unchanged", summed("fib", unchanged))  # noqa: B010
        setattr(engine, "_same_as_planned", summed("compare", same))  # noqa: B010
        setattr(engine.health, "check", summed("health", health))  # noqa: B010

    def reset(self) -> Trace:
        self.trace = Trace()
        return self.trace


def lab_inventory(lab: Lab, directory: Path) -> Inventory:
    """The lab's inventory with Slack roles and a state database of the benchmark's own."""
    text = "\n".join(line for line in lab.inventory.read_text().splitlines() if not line.startswith("state_url:"))
    path = directory / "lasthop.yaml"
    path.write_text(f"state_url: sqlite:///{directory}/lasthop.db\n{text}\n{ROLES}")
    return load_inventory(path, env={})


def one_click(f: Front, traced: Traced, *, cold: bool) -> dict[str, float]:
    """Ask for the move, click Confirm; the click's timings in seconds. RuntimeError if it did not move."""
    answer = f.workflow.request(f.operator, FailoverCommand(SERVICE, AWAY))
    offer = answer.offer
    if offer is None or offer.kind != "confirm":
        raise RuntimeError(f"expected a plan to confirm for {SERVICE} to {AWAY}, got: {answer.message.fallback}")
    if cold:
        f.workflow.engine.devices.close()  # the click's engine logs in afresh
    trace = traced.reset()
    url = f.standin.new_response_url()
    seen = len(f.received)
    status, client_ack = f.click("lh.confirm.0", offer.approval_id, url)
    if status != 200:
        raise RuntimeError(f"the click was answered HTTP {status}, not 200")
    if not trace.done.wait(_MOVE_WAIT):
        raise RuntimeError(f"the move did not finish within {_MOVE_WAIT:g} s")
    out = trace.outcome
    if out is None or out.status != "done":
        lines = "; ".join(out.lines) if out else "no outcome"
        raise RuntimeError(f"the confirmed move did not succeed: {out.status if out else '?'}: {lines}")
    got = f.received[seen]
    ms = out.timings_ms
    parts = trace.parts
    precheck = ms.get("precheck_ms", 0) / 1000
    return {
        "total": trace.fib - got.start,  # the figure: click received to the FIB verified
        "to_done": trace.end - got.start,
        "client_ack": client_ack,
        "ack": got.end - got.start,
        # After the ack: the hand-off to a worker thread and the approval recorded, to the engine's start.
        "handoff": max(0.0, trace.start - got.end),
        "precheck": precheck,
        # Inside the pre-check: the live health check of the new host, the VIPs on its loopback (SSH),
        # the router's configuration compared with the plan (SSH), and r1's FIB read. The targets
        # (health, VIPs) are read on a thread of their own while the router is (FIB, compare), so
        # the parts overlap: the pre-check takes about the longer of the two sides.
        "precheck_health": parts.get("health", 0.0),
        "precheck_vips": max(0.0, parts.get("target", 0.0) - parts.get("health", 0.0)),
        "precheck_compare": parts.get("compare", 0.0),
        "precheck_fib": parts.get("fib", 0.0),
        "apply": ms.get("apply_ms", 0) / 1000,
        "verify_fib": trace.fib - trace.verify_start,
        "probe": trace.verify_end - trace.fib,
        "save": ms.get("save_ms", 0) / 1000,
    }


def move_home(lab: Lab, engine: Engine) -> None:
    """Heal web1 and put www-a back on it (a risky move, as `--accept-risk`); nothing timed."""
    lab.heal(HOME)
    hops = engine.devices.router("r1").fib_next_hops(engine.inv.services[SERVICE].prefix)
    if hops == {engine.inv.hosts[HOME].address}:
        return
    plan = engine.plan(MoveRequest(kind="service", target=SERVICE, actor="bench", source="bench", to_host=HOME))
    # Health checks of a freshly started web server can take a moment to pass: retry, bounded.
    out = engine.execute(plan, allow_risky=True)
    for _ in range(20):
        if out.status == "done":
            return
        time.sleep(0.25)
        out = engine.execute(engine.plan(plan.request), allow_risky=True)
    raise RuntimeError(f"could not move {SERVICE} back to {HOME}: {'; '.join(out.lines)}")


def run(settings: Settings) -> Measurement:
    lab = Lab(prefix=settings.prefix, slot=settings.slot)
    was_up = lab.status().exists
    lab.up()
    try:
        with tempfile.TemporaryDirectory(prefix="lasthop-bench-click-") as tmp:
            inv = lab_inventory(lab, Path(tmp))
            store = StateStore(inv.state_url)
            engine = Engine(inv, store, probe_source=inv.probe.source, probe_vips=inv.probe.verify_vips)
            traced = Traced(engine)
            rows: dict[str, list[dict[str, float]]] = {"warm": [], "cold": []}
            try:
                with front(inv, engine, store) as f:
                    move_home(lab, engine)  # also logs the engine in: the first warm click is warm
                    # One untimed click first: afterwards every session a warm click uses is logged in.
                    kinds = ["cold"] * settings.cold + ["warm-up"] * bool(settings.warm) + ["warm"] * settings.warm
                    for kind in kinds:
                        lab.break_host(HOME)
                        row = one_click(f, traced, cold=kind == "cold")
                        if kind in rows:
                            rows[kind].append(row)
                        move_home(lab, engine)
            finally:
                lab.heal(HOME)
                engine.close()
                store.close()
    finally:
        if not was_up:
            lab.down()
    return measure(settings, rows)


def measure(settings: Settings, rows: dict[str, list[dict[str, float]]]) -> Measurement:
    def med(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in rows[kind]) if rows[kind] else 0.0

    main = "warm" if rows["warm"] else "cold"
    samples = [r["total"] for r in rows[main]]
    summary: dict[str, Any] = {}
    for kind, rs in rows.items():
        if rs:
            totals = [r["total"] for r in rs]
            summary[kind] = {"clicks": len(rs), "median": statistics.median(totals), "p95": percentile(totals, 0.95),
                             "min": min(totals), "max": max(totals),
                             "to_done_median": med(kind, "to_done"),
                             "stages": {s: med(kind, s) for s in STAGES},
                             "precheck_parts": {s: med(kind, s) for s in PRECHECK}}
    targets = [Target.judge("warm median, click to verified", statistics.median(samples), TARGET_WARM, "s",
                            at_least=False)] if rows["warm"] else []
    notes = [
        f"samples are the {main} clicks; the cold ones are in details.cold",
        "from the endpoint's handler receiving the click to the end of lasthop's wait_for_fib on r1 "
        "(FRR, over SSH); the VIP probe through r1 and the save follow it and are stages of their own",
        "ack: the endpoint's handler (gate, Bolt, the ack); handoff: from the ack to the engine's start (a worker "
        "thread, the approval recorded); the stages up to verify_fib add up to the figure",
    ]
    if "cold" in summary and "warm" in summary:
        notes.append(f"cold clicks: median {summary['cold']['median'] * 1000:.0f} ms against "
                     f"{summary['warm']['median'] * 1000:.0f} ms warm (the SSH logins)")
    return Measurement(metric="click to FIB verified", unit="s", better="lower", samples=samples,
                       stages={s: med(main, s) for s in STAGES}, targets=targets, notes=notes,
                       details={**summary, "clicks": rows})


def plot(result: Any, figure: Any) -> None:
    """Stacked stages of the median warm and cold click."""
    ax = figure.add_subplot(1, 1, 1)
    kinds = [k for k in ("warm", "cold") if k in result.details]
    left = [0.0] * len(kinds)
    for stage in STAGES:
        widths = [result.details[k]["stages"][stage] * 1000 for k in kinds]
        ax.barh(kinds, widths, left=left, label=stage)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.axvline(TARGET_WARM * 1000, color="black", linestyle="--", linewidth=1, label="target (warm)")
    ax.set_xlabel("ms, medians per stage")
    ax.set_title("click to verified on FRR: where the time goes")
    ax.legend(fontsize="small", ncol=4, loc="lower right")
