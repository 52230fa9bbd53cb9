"""Benchmark 4, drain: N services moved off one host of the lab in one router session on r1 (FRR).

The lab serves four services; the seed article's "up to 30 web servers" needs thirty. The run adds
N /32 service prefixes from a block the lab plan leaves free (BLOCK) for the time of the run:
each a static route on r1 (vtysh in r1's namespace) to the drained host, and its VIP on every web
host's loopback (`ip addr` in each namespace). A private copy of the lab's inventory lists only
these services, with a state database of its own per repetition, so the drain moves exactly N
prefixes and nothing of the lab's own services or history is touched.

Each repetition is lasthop's own path as `lasthop drain HOST --accept-risk` runs it: `Engine.plan`
of a MoveRequest of kind "host" (read r1, read every service's health on every host, spread the
services over the other hosts), then `Engine.execute` with `allow_risky` (a drain of a healthy host
moving several prefixes is risky by policy, which the CLI's --accept-risk accepts): the live
pre-check, the make-before-break commit, the FIB and VIP verification, `write memory`. Between
repetitions the routes are put back on the drained host directly with vtysh (not measured). The
router and host sessions stay open across repetitions (one Devices, as in the daemon); a first
drain at the largest size warms them and is kept apart as the cold figure.

Everything added is removed at the end, on failure too; if a drain saved r1's configuration with
the extra routes, it is saved again without them.
"""

from __future__ import annotations

import contextlib
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import yaml

from bench._lab import lab_up, vtysh
from bench.results import Measurement, Result, Target
from bot.config import ConfigError, load_inventory
from bot.drivers.errors import DriverError
from bot.engine.devices import Devices
from bot.engine.model import MoveRequest, Outcome, Refusal
from bot.engine.pipeline import Engine
from bot.inventory import Inventory
from bot.state import StateStore
from lab import Lab, frr, netns
from lab.errors import LabError
from lab.plan import LabPlan
from lab.proc import run as lab_run

SUMMARY = "drain: N services moved off one lab host in one session on FRR r1; total < 1 s at 30, cost per prefix"

# Free in the lab plan (lab/plan.py: its services are .32/27, .64/27, .96/27 and .200/32), inside the
# VIP block the root namespace already reaches through r1, so the verification's probes arrive.
BLOCK = IPv4Network("198.51.100.128/26")
MAX_SERVICES = BLOCK.num_addresses - 2  # .129 to .190
TARGET_SECONDS = 1.0
TARGET_SERVICES = 30
STAGES = ("plan", "precheck", "apply", "verify", "save")
CHECK = {"kind": "http", "port": 80, "interval": "2s", "timeout": "1s", "fall": 2, "rise": 2,
         "fast_interval": "500ms"}
_SETTLE_SECONDS = 15.0
_ROUTE_RE = re.compile(r"^ip route (\S+) (\S+)\s*$", re.M)


@dataclass
class Settings:
    sizes: tuple[int, ...] = field(default=(1, 5, 10, 20, 30), metadata={"help": "numbers of services drained"})
    repetitions: int = field(default=5, metadata={"help": "drains per size"})
    host: str = field(default="web1", metadata={"help": "the host drained (web1, web2 or web3)"})
    lab_prefix: str = field(default="lh", metadata={"help": "the lab's prefix (`lasthop lab up` makes lh)"})
    lab_slot: int = field(default=0, metadata={"help": "the lab's slot"})

    def __post_init__(self) -> None:
        if len(set(self.sizes)) < 2 or any(not 1 <= n <= MAX_SERVICES for n in self.sizes):
            raise ValueError(f"sizes must be at least two different numbers of services, each 1 to {MAX_SERVICES}")
        if not 1 <= self.repetitions <= 50:
            raise ValueError("repetitions must be 1 to 50")
        plan = LabPlan(self.lab_prefix, self.lab_slot)  # a bad prefix or slot is refused here, by the plan
        if self.host not in {h.name for h in plan.hosts}:
            raise ValueError(f"host must be one of {', '.join(h.name for h in plan.hosts)}, not {self.host!r}")

    @classmethod
    def tiny(cls) -> Settings:
        return cls(sizes=(1, 2), repetitions=1)


@dataclass(frozen=True)
class BenchService:
    name: str
    prefix: IPv4Network

    @property
    def vip(self) -> IPv4Address:
        return self.prefix.network_address


def bench_services(n: int) -> list[BenchService]:
    hosts = list(BLOCK.hosts())
    return [BenchService(f"drain-{i + 1:02d}", IPv4Network(f"{hosts[i]}/32")) for i in range(n)]


# -- the lab: what the run adds, and taking it away again ------------------------------------------

def configured(plan: LabPlan) -> dict[IPv4Network, set[IPv4Address]]:
    """r1's configured static routes inside BLOCK: prefix -> next hops."""
    out = vtysh(plan, ["show running-config"])
    found: dict[IPv4Network, set[IPv4Address]] = {}
    for prefix, hop in _ROUTE_RE.findall(out):
        with contextlib.suppress(ValueError):  # an interface next hop: not one of ours
            net, gw = IPv4Network(prefix), IPv4Address(hop)
            if net.subnet_of(BLOCK):
                found.setdefault(net, set()).add(gw)
    return found


def host_vips(plan: LabPlan) -> dict[str, set[IPv4Address]]:
    """The addresses inside BLOCK on each web host's loopback."""
    found: dict[str, set[IPv4Address]] = {}
    for host in plan.hosts:
        lo = netns.interfaces(host.namespace).get("lo")
        found[host.name] = {a.ip for a in (lo.addresses if lo else ()) if a.ip in BLOCK}
    return found


def leftovers(plan: LabPlan) -> list[str]:
    """Anything of BLOCK on the lab: routes on r1 (configured or in its kernel table), VIPs on hosts."""
    problems = [f"r1 has a route for {p} via {', '.join(map(str, sorted(h)))}"
                for p, h in sorted(configured(plan).items())]
    problems += [f"r1's kernel table has {p}" for p in sorted(netns.routes(plan.frr_pathspace))
                 if p.subnet_of(BLOCK)]
    problems += [f"{host} has {', '.join(map(str, sorted(v)))} on its loopback"
                 for host, v in sorted(host_vips(plan).items()) if v]
    return problems


def wait_fib(plan: LabPlan, want: dict[IPv4Network, set[IPv4Address]], what: str) -> None:
    """Until r1's kernel table shows exactly `want` for BLOCK (empty: none of it); LabError after a bound."""
    deadline = time.monotonic() + _SETTLE_SECONDS
    while True:
        have = {p: {g for g in gws if g is not None} for p, gws in netns.routes(plan.frr_pathspace).items()
                if p.subnet_of(BLOCK)}
        if have == want:
            return
        if time.monotonic() >= deadline:
            wrong = sorted(str(p) for p in set(have) | set(want) if have.get(p) != want.get(p))
            raise LabError(f"r1 did not settle {what} within {_SETTLE_SECONDS:g}s: {', '.join(wrong[:5])}")
        time.sleep(0.05)


def add_services(plan: LabPlan, services: Sequence[BenchService], home: IPv4Address) -> None:
    for host in plan.hosts:
        lines = "".join(f"address add {s.vip}/32 dev lo\n" for s in services)
        lab_run(["ip", "-n", host.namespace, "-batch", "-"], input=lines)
    vtysh(plan, ["configure terminal", *(f"ip route {s.prefix} {home}" for s in services), "end"])
    wait_fib(plan, {s.prefix: {home} for s in services}, "the benchmark's routes")


def send_home(plan: LabPlan, home: IPv4Address) -> None:
    """Every BLOCK route back to `home` alone, make-before-break (not measured)."""
    now = configured(plan)
    lines: list[str] = []
    for prefix, hops in sorted(now.items()):
        if home not in hops:
            lines.append(f"ip route {prefix} {home}")
        lines += [f"no ip route {prefix} {h}" for h in sorted(hops) if h != home]
    if lines:
        vtysh(plan, ["configure terminal", *lines, "end"])
    wait_fib(plan, {p: {home} for p in now}, "the routes back home")


def remove_all(plan: LabPlan, saved_before: str) -> list[str]:
    """Take away every BLOCK route and VIP; save r1's configuration again if a drain saved ours in it.
    Returns what could not be removed (each step is tried whatever failed before it)."""
    problems: list[str] = []
    try:
        lines = [f"no ip route {p} {h}" for p, hops in sorted(configured(plan).items()) for h in sorted(hops)]
        if lines:
            vtysh(plan, ["configure terminal", *lines, "end"])
        wait_fib(plan, {}, "without the benchmark's routes")
    except LabError as e:
        problems.append(str(e))
    for host, vips in host_vips(plan).items():
        if vips:
            batch = "".join(f"address del {v}/32 dev lo\n" for v in sorted(vips))
            done = lab_run(["ip", "-force", "-n", plan.host(host).namespace, "-batch", "-"], input=batch, check=False)
            if done.returncode != 0:
                problems.append(f"{host}: {done.stderr.strip()}")
    try:
        saved = frr.config_file(plan).read_text()
        if saved != saved_before and mentions_block(saved):
            vtysh(plan, ["write memory"])
    except (OSError, LabError) as e:
        problems.append(f"r1's saved configuration: {e}")
    return problems


def mentions_block(config: str) -> bool:
    """Whether a saved configuration has a static route inside BLOCK."""
    for prefix, _hop in _ROUTE_RE.findall(config):
        with contextlib.suppress(ValueError):
            if IPv4Network(prefix).subnet_of(BLOCK):
                return True
    return False


# -- counting what a drain says to the devices -----------------------------------------------------

@dataclass
class Counts:
    router_reads: int = 0  # show ...
    router_config: int = 0  # configure terminal, each route line, end
    router_save: int = 0  # write memory
    router_logins: int = 0
    host_commands: int = 0

    @property
    def router_round_trips(self) -> int:
        return self.router_reads + self.router_config + self.router_save


def instrument(devices: Devices, router: str, hosts: Sequence[str], counts: Callable[[], Counts]) -> None:
    """Count every exchange with r1 (each command and its reply, the unit of CliSession's deadline),
    each new login to it, and every command run on a host, by wrapping the real sessions' methods."""
    cli: Any = getattr(devices.router(router), "cli", None)
    if cli is not None:
        exchange, connected = cli._exchange, cli._connected
        last: list[object] = [None]

        def counted_exchange(conn: Any, what: str, limit: float | None = None) -> Any:
            c = counts()
            if what.startswith("show "):
                c.router_reads += 1
            elif what.startswith("write "):
                c.router_save += 1
            else:
                c.router_config += 1
            return exchange(conn, what, limit)

        def counted_connected() -> Any:
            conn = connected()
            if conn is not last[0]:
                counts().router_logins += 1
                last[0] = conn
            return conn

        setattr(cli, "_exchange", counted_exchange)  # noqa: B010 - an instance's method, for this run only
        setattr(cli, "_connected", counted_connected)  # noqa: B010
    for name in hosts:
        ssh: Any = devices.host(name).ssh
        host_run = ssh.run

        def counted_run(command: str, *, timeout: float | None = None, retry: bool = True,
                        _run: Any = host_run) -> Any:
            counts().host_commands += 1
            return _run(command, timeout=timeout, retry=retry)

        setattr(ssh, "run", counted_run)  # noqa: B010


# -- the run ---------------------------------------------------------------------------------------

def inventory_for(lab: Lab, services: Sequence[BenchService], host: str, directory: Path) -> Inventory:
    """The lab's inventory with only the benchmark's services, each on `host` first."""
    doc = yaml.safe_load(lab.inventory.read_text())
    others = [h.name for h in lab.plan.hosts if h.name != host]
    doc["services"] = {s.name: {"prefix": str(s.prefix), "router": "r1", "hosts": [host, *others],
                                "vips": [str(s.vip)], "check": dict(CHECK)} for s in services}
    doc["state_url"] = f"sqlite:///{directory / 'unused.db'}"
    path = directory / f"drain-{len(services)}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    try:
        return load_inventory(path)
    except ConfigError as e:
        raise LabError(f"the benchmark's copy of {lab.inventory} is not a valid inventory: {e}") from None


def drain_once(inv: Inventory, devices: Devices, host: str, db: Path, counts: Counts,
               current: list[Counts]) -> dict[str, Any]:
    store = StateStore(f"sqlite:///{db}")
    engine = Engine(inv, store, devices=devices, probe_source=inv.probe.source, probe_vips=inv.probe.verify_vips)
    current[0] = counts
    try:
        req = MoveRequest(kind="host", target=host, actor="bench", source="cli", reason="drain benchmark")
        start = time.monotonic()
        plan = engine.plan(req)
        planned = time.monotonic()
        # A drain of a healthy host moving several prefixes is risky by policy: accepted, as --accept-risk does.
        outcome = engine.execute(plan, allow_risky=True)
        end = time.monotonic()
    except (Refusal, DriverError) as e:  # what `Engine.run` would report as refused: the run cannot go on
        raise LabError(f"the drain of {len(inv.services)} services was refused: {e}") from None
    finally:
        store.close()
    _require_done(outcome, len(inv.services))
    t = outcome.timings_ms
    return {
        "n": len(inv.services), "total": round(end - start, 4), "plan": round(planned - start, 4),
        "execute": round(end - planned, 4), "change_total": t.get("total_ms", 0) / 1000,
        **{s: t.get(f"{s}_ms", 0) / 1000 for s in STAGES[1:]},
        "router_round_trips": counts.router_round_trips, "router_reads": counts.router_reads,
        "router_config": counts.router_config, "router_save": counts.router_save,
        "router_logins": counts.router_logins, "host_commands": counts.host_commands,
        "risks": sorted({r.rule for r in plan.risks}),
        "to_hosts": {h: sum(1 for m in plan.moves if m.to_host == h) for h in sorted({m.to_host for m in plan.moves})},
    }


def _require_done(outcome: Outcome, n: int) -> None:
    moved = len(outcome.plan.moves) if outcome.plan else 0
    if outcome.status != "done" or moved != n:
        raise LabError(f"the drain of {n} services ended {outcome.status} with {moved} moves: "
                       + " / ".join(outcome.lines[-3:]))


def run(settings: Settings) -> Measurement:
    with lab_up(settings.lab_prefix, settings.lab_slot) as lab:
        return _measure(lab, settings)


def _measure(lab: Lab, settings: Settings) -> Measurement:
    plan = lab.plan
    found = leftovers(plan)
    if found:
        raise LabError("the lab already has addresses of the benchmark's block "
                       f"{BLOCK}: {'; '.join(found[:3])} (an interrupted run? `lasthop lab down` and up clears it)")
    home = plan.host(settings.host).address.ip
    sizes = sorted(set(settings.sizes))
    services = bench_services(sizes[-1])
    saved_before = frr.config_file(plan).read_text()
    rows: list[dict[str, Any]] = []
    cold: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="lasthop-bench-drain-") as tmp, _cleanup(plan, saved_before):
        directory = Path(tmp)
        add_services(plan, services, home)
        invs = {n: inventory_for(lab, services[:n], settings.host, directory) for n in sizes}
        devices = Devices(invs[sizes[-1]])
        current = [Counts()]
        try:
            instrument(devices, "r1", [h.name for h in plan.hosts], lambda: current[0])
            cold = drain_once(invs[sizes[-1]], devices, settings.host, directory / "cold.db", Counts(), current)
            for n in sizes:
                for rep in range(settings.repetitions):
                    send_home(plan, home)
                    rows.append(drain_once(invs[n], devices, settings.host, directory / f"{n}-{rep}.db",
                                           Counts(), current))
            send_home(plan, home)
        finally:
            devices.close()
    return _summarise(settings, sizes, rows, cold)


@contextlib.contextmanager
def _cleanup(plan: LabPlan, saved_before: str) -> Iterator[None]:
    """remove_all when the block ends, however it ends; what it could not remove is said, not lost."""
    try:
        yield
    except Exception as e:
        problems = remove_all(plan, saved_before)
        if problems:
            raise LabError(f"{e}; and could not remove what the benchmark added: {'; '.join(problems)}") from e
        raise
    except BaseException:  # interrupted: clean up all the same, and let the interruption through
        remove_all(plan, saved_before)
        raise
    problems = remove_all(plan, saved_before)
    if problems:
        raise LabError("could not remove what the benchmark added: " + "; ".join(problems))


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least squares: (seconds per extra prefix, seconds at zero prefixes)."""
    slope, intercept = statistics.linear_regression(xs, ys)
    return slope, intercept


def _summarise(settings: Settings, sizes: list[int], rows: list[dict[str, Any]], cold: dict[str, Any]) -> Measurement:
    top = sizes[-1]
    at_top = [r for r in rows if r["n"] == top]
    xs = [float(r["n"]) for r in rows]
    per_prefix: dict[str, dict[str, float]] = {}
    for key in ("total", *STAGES, "router_round_trips", "host_commands"):
        slope, intercept = _fit(xs, [float(r[key]) for r in rows])
        per_prefix[key] = {"per_prefix": round(slope, 5), "fixed": round(intercept, 4)}
    by_size = {str(n): {key: statistics.median(float(r[key]) for r in rows if r["n"] == n)
                        for key in ("total", *STAGES, "change_total", "router_round_trips", "host_commands")}
               for n in sizes}
    totals = [r["total"] for r in at_top]
    stages = {s: statistics.median(r[s] for r in at_top) for s in STAGES}
    stages["other"] = max(0.0, statistics.median(totals) - sum(stages.values()))
    target = Target.judge(f"drain of {top} services, total", statistics.median(totals), TARGET_SECONDS, "s",
                          at_least=False)
    inc = per_prefix["total"]
    notes = [
        f"each extra prefix costs {inc['per_prefix'] * 1000:.1f} ms of total time (least squares over "
        f"{len(rows)} drains of {', '.join(map(str, sizes))} services; {inc['fixed'] * 1000:.0f} ms fixed), "
        f"{per_prefix['router_round_trips']['per_prefix']:.1f} router round trips and "
        f"{per_prefix['host_commands']['per_prefix']:.1f} host commands per prefix",
        "lasthop's path as `lasthop drain HOST --accept-risk`: plan (kind host), then execute with allow_risky; "
        f"the plan's risks, accepted: {', '.join(sorted({x for r in rows for x in r['risks']})) or 'none'}",
        f"warm sessions (kept across drains); the first, cold drain of {top} took {cold.get('total', 0):.3f} s "
        f"with {cold.get('router_logins', 0)} router login(s)",
        f"services are /32 prefixes from {BLOCK} added for the run on r1 and every host's loopback, then removed",
    ]
    if top != TARGET_SERVICES:
        notes.append(f"the issue's target is for {TARGET_SERVICES} services; this run's largest drain was {top}")
    return Measurement(
        metric=f"total time to drain {top} services (plan + execute)", unit="s", better="lower",
        samples=totals, stages=stages, targets=[target], notes=notes,
        details={"drains": rows, "cold": cold, "per_prefix": per_prefix, "by_size": by_size,
                 "block": str(BLOCK), "host": settings.host},
    )


def plot(result: Result, figure: Any) -> None:
    """Total time per drain against the number of services, with the least-squares line and the stages."""
    rows = result.details.get("drains", [])
    ax = figure.add_subplot(1, 1, 1)
    by_size = result.details.get("by_size", {})
    sizes = sorted(int(n) for n in by_size)
    bottom = [0.0] * len(sizes)
    for stage in STAGES:
        heights = [float(by_size[str(n)][stage]) for n in sizes]
        ax.bar(sizes, heights, bottom=bottom, width=1.2, label=stage, alpha=0.6)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.scatter([r["n"] for r in rows], [r["total"] for r in rows], color="black", s=10, label="total, each drain")
    fit = result.details.get("per_prefix", {}).get("total")
    if fit and sizes:
        ax.plot([0, sizes[-1]], [fit["fixed"], fit["fixed"] + fit["per_prefix"] * sizes[-1]], color="black",
                linewidth=1, label=f"fit: {fit['per_prefix'] * 1000:.1f} ms per prefix")
    ax.axhline(TARGET_SECONDS, color="red", linestyle="--", linewidth=1, label="target at 30")
    ax.set_xlabel("services drained in one change")
    ax.set_ylabel("seconds")
    ax.set_title("drain: one host's services moved in one session on r1 (FRR)")
    ax.legend(fontsize="small")
