"""Leadership behind a real PgBouncer: refused in transaction mode, working in session mode.

A session-level advisory lock means nothing when each transaction may run on another server
session, so lasthop must notice that set-up and say so instead of leading on a lock it lost.
Needs root (PgBouncer runs as postgres) and PgBouncer; CI has both.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.pg import scratch_database
from support.pgbouncer import pgbouncer

from bot.leader import Election
from bot.state import StateStore
from bot.state.leadership import POOLER_ADVICE, PoolerSuspected


@pytest.fixture(scope="module")
def direct() -> Iterator[str]:
    with scratch_database("lasthop_pooler") as url:
        StateStore(url).close()  # the schema, made directly: PgBouncer's pools start on a ready database
        yield url


def test_a_transaction_mode_pooler_is_refused_with_the_advice(direct: str) -> None:
    with pgbouncer(direct, pool_mode="transaction") as pooled:
        store = StateStore(pooled)
        try:
            seat = store.seat()
            with pytest.raises(PoolerSuspected) as refused:
                seat.acquire()
            assert "served by one server process" in str(refused.value)
            assert POOLER_ADVICE in str(refused.value) and "pool_mode=transaction" in str(refused.value)
            election = Election(store, "lasthop-a", on_promote=lambda term: None, on_demote=lambda why: None)
            with pytest.raises(PoolerSuspected):
                election.start()  # serve stops here with that one line, having started nothing
            assert not election.leading() and store.leader() is None
        finally:
            store.close()


def test_a_session_mode_pool_keeps_the_lock_and_leads(direct: str) -> None:
    with pgbouncer(direct, pool_mode="session") as pooled:
        store = StateStore(pooled)
        try:
            seat = store.seat()
            assert seat.acquire()
            seat.beat()  # the lock is on the server session that runs our statements
            term = store.take_leadership("lasthop-a", seat)
            record = store.leader()
            assert record is not None and record.term == term and record.leading
            seat.release()
            assert store.leader() is not None and not store.leader().leading  # type: ignore[union-attr]
        finally:
            store.close()
