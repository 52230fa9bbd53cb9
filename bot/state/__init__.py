"""lasthop's durable state: audit trail, changes, idempotency keys, approvals, router locks, incidents.

SQLite for one box, PostgreSQL when several processes share the work; the same
guarantees on both. Only the standard library and SQLAlchemy are used here.
"""

from bot.state.errors import (
    ApprovalClosed,
    BadTransition,
    DuplicateRequest,
    Fenced,
    LockHeld,
    LockLost,
    NotFound,
    StateError,
)
from bot.state.records import (
    ApprovalRecord,
    AuditRecord,
    ChangeRecord,
    IncidentEvent,
    IncidentRecord,
    LeaderRecord,
    LockInfo,
    MaintenanceRecord,
    RouterActivity,
)
from bot.state.redact import redact, register_secret
from bot.state.store import StateStore, utcnow

__all__ = [
    "ApprovalClosed",
    "ApprovalRecord",
    "AuditRecord",
    "BadTransition",
    "ChangeRecord",
    "DuplicateRequest",
    "Fenced",
    "IncidentEvent",
    "IncidentRecord",
    "LeaderRecord",
    "LockHeld",
    "LockInfo",
    "LockLost",
    "MaintenanceRecord",
    "NotFound",
    "RouterActivity",
    "StateError",
    "StateStore",
    "redact",
    "register_secret",
    "utcnow",
]
