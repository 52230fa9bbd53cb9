"""Every state-store test runs twice: on a SQLite file and on a real PostgreSQL.

PostgreSQL: one fresh database per test session (`lasthop_test_<pid>`), an empty
`public` schema per test, the database dropped at the end. When the server cannot
be reached the PostgreSQL half is skipped with the reason, unless CI is set: then
it fails, so a CI run can never pass with half the store untested. `pg_database` lives in
tests/support/pg.py and is registered in tests/bot/conftest.py, so tests outside this folder
(tests/bot/test_leader.py) share the same session database.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine
from support.pg import empty_public_schema

from bot.state import StateStore

START = datetime(2030, 1, 2, 12, 3, 4, tzinfo=UTC)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each backend; nothing of it is left after the test."""
    if request.param == "sqlite":
        # A directory that does not exist yet: the store must create it.
        folder = tmp_path / "state"
        yield f"sqlite:///{folder}/lasthop.db"
        shutil.rmtree(folder, ignore_errors=True)
    else:
        url: str = request.getfixturevalue("pg_database")
        empty_public_schema(url)
        yield url
        empty_public_schema(url)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def open_store(db_url: str, clock: FakeClock) -> Iterator[Callable[..., StateStore]]:
    """Opens more stores on the same database (another process, a restart); all closed at the end."""
    opened: list[StateStore] = []

    def _open(**kwargs: Any) -> StateStore:
        kwargs.setdefault("clock", clock)
        store = StateStore(db_url, **kwargs)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[..., StateStore]) -> StateStore:
    return open_store()


@pytest.fixture
def raw(db_url: str, store: StateStore) -> Iterator[Engine]:
    """A plain engine on the store's database, to look at what was really stored."""
    url = db_url.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def race() -> Callable[[int, Callable[[int], Any]], list[Any]]:
    """Run fn(0..n-1) in n threads released together; each result, or the exception it raised."""

    def _race(n: int, fn: Callable[[int], Any]) -> list[Any]:
        barrier = threading.Barrier(n)
        results: list[Any] = [None] * n

        def run(i: int) -> None:
            barrier.wait()
            try:
                results[i] = fn(i)
            except Exception as exc:
                results[i] = exc

        threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results

    return _race
