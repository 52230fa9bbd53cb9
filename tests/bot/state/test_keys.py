"""Idempotency keys: a Slack retry or a double click is acted on once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from bot.state import StateStore
from bot.state import schema as t


def test_a_key_is_claimed_once_until_it_expires(store: StateStore, clock: Any, raw: Engine) -> None:
    assert store.claim_key("slack:evt-1", owner="worker-1", ttl=timedelta(minutes=10)) is True
    assert store.claim_key("slack:evt-1", owner="worker-2", ttl=timedelta(minutes=10)) is False
    assert store.claim_key("slack:evt-2", owner="worker-2") is True

    clock.advance(minutes=9, seconds=59)
    assert store.claim_key("slack:evt-1", owner="worker-3") is False
    clock.advance(seconds=1)
    assert store.claim_key("slack:evt-1", owner="worker-3") is True
    assert store.claim_key("slack:evt-1", owner="worker-4") is False

    with raw.connect() as conn:
        owner = conn.execute(
            select(t.idempotency_keys.c.owner).where(t.idempotency_keys.c.key == "slack:evt-1")
        ).scalar_one()
    assert owner == "worker-3"


def test_a_key_needs_a_positive_ttl(store: StateStore) -> None:
    with pytest.raises(ValueError, match="ttl must be positive"):
        store.claim_key("k", owner="o", ttl=timedelta(0))


def test_eight_threads_claiming_one_key_one_wins(
    store: StateStore, race: Callable[[int, Callable[[int], Any]], list[Any]]
) -> None:
    results = race(8, lambda i: store.claim_key("slack:retry-storm", owner=f"thread-{i}"))
    assert sorted(results, key=repr) == [False] * 7 + [True], results


def test_eight_threads_claiming_one_expired_key_one_wins(
    store: StateStore, clock: Any, race: Callable[[int, Callable[[int], Any]], list[Any]]
) -> None:
    assert store.claim_key("slack:old", owner="first", ttl=timedelta(minutes=1))
    clock.advance(minutes=2)
    results = race(8, lambda i: store.claim_key("slack:old", owner=f"thread-{i}"))
    assert results.count(True) == 1 and results.count(False) == 7, results
