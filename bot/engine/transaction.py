"""A move transaction: one executed plan's hold on its routers, and each router's change record.

`MoveTransaction` takes every router lock of a plan up front, in sorted order, so two plans
never wait on each other in a cycle, and gives them back however the plan ends. Each router
it reaches gets a `RouterChange`: the typed moves, the change record, the device transcript,
the step timings and the lines for the person asking. Its status changes go through named
methods, each one step of bot/state/transitions.py, which the store enforces for every
process; `RouterChange.load` rebuilds the same object from a stored change after a restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

from bot.drivers import RouteMove, RouterDriver, Transcript
from bot.engine.model import Outcome, Plan, PlannedMove, Status, move_kind
from bot.state import StateStore
from bot.state.errors import BadTransition
from bot.state.records import ChangeRecord, LockInfo

# What a change left in flight can be settled as, judged against the live router.
Settled = Literal["done", "rolled_back", "failed", "needs_human"]


def took_over(router: str, dead: LockInfo) -> str:
    """One line for people and the audit trail: whose lock on `router` we took because its holder is gone.

    When the holder died is not known, only since when it held the router."""
    node, _, pid = dead.process.rpartition(":")
    process = f"process {pid} on {node}" if node and pid else "its process unknown"
    return (f"took over {router}'s lock from a holder that is gone: {dead.info or dead.holder} "
            f"({process}, holding it since {dead.acquired_at:%H:%M:%S}Z)")


@dataclass
class RouterChange:
    """One router's part of a move: from its change record to the status it ends in."""

    store: StateStore = field(repr=False)
    router: str
    routes: tuple[RouteMove, ...]  # what the router is told, and what the change record stores
    moves: tuple[PlannedMove, ...] = ()  # the plan's view of the same moves; none for a loaded change
    requested_by: str = ""
    source: str = ""
    kind: str = "manual"  # manual | approved | automatic, as move_kind() says
    holder: str = ""  # whose router lock this runs under; empty for a change loaded without one
    risk_accepted: bool = False  # a risky plan run without approval (the CLI's --accept-risk): audited as such
    change: ChangeRecord | None = None
    transcript: list[str] = field(default_factory=list)
    timings: dict[str, int] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)  # seconds, for the timings
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    @classmethod
    def load(cls, store: StateStore, record: ChangeRecord) -> RouterChange:
        """The change a stored record describes, with its typed moves; ValueError for a damaged record."""
        return cls(store, record.router, tuple(RouteMove.from_record(m) for m in record.moves),
                   requested_by=record.requested_by, source=record.source, kind=record.kind, change=record)

    @property
    def change_id(self) -> str:
        return self.change.id if self.change is not None else ""

    @property
    def status(self) -> str | None:
        """The change record's status as this object last wrote or read it; None before begin()."""
        return self.change.status if self.change is not None else None

    # -- book-keeping ------------------------------------------------------------
    def add(self, t: Transcript) -> None:
        if t.exchanges:
            self.transcript.append(t.text())

    def transcript_text(self) -> str:
        return "\n".join(self.transcript)

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        """Add the block's wall time to `step`, also when it raises: a failed apply took time too."""
        start = self.clock()
        try:
            yield
        finally:
            self.timings[step] = self.timings.get(step, 0) + int((self.clock() - start) * 1000)

    def hold(self) -> None:
        """Renew our router lock between steps, so a slow change never outlives it; LockLost if it did."""
        self.store.refresh_lock(self.router, holder=self.holder)

    # -- the device ----------------------------------------------------------------
    def confirm(self, driver: RouterDriver) -> None:
        """Keep a commit the router would undo by itself; only after lasthop's own verification."""
        if driver.has_pending_commit():
            self.add(driver.confirm())

    def roll_back(self, driver: RouterDriver, *, confirm_timeout: float) -> None:
        """Put the old next hops back and see them in the FIB; DriverError if that fails."""
        with self.timed("rollback_ms"):
            driver.close()  # the failed session may be dead or stuck in config mode
            # The driver's rollback, not a reversed move: a commit pending on the router's own
            # revert timer is cancelled there first, so it cannot undo the rollback minutes later.
            self.add(driver.rollback(confirm_timeout=confirm_timeout))

    # -- the change record -----------------------------------------------------------
    def begin(self, request_key: str | None = None) -> ChangeRecord:
        """Record the change as planned. A request key seen before raises DuplicateRequest (the first id)."""
        self.change = self.store.create_change(
            router=self.router, moves=[m.to_record() for m in self.routes],
            requested_by=self.requested_by, source=self.source,
            # One request, several routers: each router's change is its own record under the key.
            idempotency_key=f"{request_key}:{self.router}" if request_key else None,
            kind=self.kind,
        )
        return self.change

    def applying(self, *, term: int | None = None) -> None:
        """The first moment the router may differ from before; with `term`, only while that leader leads
        (the store's fencing check, in the same transaction), else Fenced."""
        self._set("applying", term=term)

    def never_applied(self, error: str) -> None:
        """Ended before the router was touched (a leader fenced off at the last moment)."""
        self._set("failed", error=error)

    def verifying(self) -> None:
        """The router took the commit; lasthop now checks the FIB."""
        self._set("verifying")

    def done(self) -> int:
        """Verified: stamps total_ms and stores the timings as the result. Returns total_ms."""
        total = self._stop_clock()
        self._set("done", result={"timings_ms": self.timings})
        return total

    def rolled_back(self, error: str) -> int:
        """The old next hops are verified back: stamps total_ms, keeps why. Returns total_ms."""
        total = self._stop_clock()
        self._set("rolled_back", error=error)
        return total

    def needs_human(self, error: str) -> None:
        """The router is in a state lasthop could not settle; `error` says why."""
        self._set("needs_human", error=error)

    def settle(self, status: Settled, text: str) -> bool:
        """End a change left in flight by a dead process (`bot.engine.reconcile`). False, and
        nothing written, if another process settled it first: its verdict stands."""
        try:
            self._set(status, error=f"reconciled: {text}")
        except BadTransition:
            return False
        return True

    def _set(self, status: str, *, error: str = "", result: dict[str, object] | None = None,
             term: int | None = None) -> None:
        if self.change is None:
            raise RuntimeError(f"{self.router}: no change record to move to {status}; begin() first")
        self.change = self.store.set_change_status(self.change.id, status, error=error, result=result, term=term)

    def _stop_clock(self) -> int:
        self.timings["total_ms"] = int((self.clock() - self.started) * 1000)
        return self.timings["total_ms"]


class MoveTransaction:
    """One executed plan, holding the lock of every router it touches until it ends.

    `open()` takes the locks (LockHeld, with none kept, if any router is busy); leaving the
    `with` block gives them back, whatever happened inside.
    """

    def __init__(self, store: StateStore, plan: Plan, *, holder: str, approved_by: str | None = None,
                 risk_accepted: bool = False) -> None:
        self.store = store
        self.plan = plan
        self.holder = holder
        self.approved_by = approved_by
        self.kind = move_kind(plan.request, approved_by)
        self.risk_accepted = risk_accepted
        self.routers = sorted({m.router for m in plan.moves})  # sorted: two plans never wait in a cycle
        self.changes: list[RouterChange] = []  # the routers reached so far, in order
        self.notes: list[str] = []  # locks taken over from dead holders: the outcome says so first
        self._locks = ExitStack()

    @classmethod
    def open(cls, store: StateStore, plan: Plan, *, holder: str, info: str, approved_by: str | None = None,
             risk_accepted: bool = False) -> MoveTransaction:
        """Take every router's lock for `holder`, or raise LockHeld having released those taken.

        A lock whose holder is dead is taken over; each such takeover is audited at once (even if a
        later router then refuses), and the outcome's first lines name the dead holder."""
        tx = cls(store, plan, holder=holder, approved_by=approved_by, risk_accepted=risk_accepted)
        req = plan.request
        with ExitStack() as locks:
            for router in tx.routers:
                dead = locks.enter_context(store.router_lock(router, holder=holder, info=info))
                if dead is not None:
                    text = took_over(router, dead)
                    tx.notes.append(text)
                    store.audit(actor=req.actor, source=req.source, action="lock", target=router,
                                result="taken_over", detail=text)
            tx._locks = locks.pop_all()
        return tx

    def __enter__(self) -> MoveTransaction:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Release every router lock we still hold; a lock someone took over is left to them."""
        self._locks.close()

    def hold(self, router: str) -> None:
        """Renew our lock on `router`; LockLost if someone else has it now."""
        self.store.refresh_lock(router, holder=self.holder)

    def each_router(self) -> Iterator[RouterChange]:
        """Each router's change, in lock order, started as it is reached: its clock counts its own steps."""
        for router in self.routers:
            moves = tuple(m for m in self.plan.moves if m.router == router)
            req = self.plan.request
            change = RouterChange(self.store, router, tuple(m.route for m in moves), moves,
                                  requested_by=req.actor, source=req.source, kind=self.kind,
                                  holder=self.holder, risk_accepted=self.risk_accepted)
            self.changes.append(change)
            yield change

    def outcome(self, status: Status) -> Outcome:
        """The routers' lines, transcripts and summed timings, under the plan's `status`."""
        out = Outcome(status, self.plan, list(self.notes))
        for c in self.changes:
            out.lines.extend(c.lines)
            out.transcript += c.transcript_text()
            for step, ms in c.timings.items():
                out.timings_ms[step] = out.timings_ms.get(step, 0) + ms
            out.change_id = out.change_id or c.change_id or None
        return out
