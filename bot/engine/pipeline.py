"""The one path every move takes: plan, risk, pre-check, apply, verify, roll back, save, audit.

Every entry point (CLI, Slack command, button, automatic failover) builds a
MoveRequest and calls `Engine`, so the safety rules cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from ipaddress import IPv4Address, IPv4Network

from bot import faults
from bot.drivers import RouterDriver, driver_class
from bot.drivers.errors import DriverError
from bot.engine.devices import Devices
from bot.engine.live import Expected, LiveTable
from bot.engine.model import MoveRequest, Outcome, Plan, Refusal, Status, move_kind
from bot.engine.plan import make_plan
from bot.engine.reconcile import Reconciler
from bot.engine.settle import Settlement
from bot.engine.transaction import MoveTransaction, RouterChange
from bot.health.checks import CheckResult, run_check
from bot.health.live import HealthSource, LiveHealth
from bot.inventory import CheckSpec, Inventory
from bot.state import StateStore
from bot.state.errors import DuplicateRequest, Fenced, LockHeld, LockLost

log = logging.getLogger("lasthop.engine")
# A backstop only: every read of a target (health check, SSH) has its own, shorter deadline.
PRECHECK_WAIT = 300.0


class Engine:
    def __init__(
        self,
        inv: Inventory,
        store: StateStore,
        *,
        devices: Devices | None = None,
        health: HealthSource | None = None,
        probe_source: IPv4Address | None = None,
        probe_vips: bool = False,
    ) -> None:
        self.inv = inv
        self.store = store
        self.devices = devices or Devices(inv)
        self.probe_source = probe_source
        self.health = health or LiveHealth(inv, probe_source)
        self.probe_vips = probe_vips
        self.instance = f"{os.uname().nodename}:{os.getpid()}"
        # Called with every executed move's outcome and its kind (manual, approved, automatic): metrics.
        self.observers: list[Callable[[Outcome, str], None]] = []
        # Set by a serve instance that shares the store: an automatic move changes a router only while
        # this instance leads. Returns the leader's term (the store checks it as the change starts),
        # or raises Fenced. People's moves need no leader: any instance runs them, under the router lock.
        self.auto_fence: Callable[[], int] | None = None

    # -- reading the world ------------------------------------------------------
    def read_live(self, routers: list[str] | None = None) -> LiveTable:
        """Each service prefix's FIB next hops, read from the routers now."""
        table: dict[str, dict[IPv4Network, frozenset[IPv4Address]]] = {}
        for name in routers or sorted(self.inv.routers):
            prefixes = [s.prefix for s in self.inv.services_on(name)]
            if not prefixes:
                continue
            driver = self.devices.router(name)
            table[name] = {p: frozenset(h) for p, h in driver.fib_next_hops_many(prefixes).items()}
        return table

    def expected(self) -> Expected:
        """The next hop lasthop last set and verified for each prefix, from the change history."""
        out: dict[IPv4Network, IPv4Address] = {}
        for change in reversed(self.store.recent_changes(limit=200)):
            if change.status not in ("done", "rolled_back"):
                continue
            key = "new" if change.status == "done" else "old"
            for m in change.moves:
                if m.get(key):
                    out[IPv4Network(m["prefix"])] = IPv4Address(m[key])
        return out

    def plan(self, req: MoveRequest) -> Plan:
        """Steps 1-2: what would move where, and whether it needs approval. Reads, changes nothing."""
        if req.kind == "service":
            routers = [self.inv.services[req.target].router]
        else:
            routers = sorted({s.router for s in self.inv.services.values() if req.target in s.hosts})
        live = self.read_live(routers)
        split = {router for router, table in live.items() if any(len(h) > 1 for h in table.values())}
        for router in sorted(split):
            lock = self.store.lock_info(router)
            if lock is not None:
                # Two next hops while someone holds the router: a make-before-break move in flight,
                # not a half-done change. Say who is at it rather than ask for a repair.
                raise Refusal(f"{router} is busy: {lock.info} since {lock.acquired_at:%H:%M:%S}Z; try again shortly")
        settled: list[Settlement] = []
        if split:
            # Nobody is at it: a change a dead process left half done. Settle it first, so the
            # request plans from where the router really ends up.
            settled = self.reconcile(split)
            if any(s.news for s in settled):
                live = self.read_live(routers)
        # Only the serve daemon knows which hosts flap; a one-off health read cannot tell.
        flapping = getattr(self.health, "flapping", None)
        try:
            plan = make_plan(self.inv, req, live, self.health.snapshot(), self.expected(),
                             maintenance=set(self.store.maintenance()),
                             flapping=set(flapping()) if callable(flapping) else frozenset())
        except Refusal as e:
            left = [str(s) for s in settled if not s.news]
            raise Refusal("; ".join([str(e), *(f"reconcile: {n}" for n in left)])) from None
        news = tuple(f"first settled {s}" for s in settled if s.news)
        return dataclasses.replace(plan, notes=(*news, *plan.notes)) if news else plan

    # -- the move ----------------------------------------------------------------
    def run(self, req: MoveRequest, *, approved_by: str | None = None, allow_risky: bool = False,
            idempotency_key: str | None = None) -> Outcome:
        """Plan and, unless it is a dry run, execute. Every outcome is audited."""
        try:
            plan = self.plan(req)
        except (Refusal, DriverError) as e:
            self._audit(req, "plan", "refused", str(e))
            return Outcome("refused", None, [str(e)])
        return self.execute(plan, approved_by=approved_by, allow_risky=allow_risky,
                            idempotency_key=idempotency_key)

    def execute(self, plan: Plan, *, approved_by: str | None = None, allow_risky: bool = False,
                idempotency_key: str | None = None) -> Outcome:
        """Steps 3-6 for a plan: pre-check, apply, verify, roll back, save. Every outcome is audited."""
        outcome = self._execute(plan, approved_by=approved_by, allow_risky=allow_risky,
                                idempotency_key=idempotency_key)
        outcome.approved_by = approved_by
        if not plan.request.dry_run and plan.moves and outcome.status != "noop":
            kind = move_kind(plan.request, approved_by)
            for observe in self.observers:
                try:
                    observe(outcome, kind)
                except Exception:  # a metrics hook must never turn a finished move into an error
                    log.exception("move observer failed")
        return outcome

    def _execute(self, plan: Plan, *, approved_by: str | None, allow_risky: bool,
                 idempotency_key: str | None) -> Outcome:
        req = plan.request
        if plan.noop:
            self._audit(req, "move", "noop", plan.noop, plan)
            return Outcome("noop", plan, [plan.noop])
        consented = plan.risky and all(r.rule in req.accepts for r in plan.risks)
        allow_risky = allow_risky or consented
        if plan.risky and not (approved_by or allow_risky or req.dry_run):
            text = "needs approval: " + "; ".join(r.text for r in plan.risks)
            self._audit(req, "move", "refused", text, plan)
            return Outcome("refused", plan, [text])
        holder = f"{req.actor}@{self.instance}/{uuid.uuid4().hex[:8]}"
        if idempotency_key and not req.dry_run and not self.store.claim_key(idempotency_key, owner=holder):
            # A retried event, a second click: report what the first one did, never run it again.
            return self._repeat(plan, idempotency_key)
        accepted = plan.risky and allow_risky and not approved_by and not req.dry_run
        outcome = self._locked(plan, holder, approved_by, idempotency_key, accepted)
        if idempotency_key and not req.dry_run and outcome.status == "refused" and outcome.change_id is None:
            # Refused before anything changed (router busy, pre-check failed): the request never ran,
            # so a later tap may try again. A change that started keeps its key forever.
            self.store.release_key(idempotency_key, owner=holder)
        return outcome

    def _locked(self, plan: Plan, holder: str, approved_by: str | None, idempotency_key: str | None,
                risk_accepted: bool = False) -> Outcome:
        req = plan.request
        what = f"{'dry run' if req.dry_run else 'change'} by {req.actor} ({req.source})"
        try:
            tx = MoveTransaction.open(self.store, plan, holder=holder, info=what, approved_by=approved_by,
                                      risk_accepted=risk_accepted)
        except LockHeld as e:
            self._audit(req, "move", "refused", str(e), plan)
            return Outcome("refused", plan, [str(e)])
        status: Status = "dry-run" if req.dry_run else "done"
        with tx:
            for change in tx.each_router():
                result = self._one_router(tx, change, idempotency_key)
                if result != "done":
                    status = result
                    break
        outcome = tx.outcome(status)
        if outcome.status in ("done", "dry-run"):
            outcome.lines.extend(plan.notes)  # every front end, the automatic move's notice too, tells them
        return outcome

    def _repeat(self, plan: Plan, key: str) -> Outcome:
        changes = self.store.changes_for_request(key)
        if not changes:
            text = "already requested: the first request is still running; not run again"
        else:
            text = "already requested: " + ", ".join(f"change {c.id[:8]} on {c.router} is {c.status}"
                                                     for c in changes) + "; not run again"
        self._audit(plan.request, "move", "duplicate", text, plan)
        return Outcome("noop", plan, [text], change_id=changes[0].id if changes else None)

    def _one_router(self, tx: MoveTransaction, change: RouterChange, key: str | None) -> Status:
        plan, req = tx.plan, tx.plan.request
        driver = self.devices.router(change.router)
        try:
            with change.timed("precheck_ms"):
                self._precheck(driver, change)
                change.hold()
        except (Refusal, DriverError, LockLost) as e:
            driver.discard()
            change.lines.append(f"pre-check failed, nothing changed: {e}")
            self._audit(req, "precheck", "refused", str(e), plan)
            return "refused"
        if req.dry_run:
            driver.discard()
            change.lines.append(f"pre-checks passed on {change.router}")  # the heading says nothing changed
            self._audit(req, "dry-run", "ok", "; ".join(plan.summary), plan)
            return "done"
        try:
            change.begin(key)
        except DuplicateRequest as e:
            driver.discard()
            return self._already(change, e)
        try:
            change.applying(term=self.auto_fence() if self.auto_fence and req.source == "auto" else None)
        except Fenced as e:
            # A leader that lost leadership between its decision and the router: the next leader decides.
            driver.discard()
            change.never_applied(str(e))
            change.lines.append(f"not changed: {e}")
            self._audit(req, "move", "refused", str(e), plan, change_id=change.change_id)
            return "refused"
        try:
            faults.hit("before_apply")
            with change.timed("apply_ms"):
                change.add(driver.commit(confirm_timeout=self.inv.policy.verify_timeout))
            faults.hit("before_verify")
            change.hold()
            change.verifying()
            with change.timed("verify_ms"):
                self._verify(driver, change)
            change.hold()
            # Only after lasthop's own verification: a commit that is never confirmed is
            # undone by the router itself, which is the point of arming it.
            change.confirm(driver)
        except LockLost as e:
            # Another process holds the router now and may be changing it: touching it again could
            # undo that change. The router is left as it is, for a person (and reconcile) to settle.
            text = f"lost the router's lock in the middle of the change, left as it is: {e}"
            change.lines.append(text)
            change.needs_human(text)
            self._audit(req, "move", "needs_human", text, plan, transcript=change.transcript_text(),
                        change_id=change.change_id, risk_accepted=change.risk_accepted)
            return "needs_human"
        except (DriverError, Refusal) as e:
            return self._roll_back(tx, change, driver, str(e))
        faults.hit("before_save")
        self.save(driver, change)
        for m in change.moves:
            change.lines.append(f"{m.service}: {m.from_host or 'no route'} -> {m.to_host}, verified in the FIB")
        total = change.done()
        self._audit(req, "move", "done", "; ".join(plan.summary), plan, transcript=change.transcript_text(),
                    duration_ms=total, change_id=change.change_id, approved_by=tx.approved_by,
                    risk_accepted=change.risk_accepted)
        return "done"

    def _already(self, change: RouterChange, e: DuplicateRequest) -> Status:
        """The same request made this router's change before: say how that one stands, run nothing."""
        existing = self.store.get_change(e.change_id)
        state = existing.status if existing else "unknown"
        change.lines.append(f"already requested: change {e.change_id[:8]} is {state}; not run again")
        return "done" if state == "done" else "refused"

    def save(self, driver: RouterDriver, change: RouterChange) -> None:
        """Save the router's configuration after a verified change, when its policy says to."""
        router = self.inv.routers[change.router]
        if not (router.save_config and self.inv.policy.save_after_change and driver.saves):
            return
        try:
            with change.timed("save_ms"):
                change.add(driver.save_config())
        except DriverError as e:
            # The move is live and verified; an unsaved config is a warning, not a failure.
            change.lines.append(f"warning: saving the configuration failed: {e}")

    def _precheck(self, driver: RouterDriver, change: RouterChange) -> None:
        """Live, right before acting: the plan's starting point still holds, the router would send
        what the plan showed, and every target is ready.

        The targets (their health checks, their loopbacks over SSH) are read while the router is:
        other devices, every read still live and all of them done before anything is sent. The
        router's answer is told first when both refuse.
        """
        targets = [(m.service, m.to_host, m.vips) for m in change.moves]
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lasthop-precheck")
        try:
            pending = pool.submit(self.targets_problem, targets)
            router_refusal: Refusal | DriverError | None = None
            try:
                self._router_unchanged(driver, change)
                self._same_as_planned(driver, change)
            except (Refusal, DriverError) as e:
                router_refusal = e
            try:
                problem = pending.result(timeout=PRECHECK_WAIT)
            except FutureTimeout:
                problem = f"the targets' pre-checks did not finish within {PRECHECK_WAIT:g}s"
            except DriverError:
                if router_refusal is None:
                    raise
                problem = None
        finally:
            pool.shutdown(wait=False)  # done by now, unless the backstop passed: its own deadlines end it
        if router_refusal is not None:
            raise router_refusal
        if problem is not None:
            raise Refusal(problem)

    def _router_unchanged(self, driver: RouterDriver, change: RouterChange) -> None:
        live = driver.fib_next_hops_many([m.prefix for m in change.moves])
        for m in change.moves:
            now = live[m.prefix]
            start = {m.from_hop} if m.from_hop else set()
            if now != start:
                have = ", ".join(map(str, sorted(now))) or "no route"
                raise Refusal(f"{change.router}'s route for {m.prefix} changed since the plan: now {have}")

    def target_problem(self, service: str, host: str, vips: Sequence[IPv4Address]) -> str | None:
        """Why `host` cannot take `service` now, read live (its health check, then the VIPs on its
        loopback over SSH); None when it can. DriverError if the host cannot be read."""
        return self.targets_problem([(service, host, vips)])

    def targets_problem(self, targets: Sequence[tuple[str, str, Sequence[IPv4Address]]]) -> str | None:
        """The first reason one of these (service, host, VIPs) cannot be taken now, read live; None if all can.

        Each target's health check runs as before; each host's loopback is read once for all the
        VIPs it is to take, so a drain of 30 services reads two loopbacks, not thirty.
        """
        for service, host, _ in targets:
            result = self.health.check(service, host)
            if not result.ok:
                return f"{host} fails its health check for {service}: {result.detail}"
        wanted: dict[str, dict[IPv4Address, None]] = {}  # host -> its VIPs, once each, in order
        for _, host, vips in targets:
            wanted.setdefault(host, {}).update(dict.fromkeys(vips))
        for host, host_vips in wanted.items():
            found = self.devices.host(host).check_vips(host_vips, arp=False)
            if found.ok:
                continue
            for service, to, service_vips in targets:
                missing = [v for v in service_vips if to == host and v in found.missing]
                if missing:
                    return (f"{host} lacks {', '.join(map(str, missing))} on its loopback: "
                            f"it cannot serve {service}")
            return f"{host} lacks {', '.join(map(str, found.missing))} on its loopback"
        return None

    def _same_as_planned(self, driver: RouterDriver, change: RouterChange) -> None:
        """The router's own session would send exactly what the plan showed, or nothing is sent."""
        router = self.inv.routers[change.router]
        driver.load(change.routes)
        planned = driver_class(router.driver).change_lines(change.routes, router.revert_seconds)
        sent = driver.compare()
        if sent != planned:
            raise Refusal(f"{change.router}'s configuration is not what the plan assumed: the change would send "
                          f"{' / '.join(sent) or 'nothing'} instead of the plan's {' / '.join(planned)}")

    def _verify(self, driver: RouterDriver, change: RouterChange) -> None:
        timeout = self.inv.policy.verify_timeout
        driver.wait_for_fibs({m.prefix: m.to_hop for m in change.moves}, timeout=timeout)
        if self.probe_vips:
            for m in change.moves:
                svc = self.inv.services[m.service]
                for vip in m.vips:
                    result = self._probe(vip, svc.check, timeout)
                    if not result.ok:
                        raise Refusal(f"{vip} does not answer through {change.router}: {result.detail}")

    def _probe(self, vip: IPv4Address, check: CheckSpec, timeout: float) -> CheckResult:
        """The VIP as clients reach it, retried briefly: the first packets may race the FIB."""
        deadline = time.monotonic() + timeout
        while True:
            result = run_check(vip, check, self.probe_source)
            if result.ok or time.monotonic() >= deadline:
                return result
            time.sleep(0.2)

    def _roll_back(self, tx: MoveTransaction, change: RouterChange, driver: RouterDriver, error: str) -> Status:
        plan, req = tx.plan, tx.plan.request
        change.lines.append(f"change failed: {error}")
        try:
            change.roll_back(driver, confirm_timeout=self.inv.policy.verify_timeout)
        except DriverError as e2:
            change.lines.append(f"ROLLBACK FAILED, a human is needed: {e2}")
            change.needs_human(f"{error}; rollback: {e2}")
            self._audit(req, "rollback", "failed", f"{error}; rollback: {e2}", plan,
                        transcript=change.transcript_text(), change_id=change.change_id,
                        risk_accepted=change.risk_accepted)
            return "needs_human"
        back = [f"{m.prefix} via {m.old}" if m.old else f"{m.prefix} removed" for m in change.routes]
        change.lines.append("rolled back to " + ", ".join(back) + ", verified")
        total = change.rolled_back(error)
        self._audit(req, "rollback", "rolled_back", error, plan, transcript=change.transcript_text(),
                    duration_ms=total, change_id=change.change_id, risk_accepted=change.risk_accepted)
        return "rolled_back"

    # -- after a crash -------------------------------------------------------------
    def reconcile(self, routers: set[str] | None = None) -> list[Settlement]:
        """Changes a dead process left in flight, settled against the live routers under their
        locks (bot.engine.reconcile): finished, undone, or handed to a person with the reason."""
        return Reconciler(self).run(routers)

    # -- audit ----------------------------------------------------------------------
    def _audit(self, req: MoveRequest, action: str, result: str, detail: str, plan: Plan | None = None, *,
               transcript: str = "", duration_ms: int | None = None, change_id: str | None = None,
               approved_by: str | None = None, risk_accepted: bool = False) -> None:
        if approved_by:
            detail = f"{detail} (approved by {approved_by})"
        stored = plan.to_dict() if plan else None
        if risk_accepted and plan is not None and stored is not None:
            # No second person: whoever ran it owns the risk, and the record says so in data and in words.
            by = f"{req.actor} under {req.accepted_by}" if req.accepted_by else req.actor
            detail = f"{detail} (risk accepted by {by}: {'; '.join(r.text for r in plan.risks)})"
            stored["risk_accepted"] = True
            stored["risk_accepted_by"] = by
        dry = req.dry_run and action != "dry-run"
        self.store.audit(
            actor=req.actor, source=req.source, action=f"{action}:dry-run" if dry else action,
            target=req.target, result=result, detail=detail, plan=stored,
            transcript=transcript, duration_ms=duration_ms, change_id=change_id,
        )

    def close(self) -> None:
        self.devices.close()
