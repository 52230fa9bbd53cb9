"""Every state-store test runs twice: on a SQLite file and on a real PostgreSQL.

PostgreSQL: one fresh database per test session (`lasthop_test_<pid>`), an empty
`public` schema per test, the database dropped at the end. When the server cannot
be reached the PostgreSQL half is skipped with the reason, unless CI is set: then
it fails, so a CI run can never pass with half the store untested.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from bot.state import StateStore

# scripts/postgres.sh (run by `make test`) makes the tests' own role and writes its URL here.
PG_URL_FILE = Path(os.environ.get("LASTHOP_TEST_PG_URL_FILE", "/var/lib/lasthop/test-postgres.url"))


def _admin_url() -> str | None:
    if os.environ.get("LASTHOP_TEST_PG_URL"):
        return os.environ["LASTHOP_TEST_PG_URL"]
    try:
        return PG_URL_FILE.read_text().strip() or None
    except OSError:
        return None


START = datetime(2030, 1, 2, 12, 3, 4, tzinfo=UTC)


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """URL of a database created for this test session, dropped when it ends."""
    found = _admin_url()
    if found is None:
        reason = f"no PostgreSQL for the tests: LASTHOP_TEST_PG_URL is unset and {PG_URL_FILE} is missing"
        if _ci():
            pytest.fail(f"{reason}; CI is set, so the PostgreSQL state-store tests must run "
                        "(scripts/postgres.sh makes one)", pytrace=False)
        pytest.skip(f"{reason}; run `sudo bash scripts/postgres.sh` to run the PostgreSQL half")
    admin_url = make_url(found)
    where = f"{admin_url.host}:{admin_url.port or 5432}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        admin.dispose()
        reason = f"PostgreSQL at {where} is unreachable ({str(exc.orig).strip().splitlines()[0]})"
        if _ci():
            pytest.fail(f"{reason}; CI is set, so the PostgreSQL state-store tests must run", pytrace=False)
        pytest.skip(f"{reason}; set up PostgreSQL to run the PostgreSQL half")
    name = f"lasthop_test_{os.getpid()}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _empty_public_schema(url: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


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
        _empty_public_schema(url)
        yield url
        _empty_public_schema(url)


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
