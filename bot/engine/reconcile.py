"""Settle the changes a dead process left in flight, against the live routers.

Each one is settled under its router's lock, so a change whose process is alive and at work
is never touched: its holder has the lock. The pure verdict is `bot.engine.settle.judge`;
this module only reads the router, acts on the verdict and records it.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from typing import TYPE_CHECKING

from bot.drivers import RouterDriver
from bot.drivers.errors import DriverError
from bot.engine.settle import Outcome, Settlement, judge
from bot.engine.transaction import RouterChange, Settled, took_over
from bot.state.errors import LockHeld, LockLost
from bot.state.records import ChangeRecord

if TYPE_CHECKING:
    from bot.engine.pipeline import Engine

log = logging.getLogger("lasthop.reconcile")
ACTOR = "lasthop"


class Reconciler:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = engine.store
        self.inv = engine.inv

    def run(self, routers: set[str] | None = None) -> list[Settlement]:
        """Every change in flight (on `routers`, if given), settled once where it can be."""
        out: list[Settlement] = []
        for record in self.store.changes_in_flight(unsettled=True):
            if routers is not None and record.router not in routers:
                continue
            settled = self._one(record)
            if settled.outcome != "open":
                self.store.audit(actor=ACTOR, source="reconcile", action="reconcile", target=record.router,
                                 result=settled.outcome, detail=str(settled), change_id=record.id,
                                 transcript=self._transcript)
            out.append(settled)
        return out

    def _one(self, record: ChangeRecord) -> Settlement:
        self._transcript = ""
        self._record = record
        found = self._found
        try:
            change = RouterChange.load(self.store, record)
        except ValueError as e:
            return found("open", str(e))
        if record.router not in self.inv.routers:
            return found("open", f"{record.router} is not in the inventory any more")
        holder = f"{ACTOR}@{self.engine.instance}/reconcile-{uuid.uuid4().hex[:8]}"
        try:
            dead = self.store.acquire_lock(record.router, holder=holder,
                                           info=f"reconcile of change {record.id[:8]} by {ACTOR}")
        except LockHeld as e:
            return dataclasses.replace(found("open", f"{e}; left to its holder"), busy=True)
        took = ""
        change.holder = holder
        driver = self.engine.devices.router(record.router)
        try:
            if dead is not None:
                # Usually the holder of the very change being settled, which died with it.
                took = took_over(record.router, dead)
                self.store.audit(actor=ACTOR, source="reconcile", action="lock", target=record.router,
                                 result="taken_over", detail=took, change_id=record.id)
            settled = self._settle(change, driver)
        except LockLost as e:
            settled = found("open", f"lost the router's lock while settling: {e}")
        except DriverError as e:
            driver.close()
            settled = found("open", f"cannot settle it now ({e})")
        finally:
            self._transcript = change.transcript_text()
            self.store.release_lock(record.router, holder=holder)
        return dataclasses.replace(settled, text=f"{settled.text}; {took}") if took else settled

    def _found(self, outcome: Outcome, text: str) -> Settlement:
        r = self._record
        services = tuple(s.name for s in self.inv.services_on(r.router)
                         if any(str(s.prefix) == m.get("prefix") for m in r.moves))
        return Settlement(r.id, r.router, r.status, outcome, text, services)

    def _settle(self, change: RouterChange, driver: RouterDriver) -> Settlement:
        record, found = self._record, self._found
        live = {m.prefix: driver.fib_next_hops(m.prefix) for m in change.routes}
        pending = driver.read_pending()
        verdict = judge(record.status, change.routes, live, pending=pending)
        if verdict.verdict in ("done", "rolled_back", "failed"):
            return self._end(change, verdict.verdict, verdict.text)
        if verdict.verdict == "unexplained":
            if record.status == "needs_human":
                return found("open", f"still needs a person: {verdict.text}")
            return self._end(change, "needs_human", verdict.text)
        # Half done: the record says where it was going; go there only if the target still can serve.
        why_not = self._targets_not_ready(change)
        timeout = self.inv.policy.verify_timeout
        if why_not is None:
            try:
                self._finish(change, driver, pending=pending)
            except DriverError as e:
                why_not = f"finishing it failed ({e})"
            else:
                return self._end(change, "done", f"{verdict.text}; finished it: the target passed its "
                                                        "live pre-check, verified in the FIB")
        change.hold()
        try:
            change.add(driver.revert(change.routes, confirm_timeout=timeout))
        except DriverError as e:
            return self._end(change, "needs_human", f"{verdict.text}; {why_not}; undoing it failed too: {e}")
        back = ", ".join(f"{m.prefix} via {m.old}" if m.old else f"{m.prefix} removed" for m in change.routes)
        return self._end(change, "rolled_back", f"{verdict.text}; {why_not}, so lasthop removed the new "
                                                       f"route: {back}, verified in the FIB")

    def _finish(self, change: RouterChange, driver: RouterDriver, *, pending: bool) -> None:
        timeout = self.inv.policy.verify_timeout
        change.hold()
        if pending:
            change.add(driver.confirm())  # keep what is there; the rest goes under a timer of its own
        driver.load(change.routes)  # against the live configuration: only what is still missing is sent
        change.add(driver.commit(confirm_timeout=timeout))
        change.hold()
        for m in change.routes:
            driver.wait_for_fib(m.prefix, m.new, timeout=timeout)
        change.confirm(driver)
        self.engine.save(driver, change)

    def _targets_not_ready(self, change: RouterChange) -> str | None:
        """Why a target of the change cannot serve now (the live pre-check), or None."""
        for m in change.routes:
            svc = next((s for s in self.inv.services_on(change.router) if s.prefix == m.prefix), None)
            host = self.inv.host_by_address(m.new)
            if svc is None or host is None or host.name not in svc.hosts:
                return f"{m.new} is no longer a host that may serve {m.prefix}"
            reason = self.engine.target_problem(svc.name, host.name, svc.vips)
            if reason is not None:
                return reason
        return None

    def _end(self, change: RouterChange, outcome: Settled, text: str) -> Settlement:
        if not change.settle(outcome, text):
            return self._found("open", "settled by another process first; its verdict stands")
        return self._found(outcome, text)
