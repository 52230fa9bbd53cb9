"""Errors the state store raises. `str()` of each is one short sentence fit for a chat reply.

Each keeps its arguments in `__reduce__` so it survives pickling (multiprocessing,
worker pools) with its attributes intact.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.state.records import ApprovalRecord, LockInfo


def _hms(at: datetime) -> str:
    return f"{at:%H:%M:%S}Z"


class StateError(Exception):
    """The state store could not do what was asked; `str()` says why in one line."""


class NotFound(StateError, LookupError):
    """No record with that id (a button on an old message, a typo, a database that was reset)."""

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"no {kind} {ident}")
        self.kind = kind
        self.ident = ident

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.kind, self.ident))


class BadTransition(StateError):
    """A change asked to take a status its current one does not lead to (bot/state/transitions.py)."""

    def __init__(self, change_id: str, old: str, new: str) -> None:
        end = "it has ended" if old in ("done", "rolled_back", "failed", "refused") else f"{old} leads elsewhere"
        super().__init__(f"change {change_id[:8]} is {old}; it cannot become {new} ({end})")
        self.change_id = change_id
        self.old = old
        self.new = new

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.change_id, self.old, self.new))


class LockHeld(StateError):
    """Someone else holds the router: one change per router at a time."""

    def __init__(self, info: LockInfo) -> None:
        what = info.info or f"held by {info.holder}"
        super().__init__(f"{info.router} is busy: {what} since {_hms(info.acquired_at)}")
        self.info = info

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.info,))


class LockLost(StateError):
    """Our lock on the router is gone: it expired and was taken over, or was never ours."""

    def __init__(self, router: str, holder: str, current: LockInfo | None = None) -> None:
        tail = f" (now: {current.info or current.holder})" if current is not None else ""
        super().__init__(f"lost the lock on {router}{tail}")
        self.router = router
        self.holder = holder
        self.current = current

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.router, self.holder, self.current))


class Fenced(StateError):
    """A leader's change was refused by the store: that leader no longer leads (the fencing check)."""

    def __init__(self, term: int, current: int | None = None) -> None:
        now = f"term {current} leads now" if current is not None and current != term else "it lost its session"
        super().__init__(f"this instance no longer leads (its term {term} ended: {now}); nothing was changed")
        self.term = term
        self.current = current

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.term, self.current))


class ApprovalClosed(StateError):
    """The approval can no longer be decided; `.record` shows how it ended."""

    def __init__(self, record: ApprovalRecord) -> None:
        status = record.status
        if status in ("approved", "denied"):
            why = f"already {status} by {record.decided_by or 'someone'}"
        elif status == "expired":
            why = f"expired at {_hms(record.expires_at)}"
        elif status == "superseded":
            why = "replaced by a newer request"
        else:
            why = status
        super().__init__(f"approval {record.id[:8]} is closed: {why}")
        self.record = record

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.record,))


class DuplicateRequest(StateError):
    """The same request arrived twice (a Slack retry, a double click); the first one stands."""

    def __init__(self, change_id: str) -> None:
        super().__init__(f"already received: this is change {change_id[:8]}")
        self.change_id = change_id

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.change_id,))
