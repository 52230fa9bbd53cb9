"""Benchmark, takeover: the leader of three `lasthop serve` instances dies; how soon the new one checks.

Issue 13's target: under 5 s from the leader's death to checks running on the new leader. Three
real `lasthop serve --instance` processes share one fresh PostgreSQL database (DATABASE, dropped at
the end) and the lab's inventory (no Slack: alerts go to their logs; automatic failover off, so
nothing moves). Each instance reaches PostgreSQL through a TCP proxy of its own on 127.0.0.1, so
that any of them, once leading, can be cut off. Two kinds of death, `rounds` of each:

* sigkill: the leader process is killed (its sessions end at once; the seat's lock with them);
* db_cut: the leader's proxy stalls every byte (TCP stays up: a network cut); the server ends the
  seat's session after idle_session_timeout, and the cut leader stands down at its lease's end.

Per round, against the moment of death (this machine's wall clock; PostgreSQL runs here too):
the new term as the store records it (its `since`), the new leader's log line "<instance> leads
(term N): checks running", and its first check result (its /metrics `lasthop_check_seconds_count`
growing, polled every POLL_S). After each round the dead or cut instance is started again, so
there are always three. Every wait is bounded by `timeout`; processes, proxies, the database and
the lab (if the run brought it up) are taken down on failure too.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from bench._lab import lab_up
from bench._tcp_proxy import TcpProxy
from bench.results import Measurement, Result, Target, percentile
from bot.state import StateError, StateStore
from lab import Lab
from lab.plan import LabPlan

SUMMARY = "takeover: the leader of 3 serve instances killed or cut from PostgreSQL; death to checks running < 5 s"

KINDS = ("sigkill", "db_cut")
NAMES = ("lasthop-a", "lasthop-b", "lasthop-c")
DATABASE = "lasthop_bench_takeover"
PG_URL_FILE = Path(os.environ.get("LASTHOP_TEST_PG_URL_FILE", "/var/lib/lasthop/test-postgres.url"))
STATE_URL_ENV = "BENCH_TAKEOVER_STATE_URL"  # the config names it: a password may not be written in the file
TARGET_SECONDS = 5.0
POLL_S = 0.02  # how often the store and the new leader's /metrics are read after a death
# Measured from the death: the new term in the store, checks running (log), the first check result.
MARKS = ("term", "checks_running", "first_check")
STAGES = ("death_to_term", "term_to_checks_running", "checks_running_to_first_check")
ROOT = Path(__file__).resolve().parent.parent  # the serve processes run from this checkout
_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ", re.M)
_CHECK_COUNT = re.compile(r"^lasthop_check_seconds_count\{[^}]*\} (\S+)$", re.M)

T = TypeVar("T")


@dataclass
class Settings:
    rounds: int = field(default=10, metadata={"help": "deaths of each kind"})
    kinds: tuple[str, ...] = field(default=KINDS, metadata={"help": "kinds of death: sigkill, db_cut"})
    timeout: float = field(default=60.0, metadata={"help": "bound on every wait, seconds"})
    lab_prefix: str = field(default="lh", metadata={"help": "the lab's prefix (`lasthop lab up` makes lh)"})
    lab_slot: int = field(default=0, metadata={"help": "the lab's slot"})

    def __post_init__(self) -> None:
        if not 1 <= self.rounds <= 100:
            raise ValueError("rounds must be 1 to 100")
        if not self.kinds or len(set(self.kinds)) != len(self.kinds) or not set(self.kinds) <= set(KINDS):
            raise ValueError(f"kinds must be some of {', '.join(KINDS)}, each once")
        if not 5 <= self.timeout <= 600:
            raise ValueError("timeout must be 5 to 600 seconds")
        LabPlan(self.lab_prefix, self.lab_slot)  # a bad prefix or slot is refused here, by the plan

    @classmethod
    def tiny(cls) -> Settings:
        return cls(rounds=2)


def wait_for(probe: Callable[[], T | None], timeout: float, what: str, every: float = 0.05) -> T:
    """`probe()`'s first truthy value; RuntimeError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


# -- the database -----------------------------------------------------------------------------------

def _admin_url() -> URL:
    """The tests' PostgreSQL role (scripts/postgres.sh writes its URL), which may create databases."""
    found = os.environ.get("LASTHOP_TEST_PG_URL") or (PG_URL_FILE.read_text().strip() if PG_URL_FILE.exists() else "")
    if not found:
        raise RuntimeError(f"no PostgreSQL: {PG_URL_FILE} is missing (scripts/postgres.sh makes it)")
    return make_url(found)


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """DATABASE, made new on the tests' PostgreSQL, dropped after (on failure too); its psycopg URL."""
    admin_url = _admin_url()
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{DATABASE}"'))
        try:
            yield admin_url.set(database=DATABASE).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
    finally:
        admin.dispose()


def database_exists() -> bool:
    """Whether DATABASE is there (a run leaves it dropped)."""
    admin = create_engine(_admin_url(), connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            row = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": DATABASE}).first()
            return row is not None
    finally:
        admin.dispose()


def write_config(lab: Lab, out: Path) -> Path:
    """The lab's inventory with the shared store named by $STATE_URL_ENV and nothing automatic."""
    data: dict[str, Any] = yaml.safe_load(lab.inventory.read_text())
    data["state_url"] = "${" + STATE_URL_ENV + "}"
    for svc in data["services"].values():
        svc["auto_failover"] = False
    data["policy"]["auto_failover"]["enabled"] = False  # a takeover must not be timed with a move in it
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


# -- the instances ----------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Instance:
    """One `lasthop serve` process (started again after each death) and its own proxy to PostgreSQL."""

    name: str
    proxy: TcpProxy
    state_url: str  # through the proxy
    log: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self, config: Path) -> None:
        self.port = _free_port()
        self.starts += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "LASTHOP_"))}
        env.update(PYTHONUNBUFFERED="1", **{STATE_URL_ENV: self.state_url})
        with self.log.open("ab") as out:
            out.write(f"=== start {self.starts}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "serve", "--config", str(config), "--port", str(self.port),
                 "--instance", self.name], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def output(self) -> str:
        """This start's part of the log."""
        whole = self.log.read_text(errors="replace") if self.log.exists() else ""
        return whole.rsplit(f"=== start {self.starts}\n", 1)[-1]

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                return int(r.status) == 200
        except OSError:
            return False

    def checks_done(self) -> float | None:
        """How many checks this process has run (every kind), from its /metrics; None if it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
                body = r.read().decode()
        except OSError:
            return None
        return sum(float(v) for v in _CHECK_COUNT.findall(body))

    def checks_running_at(self, term: int) -> float | None:
        """When this start's log says it leads in `term` with checks running (epoch seconds), if it does."""
        m = re.search(rf"^(\S+ \S+) INFO lasthop\.serve: {re.escape(self.name)} leads \(term {term}\): checks running$",
                      self.output(), re.M)
        return _log_time(m.group(1)) if m else None

    def stood_down_at(self) -> float | None:
        m = re.search(rf"^(\S+ \S+) WARNING lasthop\.leader: {re.escape(self.name)} stands down", self.output(), re.M)
        return _log_time(m.group(1)) if m else None


def _log_time(stamp: str) -> float:
    # logging's asctime is local time, to the millisecond: naive, so astimezone() reads it as local.
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").astimezone().timestamp()


class Cluster:
    """The three instances, their proxies and a store of the benchmark's own (direct, no proxy)."""

    def __init__(self, url: str, config: Path, directory: Path, timeout: float) -> None:
        self.url, self.config, self.timeout = url, config, timeout
        pg = make_url(url)
        self.instances: dict[str, Instance] = {}
        self.store: StateStore | None = None
        target = (str(pg.host), int(pg.port or 5432))
        for name in NAMES:
            proxy = TcpProxy(target, max_connections=64).start()
            host, port = proxy.address
            via = pg.set(host=host, port=port).render_as_string(hide_password=False)
            self.instances[name] = Instance(name, proxy, via, directory / f"{name}.log")

    def open(self) -> None:
        self.store = StateStore(self.url)  # creates the schema before the instances race for it
        for i in self.instances.values():
            i.start(self.config)

    def close(self) -> None:
        for i in self.instances.values():
            with contextlib.suppress(OSError):
                i.proxy.resume()  # a stalled instance can stop cleanly
        for i in self.instances.values():
            if i.alive() and i.proc is not None:
                i.proc.send_signal(signal.SIGTERM)
        for i in self.instances.values():
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                i.stop(15.0)
        for i in self.instances.values():
            i.proxy.stop()
        if self.store is not None:
            self.store.close()

    def leader(self) -> tuple[str, int] | None:
        assert self.store is not None
        try:
            record = self.store.leader()
        except StateError:
            return None
        if record is None or not record.leading or record.instance not in self.instances:
            return None
        return record.instance, record.term

    def steady(self) -> tuple[Instance, int]:
        """Three instances answering HTTP, one leading with checks running and a check done; (leader, term)."""
        for i in self.instances.values():
            if not i.alive():
                raise RuntimeError(f"{i.name} exited ({i.proc.returncode if i.proc else '?'}): {i.output()[-2000:]}")
        wait_for(lambda: all(i.healthy() for i in self.instances.values()), self.timeout,
                 "all three instances answering /healthz")
        name, term = wait_for(self.leader, self.timeout, "an instance leading")
        leader = self.instances[name]
        wait_for(lambda: leader.checks_running_at(term), self.timeout, f"{name}'s checks running in term {term}")
        wait_for(lambda: (leader.checks_done() or 0) > 0, self.timeout, f"{name}'s first check")
        return leader, term

    def tell(self, why: str) -> str:
        tails = "\n".join(f"--- {i.name} ---\n{i.output()[-3000:]}" for i in self.instances.values())
        return f"{why}\n{tails}"


# -- one round --------------------------------------------------------------------------------------

def one_round(cluster: Cluster, kind: str, number: int) -> dict[str, Any]:
    old, old_term = cluster.steady()
    survivors = [i for i in cluster.instances.values() if i is not old]
    before = {i.name: i.checks_done() or 0.0 for i in survivors}
    if kind == "sigkill":
        died = time.time()
        old.kill()
    else:
        died = time.time()
        old.proxy.stall()
    seen: dict[str, float] = {}
    new: Instance | None = None
    since = found_at = 0.0
    new_term = 0
    deadline = time.monotonic() + cluster.timeout
    while len(seen) < len(MARKS):
        if time.monotonic() >= deadline:
            raise RuntimeError(cluster.tell(f"{kind} round {number}: after {cluster.timeout:g} s only "
                                            f"{', '.join(seen) or 'nothing'} of {', '.join(MARKS)}"))
        if new is None:
            found = cluster.leader()
            if found is not None and found[1] > old_term:
                if found[0] == old.name:
                    raise RuntimeError(f"{kind} round {number}: {old.name} leads again in term {found[1]}")
                new, new_term = cluster.instances[found[0]], found[1]
                assert cluster.store is not None
                record = cluster.store.leader()
                assert record is not None
                since = record.since.timestamp()
                seen["term"] = since  # the store's own time is the figure; polling only finds it
                found_at = time.time()
        if new is not None:
            if "first_check" not in seen and (new.checks_done() or 0.0) > before[new.name]:
                seen["first_check"] = time.time()
            if "checks_running" not in seen:
                at = new.checks_running_at(new_term)
                if at is not None:
                    seen["checks_running"] = at
        time.sleep(POLL_S)
    assert new is not None
    row: dict[str, Any] = {"kind": kind, "round": number, "old": old.name, "new": new.name,
                           "old_term": old_term, "new_term": new_term}
    for mark in MARKS:
        row[mark] = round(seen[mark] - died, 4)
    row["death_to_term"] = row["term"]
    row["term_found_by_poll"] = round(found_at - died, 4)
    row["term_to_checks_running"] = round(seen["checks_running"] - since, 4)
    row["checks_running_to_first_check"] = round(seen["first_check"] - seen["checks_running"], 4)
    if kind == "db_cut":
        # The cut leader stands down at its lease's end (bot/leader.py), before the new term: said, not asserted.
        at = wait_for(old.stood_down_at, cluster.timeout, f"{old.name}'s log saying it stood down")
        row["old_stood_down"] = round(at - died, 4)
        row["stood_down_before_new_term"] = at < since
        old.kill()  # its sessions are stalled: a clean stop would wait on them
        old.proxy.cut()
        old.proxy.resume()
    old.start(cluster.config)
    return row


# -- the run ----------------------------------------------------------------------------------------

def run(settings: Settings) -> Measurement:
    with lab_up(settings.lab_prefix, settings.lab_slot) as lab, fresh_database() as url, \
            tempfile.TemporaryDirectory(prefix="lasthop-bench-takeover-") as tmp:
        directory = Path(tmp)
        cluster = Cluster(url, write_config(lab, directory / "lasthop.yaml"), directory, settings.timeout)
        try:
            cluster.open()
            rows = [one_round(cluster, kind, n + 1) for n in range(settings.rounds) for kind in settings.kinds]
        finally:
            cluster.close()
    return _summarise(settings, rows)


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 4), "p95": round(percentile(values, 0.95), 4),
            "max": round(max(values), 4), "min": round(min(values), 4)}


def _summarise(settings: Settings, rows: list[dict[str, Any]]) -> Measurement:
    by_kind: dict[str, dict[str, dict[str, float]]] = {}
    targets: list[Target] = []
    stages: dict[str, float] = {}
    for kind in settings.kinds:
        mine = [r for r in rows if r["kind"] == kind]
        by_kind[kind] = {key: _stats([float(r[key]) for r in mine]) for key in (*MARKS, *STAGES)}
        if kind == "db_cut":
            by_kind[kind]["old_stood_down"] = _stats([float(r["old_stood_down"]) for r in mine])
        for s in STAGES:  # a first check can land before the log line is written: the stage is then 0
            stages[f"{kind}: {s.replace('_', ' ')}"] = max(0.0, by_kind[kind][s]["median"])
        targets.append(Target.judge(f"{kind}: death to checks running on the new leader, max",
                                    by_kind[kind]["checks_running"]["max"], TARGET_SECONDS, "s", at_least=False))
    notes = [
        f"3 `lasthop serve` instances on one PostgreSQL database, each through its own TCP proxy on 127.0.0.1; "
        f"{settings.rounds} deaths of each kind ({', '.join(settings.kinds)}), the dead instance started again "
        "after each",
        "term: the new term's `since` in the store; checks running: the new leader's log line; first check: "
        f"its /metrics lasthop_check_seconds_count growing (read every {POLL_S * 1000:.0f} ms)",
    ]
    cut = [r for r in rows if r["kind"] == "db_cut"]
    if cut:
        before = sum(1 for r in cut if r["stood_down_before_new_term"])
        notes.append(f"db_cut: the cut leader stood down before the new term in {before} of {len(cut)} rounds "
                     f"(median {by_kind['db_cut']['old_stood_down']['median']:.2f} s after the cut)")
    return Measurement(
        metric="leader's death to checks running on the new leader", unit="s", better="lower",
        samples=[float(r["checks_running"]) for r in rows], stages=stages, targets=targets, notes=notes,
        details={"rounds": rows, "by_kind": by_kind, "database": DATABASE, "instances": list(NAMES)},
    )


def summary_table(result: Result) -> str:
    """Per kind of death: each stage's median (p95, max), and death to checks running against the target."""
    by_kind = result.details.get("by_kind", {})

    def cell(s: dict[str, float]) -> str:
        return f"{s['median']:.2f} ({s['p95']:.2f}, {s['max']:.2f})"

    lines = ["| Leader's death | to new term | term to checks running | to first check | "
             "death to checks running (target) |", "|---|---|---|---|---|"]
    for kind in [k for k in KINDS if k in by_kind]:
        e = by_kind[kind]
        total = e["checks_running"]
        verdict = "met" if total["max"] <= TARGET_SECONDS else f"**missed by {total['max'] / TARGET_SECONDS - 1:.0%}**"
        lines.append(f"| {kind} | {cell(e['death_to_term'])} | {cell(e['term_to_checks_running'])} | "
                     f"{cell(e['checks_running_to_first_check'])} | **{cell(total)}** (max ≤ {TARGET_SECONDS:g} s): "
                     f"{verdict} |")
    commit = result.machine.commit
    commit = commit[:7] + ("-dirty" if commit.endswith("-dirty") else "")
    lines.append("")
    lines.append(f"_Seconds, median (p95, max) of {result.settings.get('rounds', '?')} deaths of each kind, "
                 f"{result.when[:16].replace('T', ' ')} UTC, commit {commit}, load average "
                 f"{result.machine.load_average[0]:.2f} on {result.machine.cpus} CPUs._")
    return "\n".join(lines) + "\n"
