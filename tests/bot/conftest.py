"""Fixtures tests under tests/bot share: a `lasthop serve` daemon on the lab, told to a LogOut; the
session's PostgreSQL database (defined in support/pg.py, registered here once); a state database on
each backend (`state_db_url`) for tests that need a real store outside tests/bot/state."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.labtools import wait_for
from support.pg import (
    empty_public_schema,
    pg_database,
)

from bot.inventory import Inventory
from bot.notify import LogOut
from bot.serve import Daemon, ServeSettings
from bot.state import StateStore

__all__ = ["pg_database", "run_daemon"]

RunDaemon = Callable[..., tuple[Daemon, LogOut]]


@pytest.fixture
def run_daemon(lab_inv: Inventory) -> Iterator[RunDaemon]:
    """start(inv=None, **settings): a started daemon with a complete health view, and what it said."""
    started: list[Daemon] = []

    def start(inv: Inventory | None = None, **settings: float) -> tuple[Daemon, LogOut]:
        inv = inv or lab_inv
        notifier = LogOut(io.StringIO())
        daemon = Daemon(inv, StateStore(inv.state_url), notifier, channel="alerts",
                        settings=ServeSettings(**{"drift_interval": 2.0, "startup_grace": 10.0, **settings}))
        daemon.start()
        started.append(daemon)
        wait_for(lambda: daemon._ready, 30, "a complete health view")
        return daemon, notifier

    yield start
    for d in started:
        d.stop()


@pytest.fixture
def pg_url(pg_database: str) -> Iterator[str]:
    """The session's PostgreSQL database, empty for this test."""
    empty_public_schema(pg_database)
    yield pg_database
    empty_public_schema(pg_database)


@pytest.fixture(params=["sqlite", "postgresql"])
def state_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty state database on each backend, emptied again after the test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/state.db"
        return
    url: str = request.getfixturevalue("pg_database")
    empty_public_schema(url)
    yield url
    empty_public_schema(url)
