"""`lasthop serve`: scheduled checks, health state machines, incidents, automatic moves.

Threads and who owns what:
- the scheduler's loop thread runs the HTTP(S)/TCP checks of hosts and VIPs itself (non-blocking
  sockets, each with its own timeout); its small pool runs the rest (loopback reads over SSH,
  router reads, and every check when a test gives its own check function);
- one writer thread (the scheduler's) applies every result to the health machines,
  so health state has a single writer and needs no locks;
- one mover thread runs engine moves one at a time, so an automatic move never
  blocks result processing and two automatic moves never race;
- the engine's per-router database lock still guards against other processes.

Several instances on one PostgreSQL store (issue 13): every instance answers chat, and only the
leader (bot/leader.py) runs what is above: the checks, incidents, automatic moves and the periodic
jobs. Each term of leadership builds them afresh (`_lead`), starting from unknown health and from
what the store and the routers say, and tears them down when it ends (`_unlead`). A follower's
status and risk rules read the health the leader publishes in the store.
"""

from __future__ import annotations

import functools
import gc
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from bot import incident_view as iv
from bot.announce import Announcer
from bot.chat import ChatOut, MessageRef, escape
from bot.drivers.errors import DriverError
from bot.engine.auto import AutoPolicy
from bot.engine.devices import Devices
from bot.engine.live import find_drift, serving_host
from bot.engine.model import MoveRequest, Outcome
from bot.engine.pipeline import Engine
from bot.engine.settle import Settlement
from bot.health.checks import CheckResult, run_check
from bot.health.loop_scheduler import LoopScheduler, Probe
from bot.health.machine import HealthMachine, TargetKey, Transition
from bot.health.scheduler import CheckJob
from bot.health.state import Health
from bot.incidents import IncidentTracker, IncidentUpdate
from bot.inventory import CheckSpec, Inventory
from bot.leader import HEARTBEAT_S, LEASE_S, POLL_S, STOPPING, Election
from bot.metrics import Metrics
from bot.periodic import Periodic
from bot.situation import Situation
from bot.state import StateError, StateStore
from bot.views import Phrasing

log = logging.getLogger("lasthop.serve")

VIP = "@vip"  # key (service, VIP): the service as clients reach it, through the router
LOOPBACK = "@lo"  # key (LOOPBACK, host): the host's VIPs on its loopback
DRIFT = "@drift"  # key (DRIFT, router): the router's live table against what lasthop expects
BUSY = "\x00busy"  # a drift read while lasthop itself was changing the router: no verdict

# One check of one address: `run_check`'s signature, so a test can answer without sockets.
CheckFn = Callable[[IPv4Address, CheckSpec, IPv4Address | None], CheckResult]

AUTO_SETTING = "auto_failover"  # the shared switch: {"on": [services with automatic failover on]}
UNREAD = object()  # when the last change moved, not read yet (None: no change ever)


@dataclass
class ServeSettings:
    loopback_interval: float = 180.0
    drift_interval: float = 60.0
    maintenance_poll: float = 5.0
    # Auto moves wait until every target has a known state: no acting on a half-built view.
    startup_grace: float = 30.0
    # An open incident nobody acknowledged is mentioned again in its thread this often (0: never).
    remind_after: float = 900.0
    # How often a change left in flight (a crashed process, a lost router) is settled again.
    reconcile_interval: float = 30.0
    # Leadership among instances on one store (bot/leader.py); the lease must stay under the
    # server's idle_session_timeout (bot/state/leadership.py).
    heartbeat: float = HEARTBEAT_S
    lease: float = LEASE_S
    poll: float = POLL_S
    # How often the leader publishes its health view for the others, and how long a follower
    # keeps the one it read.
    publish_interval: float = 1.0


@dataclass
class _Alarm:
    """A condition reported once when it starts and once when it ends (drift, missing VIPs)."""

    text: str = ""
    active: bool = False
    history: list[str] = field(default_factory=list)


class Daemon:
    def __init__(
        self,
        inv: Inventory,
        store: StateStore,
        out: ChatOut,
        *,
        channel: str = "alerts",
        phrasing: Phrasing | None = None,
        metrics: Metrics | None = None,
        settings: ServeSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        check: CheckFn = run_check,
        devices: Devices | None = None,
        instance: str | None = None,
    ) -> None:
        """`instance` names this process among others on the store: given, it leads only when
        elected (serve); None, it leads from start() on, alone (tests, the console)."""
        self.inv = inv
        # Every check the daemon runs, scheduled or the engine's live pre-check, goes through this
        # one function (run_check but in tests), so a test can answer them all without sockets.
        self._check = check
        self.store = store
        self.metrics = metrics or Metrics()
        self.settings = settings or ServeSettings()
        self.clock = clock
        self.machines: dict[TargetKey, HealthMachine] = self._fresh_machines()
        self.engine = Engine(inv, store, devices=devices, health=self, probe_source=inv.probe.source,
                             probe_vips=inv.probe.verify_vips)
        self.engine.observers.append(self._on_move)
        flapping = inv.policy.flapping
        self.incidents = IncidentTracker(store, inv, flap_threshold=flapping.changes, flap_window=flapping.window,
                                         clock=clock)
        self.announcer = Announcer(inv, store, out, channel, situation=self.situation,
                                   phrasing=phrasing or Phrasing(inv.slack.commands),
                                   opens_threads=lambda: not self.store.shared or self.leading())
        self.auto = AutoPolicy(inv, clock=clock)
        self.scheduler = self._new_scheduler()
        self._serving: dict[str, str | None] = {}
        self._took: dict[TargetKey, float] = {}  # how long each target's last check ran, seconds
        self._serving_lock = threading.Lock()
        # What the routers showed when this process started: the expectation for prefixes lasthop
        # has no record of moving, so a hand-made change after start is reported as drift.
        self._baseline: dict[IPv4Network, IPv4Address] = {}
        self._maintenance: set[str] = set()
        self._alarms: dict[TargetKey, _Alarm] = {}
        self._moves: queue.Queue[MoveRequest | None] = queue.Queue()
        self._pending: set[str] = set()  # services with an automatic move queued or running
        # service -> (deadline, targets still to re-check) before an automatic decision is made
        self._confirming: dict[str, tuple[float, set[TargetKey]]] = {}
        self._reminded: dict[int, float] = {}
        # (service, host) whose flapping hold has been said in this flapping episode of the host;
        # the incident promised silence until the host is stable, and each flap decides again.
        self._flap_held: set[tuple[str, str]] = set()
        # Fail-back is retried on every housekeeping pass: one that was refused would be refused,
        # audited and said again each time. So it waits for the situation it was refused in to
        # change (service -> that situation), and the same refusal is said only once.
        self._failback_tried: dict[str, object] = {}  # queued, with the situation it was decided in
        self._failback_blocked: dict[str, object] = {}
        self._failback_said: dict[str, str] = {}
        self._reconcile_said: set[str] = set()  # change ids already told: a change left open is said once
        self._started_at = clock()
        self._ready = False
        self._threads: list[threading.Thread] = []
        self.periodic = Periodic()  # the slow timed jobs (APScheduler), started with the checks
        self.healthy_since: dict[str, float] = {}
        self.instance = instance or self.engine.instance
        self.election: Election | None = None
        if instance is not None:
            st = self.settings
            self.election = Election(store, instance, on_promote=self._lead, on_demote=self._unlead,
                                     heartbeat=st.heartbeat, lease=st.lease, poll=st.poll)
            self.engine.auto_fence = self.election.fence
        self._term: int | None = None  # the term this instance leads in (None: alone, or following)
        self._running = False  # the leader's parts (scheduler, mover, periodic jobs) are running
        self._role_lock = threading.Lock()
        self._published: dict[tuple[str, str], str] = {}  # what this leader last published
        self._leader_view: tuple[float, dict[tuple[str, str], Health]] = (float("-inf"), {})
        self._last_change_at: object = UNREAD
        # Called once (on the writer thread) when every target has a known state: a front end
        # can say "ready" then, since a failure seen before that finds the other hosts unknown.
        self.on_ready: Callable[[], None] | None = None

    # -- HealthSource, for the engine --------------------------------------------------------
    def snapshot(self) -> dict[tuple[str, str], Health]:
        if self.leading() or not self.store.shared:
            return {k: m.state for k, m in self.machines.items() if k[1] != VIP}
        return self._leaders_health()

    def _leaders_health(self) -> dict[tuple[str, str], Health]:
        """A follower's view: what the leader published, a moment old at most; unknown when no one leads."""
        at, view = self._leader_view
        now = self.clock()
        if now - at < self.settings.publish_interval:
            return dict(view)
        published: dict[tuple[str, str], str] = {}
        try:
            record = self.store.leader()
            if record is not None and record.leading:
                published = self.store.published_health(record.term)
        except StateError as e:
            log.warning("cannot read the leader's health view: %s", e)
        view = {k: _health(published.get(k)) for k in self.machines if k[1] != VIP}
        self._leader_view = (now, view)
        return dict(view)

    def check(self, service: str, host: str) -> CheckResult:
        """The engine's live pre-check: run now, whatever the schedule says."""
        return self._check(self.inv.hosts[host].address, self.inv.services[service].check, self.inv.probe.source)

    def serving(self) -> dict[str, str | None]:
        if self.store.shared and not self.leading():
            self._follow_routes()
        with self._serving_lock:
            return dict(self._serving)

    def _follow_routes(self) -> None:
        """A follower's routes, read again when a change moved (the leader's moves are not its own)."""
        moved = self._change_mark()
        if moved is UNREAD or moved == self._last_change_at:
            return
        self._last_change_at = moved  # first: the refresh re-renders messages, which ask serving()
        self._refresh_serving()

    def flapping(self) -> set[str]:
        # A follower sees no transitions: which hosts flap is in the leader's incident events.
        self._catch_up()
        return self.incidents.flapping()

    def situation(self) -> Situation:
        # A follower's maintenance set is never refreshed (the leader's pass does that): the store's.
        following = self.store.shared and not self.leading()
        maintenance = set(self.store.maintenance()) if following else self._maintenance
        return Situation(self.snapshot(), self.serving(), frozenset(maintenance), frozenset(self.flapping()))

    # -- IncidentDesk, for the workflow -------------------------------------------------------
    def acknowledge(self, incident_id: int, by: str) -> tuple[IncidentUpdate | None, str]:
        self._catch_up()
        if self.store.shared and self.leading():
            # A follower's acknowledgement is in the store, not in this leader's tracker: the store
            # says who is on it, or a second person would be told they are, and both recorded.
            record = self.store.get_incident(incident_id)
            view = iv.view_of(record) if record is not None else None
            if view is not None and view.open and view.acked_by:
                return None, view.acked_by
        return self.incidents.acknowledge(incident_id, by)

    def _catch_up(self) -> None:
        """A follower's incidents are the leader's: read them again before acting on them."""
        if not self.leading():
            self.incidents.rebuild()

    def view(self, incident_id: int) -> iv.IncidentView | None:
        return self.incidents.view(incident_id)

    def announce(self, update: IncidentUpdate) -> None:
        self.announcer.incident(update)

    def after_move(self, incident_id: int) -> None:
        # Open incidents were refreshed by _on_move; a resolved one's Fail back buttons need it too.
        self.announcer.refresh(incident_id)

    def parent(self, incident_id: int) -> MessageRef | None:
        future = self.announcer.parent_of(incident_id)
        if future is None:
            record = self.store.get_incident(incident_id)
            return MessageRef(record.channel, record.thread_ts) if record and record.thread_ts else None
        try:
            return future.result(timeout=30)
        except Exception:
            return None

    # -- life cycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Alone: lead now. Among instances: follow (answer chat) and stand for leader."""
        if self.election is None:
            self._lead(None)
            return
        self._follow()
        self.election.start()  # SeatTaken here: a SQLite store another serve already runs on

    def leading(self) -> bool:
        """Whether this instance runs the checks and automatic moves now (alone: always). Read on
        every result and job, so a leader cut off stops at its lease's end, whatever its threads do."""
        return self.election is None or self.election.leading()

    def _follow(self) -> None:
        """What a follower needs to answer chat: the open incidents and their threads, the routes."""
        self.incidents.rebuild()
        self.announcer.load()
        self._refresh_serving()
        self.metrics.set_leadership(self.instance, False, None, None)

    def _lead(self, term: int | None) -> None:
        """A term of leadership begins: rebuild health from nothing, settle what the last leader left
        in flight against the routers, then check, decide and move. On the election's role thread."""
        with self._role_lock:
            if self._running:
                return
            try:
                self._begin_term(term)
            except Exception as e:
                if self.election is None:
                    raise
                # A leader that runs nothing would hold the seat and leave everyone unwatched: stop
                # what started and stand down, so that another instance (or this one, later) leads.
                log.exception("%s could not start leading (term %s)", self.instance, term)
                self._stop_parts("could not start leading", 60.0)
                self.election.resign(f"could not start leading: {type(e).__name__}: {e}")
                return
            role = self.election.role() if self.election is not None else None
            self.metrics.set_leadership(self.instance, True, term, role.since if role else None)
            if term is not None:
                log.info("%s leads (term %d): checks running", self.instance, term)
                self._tell_takeover(term)

    def _begin_term(self, term: int | None) -> None:
        self._term = term
        self._running = True  # from here on, _stop_parts undoes whatever has started
        if term is not None:
            self._new_term()
        self._load_auto()
        self._prepare()
        for job, first_delay in self._jobs():
            self.scheduler.add(job, first_delay=first_delay)
        self.scheduler.start()
        # What start-up built (inventory, machines, metrics, modules) lives as long as the process:
        # kept out of the collector's view, a full collection scans only what came after, instead
        # of stalling the check loop for 50-120 ms at 10,000 targets (bench checks: lateness p99).
        gc.freeze()
        t = threading.Thread(target=self._mover, name="lasthop-mover", daemon=True)
        t.start()
        self._threads.append(t)
        self.periodic.every("maintenance", self.settings.maintenance_poll, self._maintenance_pass)
        self.periodic.every("reconcile", self.settings.reconcile_interval, self.reconcile)
        if term is not None and self.store.shared:
            self.periodic.every("publish", self.settings.publish_interval, self._publish, first_delay=0.0)
        self.periodic.start()

    def _tell_takeover(self, term: int) -> None:
        """Said in the channel when the last leader did not hand over cleanly (it died, or was cut off):
        the on-call should know lasthop itself had a fault. A clean stop (a restart) is only logged."""
        prev = self.election.previous if self.election is not None else None
        if prev is None or (prev.until is not None and prev.reason == STOPPING):
            return
        if prev.until is None:
            why = f"{prev.instance} stopped leading without standing down (its session ended)"
        else:
            why = f"{prev.instance} stood down: {prev.reason}"
        self.announcer.info(f":twisted_rightwards_arrows: {escape(self.instance)} now leads lasthop (term {term}): "
                            f"{escape(why)}. Checks, incidents and automatic moves go on from here.")

    def _new_term(self) -> None:
        """Everything a term of leadership builds, new: what an earlier term saw is not evidence now."""
        self.machines = self._fresh_machines()
        self.scheduler = self._new_scheduler()
        self.periodic = Periodic()
        self._moves = queue.Queue()
        self._threads = []
        self._pending, self._confirming, self._took = set(), {}, {}
        self._alarms, self._flap_held, self._reminded = {}, set(), {}
        self._failback_tried, self._failback_blocked, self._failback_said = {}, {}, {}
        self.healthy_since = {}
        self._published = {}
        self._ready = False
        self._started_at = self.clock()
        self.auto = AutoPolicy(self.inv, clock=self.clock)
        self._count_earlier_moves()

    def _count_earlier_moves(self) -> None:
        """The move cap counts the automatic moves earlier leaders made within its window, so a
        takeover never grants a fresh allowance (the store's records, aged on this clock)."""
        window = self.inv.policy.auto_failover.window
        service_of = {str(svc.prefix): svc.name for svc in self.inv.services.values()}
        try:
            now_store, changes = self.store.now(), self.store.recent_changes(limit=500)
        except StateError as e:
            log.warning("cannot count earlier automatic moves: %s", e)
            return
        now = self.clock()
        earlier: list[tuple[float, str]] = []
        for change in changes:
            age = (now_store - change.created_at).total_seconds()
            if age > window:
                break  # newest first: the rest are older still
            if change.kind != "automatic" or change.status in ("failed", "refused"):
                continue
            earlier += [(now - age, name) for m in change.moves if (name := service_of.get(str(m.get("prefix"))))]
        for at, name in sorted(earlier):
            self.auto.record_move(name, at)

    def _unlead(self, reason: str, timeout: float = 60.0) -> None:
        """The term ended (lost, or stopping): stop checking and deciding; a move running is fenced
        off by the store before it can touch a router, or finishes what it started."""
        with self._role_lock:
            self._stop_parts(reason, timeout)

    def _stop_parts(self, reason: str, timeout: float) -> None:
        if not self._running:
            return
        self._running = False
        self.scheduler.stop()
        self.periodic.stop(timeout)  # a reconcile pass talking to a router ends first
        self._moves.put(None)
        for t in self._threads:
            t.join(timeout)
        self.metrics.set_leadership(self.instance, False, None, None)
        self.metrics.forget_leaders_view()
        if self._term is not None:
            log.info("%s no longer leads (term %d): %s", self.instance, self._term, reason)
        self._term = None

    def _prepare(self) -> None:
        """What start() does before any thread runs: settle the past, then read where routes point now.

        Apart from start() so that a test can drive the writer and the mover by hand after it.
        """
        self.incidents.rebuild()
        self.announcer.load()
        self.reconcile()
        # Read before the routes: a move another instance makes from here on is seen by the next
        # maintenance pass, the first move on a store that never had one too (None, then a time).
        self._last_change_at = self._change_mark()
        self._refresh_serving(baseline=True)
        self._refresh_maintenance()

    def _jobs(self) -> list[tuple[CheckJob, float]]:
        """Every scheduled check, with the delay before its first run."""
        jobs: list[tuple[CheckJob, float]] = []
        for key in self.machines:
            svc = self.inv.services[key[0]]
            jobs.append((CheckJob(key, svc.check.interval, svc.check.fast_interval, svc.check.timeout), 0.0))
        for host in self.inv.hosts:
            jobs.append((CheckJob((LOOPBACK, host), self.settings.loopback_interval, 5.0,
                                  min(20.0, self.settings.loopback_interval / 2)), 0.0))
        for router in sorted({s.router for s in self.inv.services.values()}):
            jobs.append((CheckJob((DRIFT, router), self.settings.drift_interval, 5.0,
                                  min(20.0, self.settings.drift_interval / 2)), self.settings.drift_interval))
        return jobs

    def stop(self, timeout: float = 60.0) -> None:
        """Stop checking, then let a move in progress finish: nothing is left half done."""
        if self.election is not None:
            self.election.stop(timeout)  # stands down: _unlead has run when this returns
        self._unlead("stopping", timeout)
        gc.unfreeze()  # collectable again: a process (a test) may go on and start another daemon
        self.engine.close()

    def _fresh_machines(self) -> dict[TargetKey, HealthMachine]:
        machines: dict[TargetKey, HealthMachine] = {}
        for svc in self.inv.services.values():
            keys = [(svc.name, host) for host in svc.hosts]
            if self.inv.probe.source is not None:
                keys.append((svc.name, VIP))
            for key in keys:
                machines[key] = HealthMachine(key, fall=svc.check.fall, rise=svc.check.rise)
        return machines

    def _new_scheduler(self) -> LoopScheduler:
        # run_check's own checks are run on the scheduler's loop (Probe); a check function given
        # instead (tests) cannot be, so then every check goes through _run in the pool.
        scheduler = LoopScheduler(self._run, self._on_result, probe=self._probe if self._check is run_check else None)
        scheduler.on_lateness = self.metrics.lateness.observe
        scheduler.on_check = self._checked
        return scheduler

    def _publish(self) -> None:
        """The leader's health view into the store, for the others' status and risk rules: changes only."""
        term = self._term
        if term is None or not self.leading():
            return
        now = {k: m.state.value for k, m in self.machines.items() if k[1] != VIP}
        changed = {k: v for k, v in now.items() if self._published.get(k) != v}
        if changed:
            self.store.publish_health(term, changed)
            self._published.update(changed)

    def _change_mark(self) -> object:
        if not self.store.shared:
            return None
        try:
            return self.store.last_change_at()
        except StateError as e:
            log.warning("cannot read when the last change moved: %s", e)
            return UNREAD

    def _load_auto(self) -> None:
        """Automatic failover on or off as the store has it: a switch flipped on any instance holds."""
        if not self.store.shared:
            return
        try:
            value = self.store.setting(AUTO_SETTING)
        except StateError as e:
            log.warning("cannot read the automatic failover switch: %s", e)
            return
        if isinstance(value, dict) and isinstance(value.get("on"), list):
            before = set(self.auto.auto_on())
            self.auto.set_on([str(name) for name in value["on"]])
            added = [name for name in self.auto.auto_on() if name not in before]
            if added and self._running and self.leading():
                # Switched on by another instance: a service whose host is down already sees no
                # transition again, so the leader looks now, as set_auto does on the leader itself.
                self.scheduler.call_soon(functools.partial(self._consider_now, added))

    # -- checks (the scheduler's loop, or its pool: I/O only) ------------------------------------------
    def _probe(self, job: CheckJob) -> Probe | None:
        """What the scheduler's loop checks itself: a host's or the VIPs' HTTP(S)/TCP check, as _run would."""
        a, b = job.key
        if a in (LOOPBACK, DRIFT):
            return None
        svc = self.inv.services[a]
        addresses = tuple(svc.vips) if b == VIP else (self.inv.hosts[b].address,)
        return Probe(addresses, svc.check, self.inv.probe.source)

    def _checked(self, job: CheckJob, started: float, ended: float) -> None:
        # A probe's duration, as _run measures the checks it runs; called on the writer thread just
        # before the probe's result, which reads it for the next delay.
        self._took[job.key] = ended - started
        self.metrics.check_seconds.labels("vip" if job.key[1] == VIP else "host").observe(ended - started)

    def _run(self, job: CheckJob) -> tuple[bool, str]:
        a, b = job.key
        start = time.monotonic()
        try:
            if a == LOOPBACK:
                return self._run_loopback(b)
            if a == DRIFT:
                return self._run_drift(b)
            svc = self.inv.services[a]
            if b == VIP:
                results = [self._check(vip, svc.check, self.inv.probe.source) for vip in svc.vips]
                bad = [r for r in results if not r.ok]
                return (not bad, bad[0].detail if bad else results[0].detail)
            result = self._check(self.inv.hosts[b].address, svc.check, self.inv.probe.source)
            return result.ok, result.detail
        finally:
            took = time.monotonic() - start
            # Read by _on_result for this same job: a target has one check in flight at a time, and
            # its result reaches the writer thread through the scheduler's queue, after this write.
            self._took[job.key] = took
            kind = "loopback" if a == LOOPBACK else "drift" if a == DRIFT else "vip" if b == VIP else "host"
            self.metrics.check_seconds.labels(kind).observe(took)

    def _run_loopback(self, host: str) -> tuple[bool, str]:
        vips = sorted({v for s in self.inv.services.values() if host in s.hosts for v in s.vips})
        try:
            check = self.engine.devices.host(host).check_vips(vips, arp=False)
        except DriverError as e:
            return False, str(e)
        if check.missing:
            return False, f"{host} lacks {', '.join(map(str, check.missing))} on its loopback"
        return True, f"{host} has its {len(vips)} VIPs on lo"

    def _run_drift(self, router: str) -> tuple[bool, str]:
        # A router lasthop is changing shows both next hops for a moment (make before break):
        # judged then, it would look half-changed. So no verdict unless the router was free before
        # and after the read and no change started or ended in between (a whole move can fit inside
        # one read: a lock check on each side alone would miss it). The next drift read judges.
        before = self.store.router_activity(router)
        if before.busy:
            return True, BUSY
        try:
            live = self.engine.read_live([router])
        except DriverError as e:
            return False, f"cannot read {router}: {e}"
        if self.store.router_activity(router) != before:
            return True, BUSY
        expected = {**self._baseline, **self.engine.expected()}
        changed = False
        with self._serving_lock:
            for svc in self.inv.services_on(router):
                host = serving_host(self.inv, live, svc.name)
                changed |= self._serving.get(svc.name) != host
                self._serving[svc.name] = host
        if changed:
            self.announcer.refresh_open()
        drift = find_drift(self.inv, live, expected)
        for svc in self.inv.services_on(router):
            self.metrics.drift.labels(svc.name).set(1 if any(d.service == svc.name for d in drift) else 0)
        return (not drift, "; ".join(d.text for d in drift) or f"{router} matches what lasthop expects")

    # -- results (the single writer thread) -------------------------------------------------------------
    def _on_result(self, job: CheckJob, ok: bool, detail: str, lateness: float) -> None:
        if not self.leading():
            return  # the term ended a moment ago: this scheduler stops soon, and its results are not news
        a, b = job.key
        if a in (LOOPBACK, DRIFT):
            if detail != BUSY:
                self._alarm(job.key, ok, detail)
            return
        machine = self.machines[job.key]
        now = self.clock()
        transition = machine.observe(ok, detail, now)
        self.scheduler.set_next(job.key, machine.next_delay(job.interval, job.fast_interval,
                                                            took=self._took.pop(job.key, 0.0)))
        self.metrics.set_health(a, b, machine.state.value)
        if transition is not None:
            self._on_transition(transition)
        self._confirmed(job.key, now)
        if not self._ready and self._view_complete(now):
            self._ready = True
            log.info("health view complete: automatic actions enabled")
            if self.on_ready is not None:
                self.on_ready()
            for svc in self.inv.services:
                self._consider(svc)

    def _tell(self, updates: list[IncidentUpdate]) -> None:
        for u in updates:
            self.announcer.incident(u)
        if updates:
            self.metrics.incidents_open.set(len(self.store.open_incidents()))

    def _view_complete(self, now: float) -> bool:
        if all(m.state is not Health.INIT for m in self.machines.values()):
            return True
        return now - self._started_at >= self.settings.startup_grace

    def _alarm(self, key: TargetKey, ok: bool, detail: str) -> None:
        alarm = self._alarms.setdefault(key, _Alarm())
        name = f"{key[0].lstrip('@')}:{key[1]}"
        if not ok and (not alarm.active or alarm.text != detail):
            alarm.active, alarm.text = True, detail
            alarm.history.append(detail)
            self.announcer.alarm(name, detail)
        elif ok and alarm.active:
            alarm.active, alarm.text = False, ""
            self.announcer.alarm_over(name, f"resolved: {detail}")

    def _on_transition(self, t: Transition) -> None:
        service, host = t.key
        log.info("%s/%s: %s -> %s (%s)", service, host, t.old.value, t.new.value, t.detail)
        if t.new is Health.UP and host != VIP:
            self.healthy_since.setdefault(host, t.at)
        elif t.new in (Health.DOWN, Health.FALLING) and host != VIP:
            self.healthy_since.pop(host, None)
        # Every transition: the tracker's notification table decides what is news.
        self._tell(self.incidents.on_transition(t, serving=self.serving()))
        if self._ready and host != VIP:
            if t.new is Health.DOWN:
                self._consider(service)
            elif t.new is Health.UP:
                self._consider_failback(service)

    # -- automatic moves --------------------------------------------------------------------------------
    def auto_on(self) -> list[str]:
        self._load_auto()
        return self.auto.auto_on()

    def set_auto(self, on: bool, service: str | None, *, by: str, source: str) -> list[str]:
        """Switch automatic failover at run time (every service, or one); audited, logged and said.

        Raises KeyError for a service not in the inventory, having changed nothing.
        """
        if self.store.shared:
            self._load_auto()  # flip the switch as every instance sees it, not as this one last did
        now_on = self.auto.set_auto(on, service)
        if self.store.shared:
            self.store.set_setting(AUTO_SETTING, {"on": now_on}, by=by)
        target = service or "all services"
        state = "on" if on else "off"
        self.store.audit(actor=by, source=source, action="auto-failover", target=target, result=state,
                         detail=f"automatic failover now on for: {', '.join(now_on) or 'nothing'}")
        log.info("automatic failover %s for %s by %s (now on for: %s)", state, target, by, ", ".join(now_on) or "-")
        if on and self.leading():
            # A service whose host is already down would otherwise wait for its next transition.
            names = list(self.inv.services) if service is None else [service]
            self.scheduler.call_soon(functools.partial(self._consider_now, names))
        return now_on

    def _consider_now(self, services: list[str]) -> None:
        if not self._ready:
            return  # the view completes soon, and then every service is considered
        for name in services:
            machine = self.machines.get((name, self.serving().get(name) or ""))
            if machine is not None and machine.state is Health.DOWN:
                self._consider(name)

    def _consider(self, service: str) -> None:
        """A host went down under `service`: re-check every other host now, then decide.

        Hosts cut off together fail their checks a moment apart; deciding on the first
        failure alone would move traffic before the self-partition guard could see the rest.
        """
        if service in self._pending or service in self._confirming:
            return
        others = {k for k, m in self.machines.items() if k[1] != VIP and m.state is not Health.DISABLED}
        timeout = max((self.inv.services[k[0]].check.timeout for k in others), default=0.0)
        self._confirming[service] = (self.clock() + timeout + 0.5, others)
        for key in others:
            self.scheduler.set_next(key, 0.0)

    def _confirmed(self, key: TargetKey, now: float) -> None:
        for service, (deadline, awaiting) in list(self._confirming.items()):
            awaiting.discard(key)
            if not awaiting or now >= deadline:
                del self._confirming[service]
                self._decide(service)

    def _decide(self, service: str) -> None:
        if service in self._pending:
            return
        serving, flapping = self.serving(), self.incidents.flapping()
        self._end_flap_episodes(flapping)
        decision = self.auto.decide(
            service, health=self.snapshot(), serving=serving, flapping=flapping, maintenance=set(self._maintenance),
        )
        if decision.action == "move" and decision.request is not None:
            self._queue(decision.request)
        elif decision.action == "hold" and not decision.routine:
            if decision.flapping:
                held = (service, serving.get(service) or "")
                if held in self._flap_held:
                    return
                self._flap_held.add(held)
            self._say(service, iv.HOLD, decision.reason)

    def _end_flap_episodes(self, flapping: set[str]) -> None:
        self._flap_held = {(s, h) for s, h in self._flap_held if h in flapping}

    def _consider_failback(self, service: str) -> None:
        if service in self._pending:
            return
        decision = self.auto.failback(service, health=self.snapshot(), serving=self.serving(),
                                      healthy_since=self.healthy_since, maintenance=set(self._maintenance),
                                      flapping=self.incidents.flapping())
        if decision.action != "move" or decision.request is None:
            # Not due (home not ready, or already home): a later fail-back is a new story, told anew.
            self._failback_blocked.pop(service, None)
            self._failback_said.pop(service, None)
            return
        situation = self._failback_situation()
        if self._failback_blocked.get(service) == situation:
            return
        self._failback_blocked.pop(service, None)
        self._failback_tried[service] = situation
        self._queue(decision.request)

    def _failback_situation(self) -> object:
        """What a refused fail-back's plan is made from, as the writer sees it: health, routes, alarms."""
        alarms = sorted((k, a.active, a.text) for k, a in self._alarms.items())
        return (sorted(self.snapshot().items()), sorted(self.serving().items()),
                sorted(self._maintenance), sorted(self.flapping()), alarms)

    def _queue(self, req: MoveRequest) -> None:
        self._pending.add(req.target)
        # Counted now, not when it has run: the next decision is made while this one waits or runs.
        self.auto.record_move(req.target, to_host=req.to_host)
        self._moves.put(req)

    def _mover(self) -> None:
        while True:
            req = self._moves.get()
            if req is None:
                return
            self._run_move(req)

    def _run_move(self, req: MoveRequest) -> None:
        """One queued automatic move, on the mover thread (or a test's, one at a time like it)."""
        changed = True  # a move that crashed may have changed something: it keeps its count
        try:
            if not self.leading():
                changed = False
                log.info("automatic move of %s dropped: this instance no longer leads", req.target)
                return
            self._load_auto()
            if not self.auto.is_on(req.target):
                changed = False
                self._say(req.target, iv.NOTE, f"automatic move of {req.target} not made: "
                                               "automatic failover was turned off meanwhile")
                return
            changed = self._move(req)
        except Exception:  # one bad move must not stop the next
            log.exception("automatic move of %s failed", req.target)
            self._say(req.target, iv.NOTE, f"automatic move of {req.target} crashed; see lasthop's log")
        finally:
            self.auto.settle(req.target, changed=changed)
            self._pending.discard(req.target)

    def _say(self, service: str, kind: str, text: str) -> None:
        """Something about `service` for people: in the thread of its incident, else in the channel."""
        host = self.serving().get(service)
        key = self.incidents.incident_key((service, host)) if host else None
        update = self.incidents.note(key, kind, text, {"service": service, "text": text}) if key else None
        if update is not None:
            self.announcer.incident(update)
        else:
            self.announcer.info(text)

    def _on_move(self, outcome: Outcome, kind: str) -> None:
        """Every move this process's engine runs (automatic ones, and the chat's): metrics, routes, incidents."""
        self.metrics.moves.labels(outcome.status, kind).inc()
        if "total_ms" in outcome.timings_ms:
            self.metrics.move_seconds.labels(kind).observe(outcome.timings_ms["total_ms"] / 1000)
        if outcome.status == "done" and outcome.plan is not None:
            # Verified in the FIB, so this is where the routes point now; the next drift read confirms it.
            with self._serving_lock:
                for m in outcome.plan.moves:
                    self._serving[m.service] = m.to_host
        self._catch_up()
        for update in self.incidents.record_move(outcome, kind):
            self.announcer.incident(update)
        self.announcer.refresh_open()

    def _move(self, req: MoveRequest) -> bool:
        """Run one automatic move; whether it may have changed a router."""
        outcome = self.engine.run(req)
        self._refresh_serving()
        situation = self._failback_tried.pop(req.target, None)  # present: this was a fail-back
        if outcome.status not in ("refused", "noop"):
            self._failback_said.pop(req.target, None)
            return True
        text = (f"automatic move of {req.target} {outcome.status}: "
                + "; ".join(escape(line) for line in outcome.lines))
        if situation is not None:
            self._failback_blocked[req.target] = situation
            if self._failback_said.get(req.target) == text:
                log.info("%s (said already)", text)
                return False
            self._failback_said[req.target] = text
        # A move that ran is in the incident's timeline already (_on_move); one that did not is news too.
        self._say(req.target, iv.NOTE, text)
        return False

    # -- housekeeping ------------------------------------------------------------------------------------
    def _maintenance_pass(self) -> None:
        """Timed work that no check result triggers: maintenance windows, flapping settling, fail-back.

        A periodic job (APScheduler): the database is read here; the state changes run on the
        writer thread like every other one.
        """
        if not self.leading():
            return
        try:
            hosts = set(self.store.maintenance())
            moved = self.store.last_change_at() if self.store.shared else None
        except Exception:  # the database may be briefly away; the next pass tries again
            log.exception("reading maintenance windows failed")
            return
        self._load_auto()
        if moved != self._last_change_at:
            # Another instance moved something (a click it answered): where routes point now.
            if self._last_change_at is not UNREAD:
                self._refresh_serving()
            self._last_change_at = moved
        self.scheduler.call_soon(functools.partial(self._tick, hosts))

    def reconcile(self) -> None:
        """Settle what a dead process (or a router cut off mid-change) left half done, and say how,
        in the thread of each incident it touches: once per change, whatever the number of passes.

        At start, then a periodic job every `reconcile_interval`, never on the writer thread: it
        may talk to routers."""
        if not self.leading():
            return
        try:
            settlements = self.engine.reconcile()
        except Exception:  # the database or a router may be away; the next pass tries again
            log.exception("reconcile failed")
            return
        for s in settlements:
            log.info("reconcile: %s", s)
            if s.busy:
                continue  # a move running in another process: not news, and not a problem
            if s.news or s.change_id not in self._reconcile_said:
                self._reconcile_said.add(s.change_id)
                self._tell_settlement(s)

    def _tell_settlement(self, s: Settlement) -> None:
        text = escape(str(s))
        head = {"done": "lasthop finished a change left half done",
                "rolled_back": "lasthop undid a change left half done",
                "failed": "a change that never reached the router is closed",
                "needs_human": "a person is needed",
                "open": "a change left in flight cannot be settled yet"}[s.outcome]
        updates = self.incidents.note_services(s.services, iv.NOTE, f"{head}: {text}")
        for update in updates:
            self.announcer.incident(update)
        if not updates:
            if s.outcome in ("needs_human", "open"):
                self.announcer.alarm(f"reconcile:{s.change_id}", f"{head}: {text}")
            else:
                self.announcer.info(f"{head}: {text}")
        if s.outcome in ("done", "rolled_back"):
            self._refresh_serving()

    def _tick(self, maintenance: set[str]) -> None:
        self._apply_maintenance(maintenance)
        self._confirmed(("", ""), self.clock())  # a decision whose re-checks never came back
        self._tell(self.incidents.tick(self.serving()))
        self._end_flap_episodes(self.incidents.flapping())
        self._remind()
        if self._ready and self.inv.policy.auto_failover.failback and self.auto.auto_on():
            for svc in self.inv.services:
                self._consider_failback(svc)

    def _remind(self) -> None:
        """An open incident that nobody acknowledged is said again in its thread, every `remind_after`."""
        every = self.settings.remind_after
        if every <= 0:
            return
        now = self.clock()
        for record in self.store.open_incidents():
            view = iv.view_of(record)
            if view.acked_by:
                continue
            age = (self.store.now() - record.opened_at).total_seconds()
            last = self._reminded.get(record.id)
            if age >= every and (last is None or now - last >= every):
                self._reminded[record.id] = now
                text = f"reminder: {view.title} for {round(age / 60)} min and nobody has acknowledged it"
                event = self.store.add_incident_event(record.id, text, kind=iv.REMINDER, data={"text": text})
                self.announcer.incident(IncidentUpdate("updated", record.id, record.key, record.title, event))

    def _refresh_maintenance(self) -> None:
        self._apply_maintenance(set(self.store.maintenance()))

    def _apply_maintenance(self, now_in: set[str]) -> None:
        started, ended = now_in - self._maintenance, self._maintenance - now_in
        self._maintenance = now_in
        for host in sorted(started):
            for key, m in self.machines.items():
                if key[1] == host:
                    t = m.disable(self.clock())
                    self.metrics.set_health(key[0], host, m.state.value)
                    if t is not None:
                        self._tell(self.incidents.on_transition(t, serving=self.serving()))
            if not self._in_incident(host):  # an incident's thread says it already
                self.announcer.info(f":wrench: {host} is in maintenance: no alerts, no automatic moves to it")
        for host in sorted(ended):
            for key, m in self.machines.items():
                if key[1] == host:
                    t = m.enable(self.clock())
                    self.scheduler.set_next(key, 0.0)
                    if t is not None:
                        self._tell(self.incidents.on_transition(t, serving=self.serving()))
            if not self._in_incident(host):
                self.announcer.info(f"{host} is out of maintenance: checking it again")

    def _in_incident(self, host: str) -> bool:
        return any(self.incidents.incident_key((s.name, host)) for s in self.inv.services.values()
                   if host in s.hosts)

    def _refresh_serving(self, *, baseline: bool = False) -> None:
        try:
            live = self.engine.read_live()
        except DriverError as e:
            log.warning("cannot read the routers: %s", e)
            return
        with self._serving_lock:
            before, self._serving = self._serving, {s: serving_host(self.inv, live, s) for s in self.inv.services}
        if before and before != self._serving:
            self.announcer.refresh_open()
        if baseline:
            for svc in self.inv.services.values():
                hops = live.get(svc.router, {}).get(svc.prefix, frozenset())
                if len(hops) == 1:
                    self._baseline[svc.prefix] = next(iter(hops))


def _health(value: str | None) -> Health:
    try:
        return Health(value) if value else Health.INIT
    except ValueError:  # a state a newer lasthop wrote: unknown here
        return Health.INIT


def probe_source_note(source: IPv4Address | None) -> str:
    return f"checks and probes are sent from {source}" if source else "checks are sent from the default address"
