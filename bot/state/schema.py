"""Tables of the state store, identical on SQLite and PostgreSQL.

Everything that must hold across processes is a constraint here (primary keys,
unique keys, the one-open-incident-per-key index) so that the store can lean on
the database instead of on read-then-write in Python.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    event,
)
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.types import TypeDecorator

# 2: incident events carry structured data (kind, member, data) beside their rendered text.
# 3: router locks name their holder's process and session, so a lock dies with its holder.
# 4: leadership (who runs the checks), health as the leader sees it, and shared settings (new tables).
SCHEMA_VERSION = 4


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on both backends.

    SQLite has no time zone type: values are stored as naive UTC text, which also
    keeps `expires_at > :now` comparisons correct as plain string comparisons.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            # A naive value would be read back as UTC whatever it meant: refuse the ambiguity.
            raise ValueError(f"naive datetime {value!r} given to the state store; use an aware UTC value")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQLite only turns an INTEGER PRIMARY KEY into an auto-assigned rowid, not a BIGINT one.
BigId = BigInteger().with_variant(Integer(), "sqlite")
# none_as_null: a missing plan or result is SQL NULL, not the JSON text 'null'.
Json = JSON(none_as_null=True)
Ident = String(32)  # uuid4 hex

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
)

audit = Table(
    "audit",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False, index=True),
    Column("actor", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("target", Text, nullable=False, index=True),
    Column("result", Text, nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("plan", Json, nullable=True),
    Column("transcript", Text, nullable=False, default=""),
    Column("duration_ms", Integer, nullable=True),
    # No foreign key on purpose: an audit write must never be refused over a reference.
    Column("change_id", Ident, nullable=True, index=True),
)

changes = Table(
    "changes",
    metadata,
    # Insertion order: breaks created_at ties (a frozen test clock, two changes in one microsecond)
    # so "newest first" is deterministic; the public id stays the uuid.
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("id", Ident, nullable=False, unique=True),
    Column("router", Text, nullable=False, index=True),
    Column("moves", Json, nullable=False),
    # " p1 p2 ": lets recent_changes(prefix=) filter in SQL without backend-specific JSON operators.
    Column("prefixes", Text, nullable=False, default=""),
    Column("status", String(16), nullable=False, index=True),
    Column("kind", Text, nullable=False),
    Column("requested_by", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, index=True),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("error", Text, nullable=False, default=""),
    Column("result", Json, nullable=True),
    # Unique but nullable: both backends allow any number of NULLs under a unique constraint.
    Column("idempotency_key", Text, nullable=True, unique=True),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", Text, primary_key=True),
    Column("owner", Text, nullable=False),
    Column("claimed_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", Ident, primary_key=True),
    Column("plan", Json, nullable=False),
    # plan["target"], copied out so superseding is a plain indexed UPDATE on both backends.
    Column("target", Text, nullable=False, default=""),
    Column("requester", Text, nullable=False),
    Column("reasons", Json, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("decided_by", Text, nullable=False, default=""),
    Column("decided_at", UTCDateTime, nullable=True),
    Column("channel", Text, nullable=False, default=""),
    Column("message_ts", Text, nullable=False, default=""),
    Index("ix_approvals_target_status", "target", "status"),
)

router_locks = Table(
    "router_locks",
    metadata,
    Column("router", Text, primary_key=True),
    Column("holder", Text, nullable=False),
    Column("info", Text, nullable=False, default=""),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    # The holder's process (bot/state/liveness.py); '' and 0 in rows of older lasthops: TTL only.
    Column("node", Text, nullable=False, default=""),
    Column("pid", Integer, nullable=False, default=0),
    Column("started", BigInteger, nullable=False, default=0),
    Column("boot_id", Text, nullable=False, default=""),
    Column("pid_ns", Text, nullable=False, default=""),
    # PostgreSQL: the objid of the advisory lock the holder's session keeps; NULL on SQLite.
    Column("session_key", BigInteger, nullable=True),
)

maintenance = Table(
    "maintenance",
    metadata,
    Column("host", Text, primary_key=True),
    Column("by", Text, nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("since", UTCDateTime, nullable=False),
    Column("until", UTCDateTime, nullable=True),  # NULL: until turned off
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("key", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime, nullable=True),
    Column("channel", Text, nullable=False, default=""),
    Column("thread_ts", Text, nullable=False, default=""),
)
# One open incident per key, enforced by the database so two processes noticing the
# same outage at once cannot open it twice; resolved ones may repeat freely.
OPEN_INCIDENT_KEY = Index(
    "ux_incidents_open_key",
    incidents.c.key,
    unique=True,
    postgresql_where=incidents.c.status == "open",
    sqlite_where=incidents.c.status == "open",
)

incident_events = Table(
    "incident_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("incident_id", BigId, ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("at", UTCDateTime, nullable=False),
    # What happened, as data: a restart replays these, never the sentence people read.
    Column("kind", Text, nullable=False, default=""),
    Column("member", Text, nullable=False, default=""),  # "host:web1", "service:www-a", or "" for the incident
    Column("data", Json, nullable=True),
    Column("text", Text, nullable=False),
)

# Which `lasthop serve` instance leads: one row (id 1). `term` is the fencing token: it grows by one
# with every new leader, and a leader's automatic change starts only while the row still has its term
# (StateStore.set_change_status). On PostgreSQL `backend_pid` is the leader's own session, which holds
# the leadership advisory lock for as long as it leads (bot/state/leadership.py).
leadership = Table(
    "leadership",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("term", BigInteger, nullable=False),
    Column("instance", Text, nullable=False),
    Column("node", Text, nullable=False, default=""),
    Column("pid", Integer, nullable=False, default=0),
    Column("backend_pid", Integer, nullable=True),
    Column("since", UTCDateTime, nullable=False),
    Column("until", UTCDateTime, nullable=True),  # set when it stood down, cleanly or on losing its session
    Column("reason", Text, nullable=False, default=""),
)

# Health as the leader's checks see it, for the other instances' status replies and risk rules.
health = Table(
    "health",
    metadata,
    Column("service", Text, primary_key=True),
    Column("host", Text, primary_key=True),
    Column("state", String(16), nullable=False),
    Column("term", BigInteger, nullable=False),  # the leader that saw it: another term's view is stale
    Column("updated_at", UTCDateTime, nullable=False),
)

# Run-time settings every instance must agree on (automatic failover on or off), as JSON values.
settings = Table(
    "settings",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Json, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", Text, nullable=False, default=""),
)

# Statements that bring a database of the version in the key up to the next one.
MIGRATIONS: dict[int, list[str]] = {
    1: [
        "ALTER TABLE incident_events ADD COLUMN kind TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE incident_events ADD COLUMN member TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE incident_events ADD COLUMN data JSON",
    ],
    2: [
        "ALTER TABLE router_locks ADD COLUMN node TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE router_locks ADD COLUMN pid INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE router_locks ADD COLUMN started BIGINT NOT NULL DEFAULT 0",
        "ALTER TABLE router_locks ADD COLUMN boot_id TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE router_locks ADD COLUMN pid_ns TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE router_locks ADD COLUMN session_key BIGINT",
    ],
    3: [],  # new tables only: create_all makes them
}


# The audit trail is append-only in the database too, not just by the absence of a method:
# a stray UPDATE or DELETE from a script or a future bug fails instead of rewriting history.
_APPEND_ONLY: dict[str, list[str]] = {
    "sqlite": [
        "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END",
        "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION lasthop_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$fn$ BEGIN RAISE EXCEPTION 'audit is append-only'; END $fn$",
        "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit "
        "FOR EACH ROW EXECUTE FUNCTION lasthop_audit_append_only()",
    ],
}


@event.listens_for(audit, "after_create")
def _make_audit_append_only(_table: Table, connection: Connection, **_kw: Any) -> None:
    for statement in _APPEND_ONLY.get(connection.dialect.name, []):
        connection.exec_driver_sql(statement)
